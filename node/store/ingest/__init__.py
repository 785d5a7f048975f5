"""Writing a dataset: VCF/BCF input, statistics rows, fragments, partitioned and Dask
ingest, the aggregate build."""
