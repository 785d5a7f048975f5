"""GA4GH Beacon v2: request parsing, variant matching and response rendering (no I/O)."""
