"""Authentication and authorisation: GA4GH Passports → `Principal` → granularity.

Transport-independent; only the JWKS fetcher (node/auth/jwt.py) touches aiohttp, through
a ClientSession the application injects.
"""

from node.auth.jwt import Claims, JWKSCache, TokenVerifier
from node.auth.passport import PassportEvaluator
from node.auth.policy import effective_granularity, requester_level

__all__ = [
    "Claims",
    "JWKSCache",
    "PassportEvaluator",
    "TokenVerifier",
    "effective_granularity",
    "requester_level",
]
