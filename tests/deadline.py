"""Deadline checks that hold on a loaded machine (issue 16).

A call that honours its deadline ends near it; one that does not ends at the next bound
above it: a hung peer's hour, the whole call's longer deadline, an unroutable address's
TCP timeout. Tests keep that bound well past `SLACK` times the deadline and check that the
call ended before it (`ended_by`), with the reported statuses saying why it ended. The
margin is proportional to the deadline, never a fixed number of seconds: a loaded 2-core
machine stretches a whole call (scheduling, gRPC channel set-up), not a constant.
"""

from __future__ import annotations

__all__ = ["SLACK", "ended_by"]

SLACK = 3.0


def ended_by(elapsed: float, deadline: float) -> bool:
    """Whether a call that took `elapsed` seconds kept to `deadline` (within `SLACK`x)."""
    return elapsed < SLACK * deadline
