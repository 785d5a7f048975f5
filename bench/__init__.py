"""Benchmarks of fednode (`python -m bench [--quick]`).

Every figure is printed next to a baseline measured on the same machine in the same run
(bcftools for ingest and region reads; the smallest cohort for count-query scaling), so
ratios, not absolute times, are what carry between machines. Never run as unit tests.
"""
