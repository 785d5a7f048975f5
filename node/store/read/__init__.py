"""Reading a dataset: lookups, region records, genotype matrices, the overlap rule, VCF export."""
