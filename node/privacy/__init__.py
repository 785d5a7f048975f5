"""Privacy: count guard (thresholds, rounding, noise), per-requester disclosure budget,
and the hash-chained audit log. Transport-independent; blocking I/O (SQLite, the log
file) is called off the event loop by the service layer."""

from node.privacy.audit import AuditLog, AuditReport, verify
from node.privacy.budget import Balance, Charge, SQLiteBudget, membership_llr
from node.privacy.guard import CountGuard, Disclosure, GuardedCount, disclosure

__all__ = [
    "AuditLog",
    "AuditReport",
    "Balance",
    "Charge",
    "CountGuard",
    "Disclosure",
    "GuardedCount",
    "SQLiteBudget",
    "disclosure",
    "membership_llr",
    "verify",
]
