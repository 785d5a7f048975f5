"""GA4GH htsget 1.3 protocol: request parsing, tickets, block signing, service-info.

No web framework here: `node/web/htsget.py` is the transport.
"""
