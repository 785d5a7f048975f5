"""fednode: a GA4GH federated genomics query node (Beacon v2, htsget, federated counts)."""

__version__ = "0.1.0"
__all__ = ["__version__"]
