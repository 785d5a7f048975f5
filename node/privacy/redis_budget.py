"""Disclosure budgets in Redis, for replicas on several hosts.

Each requester's charges are one sorted set (`<prefix><requester>`), scored by time, each
member `<id>|<llr>|<epsilon>`. Check-and-charge is one Lua script, which Redis runs
atomically: drop charges older than the window, sum the rest, refuse or add. No two
replicas can both spend the last unit. Keys expire with the window, so idle requesters
cost nothing. Time comes from each replica's clock (keep them synchronised, as for the
tokens' `exp`). The connection URL may hold a password: it is never logged or shown.
A Redis that cannot be reached fails closed (Unavailable: the answer is not given).
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis

from node.config import BudgetSettings
from node.errors import Unavailable
from node.privacy.budget import Balance, Charge, budget_refusal

__all__ = ["RedisBudget"]

# KEYS[1]: the requester's set. ARGV: now, since ("-inf": no window), llr, epsilon, member,
# ttl seconds (0: none), "1" to charge or "0" to only read, the two limits and the float
# slack. Charges at or before `since` are dropped, the rest summed; the charge is added
# only if it fits. Returns {added, spent llr, spent epsilon} before this charge, the sums
# as strings (Redis truncates Lua numbers to integers).
_SCRIPT = """
local key = KEYS[1]
local now, since = tonumber(ARGV[1]), ARGV[2]
local llr, eps = tonumber(ARGV[3]), tonumber(ARGV[4])
local member, ttl, write = ARGV[5], tonumber(ARGV[6]), ARGV[7] == '1'
local max_llr, max_eps, slack = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
if since ~= '-inf' then
  redis.call('ZREMRANGEBYSCORE', key, '-inf', since)
end
local spent_llr, spent_eps = 0, 0
for _, m in ipairs(redis.call('ZRANGE', key, 0, -1)) do
  local a, b = string.match(m, '^[^|]*|([^|]*)|([^|]*)$')
  spent_llr = spent_llr + tonumber(a)
  spent_eps = spent_eps + tonumber(b)
end
local fits = spent_llr + llr <= max_llr + slack and spent_eps + eps <= max_eps + slack
local added = 0
if write and fits then
  redis.call('ZADD', key, now, member)
  if ttl > 0 then redis.call('EXPIRE', key, ttl) end
  added = 1
end
return {added, string.format('%.17g', spent_llr), string.format('%.17g', spent_eps)}
"""
_SLACK = 1e-9


class RedisBudget:
    """Budgets in a Redis server (see the module's docstring). Methods block briefly;
    call them off the event loop in servers."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        max_llr: float,
        max_epsilon: float,
        window_s: float | None = None,
        prefix: str = "fednode:budget:",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_llr, self.max_epsilon, self.window_s = max_llr, max_epsilon, window_s
        self._client = client
        self._prefix = prefix
        self._clock = clock
        self._script = client.register_script(_SCRIPT)

    @classmethod
    def from_settings(cls, settings: BudgetSettings) -> RedisBudget:
        if not settings.redis_url:
            raise Unavailable("the Redis budget store has no URL configured")
        client = redis.Redis.from_url(settings.redis_url.get_secret_value(),
                                      socket_timeout=5.0, socket_connect_timeout=5.0)
        return cls(client, max_llr=settings.max_llr, max_epsilon=settings.max_epsilon,
                   window_s=settings.window_s, prefix=settings.redis_prefix)

    def charge(self, requester_id: str, charge: Charge) -> Balance:
        """Spend `charge` or raise BudgetExhausted, atomically across replicas."""
        added, balance = self._run(requester_id, charge, write=bool(charge))
        if charge and not added:
            raise budget_refusal(self.window_s)  # the script found it does not fit
        return Balance(balance.llr_spent + charge.llr, self.max_llr,
                       balance.epsilon_spent + charge.epsilon, self.max_epsilon)

    def balance(self, requester_id: str) -> Balance:
        return self._run(requester_id, Charge(), write=False)[1]

    def close(self) -> None:
        self._client.close()

    def _run(self, requester_id: str, charge: Charge, *, write: bool) -> tuple[bool, Balance]:
        now = self._clock()
        since = "-inf" if self.window_s is None else repr(now - self.window_s)
        ttl = 0 if self.window_s is None else math.ceil(self.window_s) + 1
        member = f"{uuid.uuid4().hex}|{charge.llr!r}|{charge.epsilon!r}"
        args: list[Any] = [repr(now), since, repr(charge.llr), repr(charge.epsilon), member,
                           ttl, "1" if write else "0", repr(self.max_llr),
                           repr(self.max_epsilon), repr(_SLACK)]
        try:
            added, llr, eps = self._script(keys=[self._prefix + requester_id], args=args)
        except redis.RedisError as exc:
            # Fail closed; the cause is not chained (its text may name the server).
            raise Unavailable(f"budget store unavailable ({type(exc).__name__})") from None
        return bool(int(added)), Balance(float(llr), self.max_llr, float(eps), self.max_epsilon)
