"""A conformance suite runnable against any live fednode (or any GA4GH node).

Each protocol contributes a check module that registers itself with `@register("name")`;
add a module by naming it in `SUITE_MODULES` (one line). `python -m conformance URL` runs
them all and prints a report; the exit status is 1 when any check fails.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

__all__ = ["SUITE_MODULES", "Check", "Context", "Report", "Result", "register", "run"]

# Check modules, imported on first use; each registers its suites.
SUITE_MODULES: tuple[str, ...] = ("conformance.beacon", "conformance.htsget")

DEFAULT_SCHEMAS = Path(__file__).resolve().parents[1].parent / "shared"


@dataclass(frozen=True, slots=True)
class Result:
    suite: str
    name: str
    ok: bool
    detail: str = ""


@dataclass(slots=True)
class Context:
    """What a check gets: the node's base URL (e.g. http://host:8080), an HTTP session,
    the folder holding `beacon-v2/` and `vrs-1.3/` schemas, what to query (`targets`, e.g.
    the htsget ids; each suite has defaults), and where results go."""

    base: str
    session: aiohttp.ClientSession
    schemas: Path
    targets: Mapping[str, str] = field(default_factory=dict)
    suite: str = ""
    results: list[Result] = field(default_factory=list)

    def record(self, name: str, ok: bool, detail: str = "") -> bool:
        self.results.append(Result(self.suite, name, ok, detail[:500]))
        return ok


Check = Callable[[Context], Awaitable[None]]
_REGISTRY: dict[str, Check] = {}


def register(name: str) -> Callable[[Check], Check]:
    def add(check: Check) -> Check:
        _REGISTRY[name] = check
        return check

    return add


@dataclass(frozen=True, slots=True)
class Report:
    results: tuple[Result, ...]

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.ok for r in self.results)

    def failures(self) -> list[Result]:
        return [r for r in self.results if not r.ok]

    def render(self) -> str:
        lines = [f"{'PASS' if r.ok else 'FAIL'}  {r.suite:8} {r.name}"
                 + (f"\n        {r.detail}" if r.detail and not r.ok else "")
                 for r in self.results]
        passed = sum(r.ok for r in self.results)
        lines.append(f"\n{passed}/{len(self.results)} checks passed")
        return "\n".join(lines)


def _load() -> None:
    for module in SUITE_MODULES:
        importlib.import_module(module)


async def run(
    base: str, *, suites: Sequence[str] | None = None, schemas: Path = DEFAULT_SCHEMAS,
    timeout_s: float = 60.0, targets: Mapping[str, str] | None = None,
) -> Report:
    """Run the registered suites (all when None) against the node at `base`."""
    _load()
    chosen = list(_REGISTRY) if suites is None else list(suites)
    unknown = [s for s in chosen if s not in _REGISTRY]
    if unknown:
        raise ValueError(f"unknown suite(s): {', '.join(unknown)}; known: {', '.join(_REGISTRY)}")
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        ctx = Context(base.rstrip("/"), session, schemas, dict(targets or {}))
        for name in chosen:
            ctx.suite = name
            try:
                await _REGISTRY[name](ctx)
            except Exception as exc:  # a crashing suite is a failed check, not a crash
                ctx.record("suite completed", False, f"{type(exc).__name__}: {exc}")
    return Report(tuple(ctx.results))
