"""The dataset on disk: the TileDB-VCF layout, its state and commit protocol, the writer
lock, consolidation."""
