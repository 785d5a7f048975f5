"""Disclosure budgets in Redis, for replicas on several hosts.

Each holder's charges (a requester's, a pool's) are one sorted set (`<prefix><holder>`),
scored by time, each member `<id>|<llr>|<epsilon>`. The sets of people released to a
holder (node/privacy/budget.py `Release`) live per holder, dataset and kind in a hash
(`<prefix><holder>\\0released\\0<dataset>\\0<kind>`: digest -> members, bytes as given)
and a sorted set of the same digests scored by when each was first released (the key
with `\\0at` appended). Holder ids hold no NUL, so the two kinds of key cannot collide.

Check-and-charge is one Lua script, which Redis runs atomically: for the requester and,
when given, the pool, drop what is older than the window, sum the charges and look up
the release; a holder that already holds the release owes nothing; refuse if either does
not fit, or else add both charges and keep the release for each holder that lacks it.
No two replicas can both spend the last unit. Keys expire with the window, so idle
holders cost nothing. The script touches the requester's and the pool's keys together:
one Redis server, not a Cluster. Time comes from each replica's clock (keep them
synchronised, as for the tokens' `exp`). The connection URL may hold a password: it is
never logged or shown. A Redis that cannot be reached fails closed (Unavailable: the
answer is not given).
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis
from redis.commands.core import Script

from node.config import BudgetSettings
from node.errors import Unavailable
from node.privacy.budget import Account, Balance, Charge, Limits, Release, budget_refusal

__all__ = ["RedisBudget"]

# KEYS: the n holders' charge sets (the requester first), then, with a release, each
# holder's release hash and release times (2 keys per holder, in the same order).
# ARGV: now, since ("-inf": no window), ttl seconds (0: none), the float slack, the
# charge's member, llr and epsilon, the release's digest and members ("" without one),
# n, "1" when the release is paid once per holder (Release.once), then each holder's two
# limits. Returns {refused, spent llr, spent epsilon, paid}:
# `refused` the 1-based index of the holder the charge does not fit (0: charged), the
# requester's sums before this charge as strings (Redis truncates Lua numbers to
# integers), `paid` 1 when the requester owed the charge (0: free, or already paid).
_CHARGE = """
local now, since, ttl, slack = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local member, llr, eps = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local digest, blob, n, once = ARGV[8], ARGV[9], tonumber(ARGV[10]), ARGV[11] == '1'
local release = #KEYS > n
local function prune(key, blobs)
  if since == '-inf' then return end
  if blobs then
    for _, d in ipairs(redis.call('ZRANGEBYSCORE', key, '-inf', since)) do
      redis.call('HDEL', blobs, d)
    end
  end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', since)
end
local function expire(key)
  if ttl > 0 then redis.call('EXPIRE', key, ttl) end
end
local owes, spent = {}, {}
for i = 1, n do
  local key = KEYS[i]
  prune(key, nil)
  if release then prune(KEYS[n + 2 * i], KEYS[n + 2 * i - 1]) end
  local s_llr, s_eps = 0, 0
  for _, m in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    local a, b = string.match(m, '^[^|]*|([^|]*)|([^|]*)$')
    s_llr = s_llr + tonumber(a)
    s_eps = s_eps + tonumber(b)
  end
  spent[i] = {string.format('%.17g', s_llr), string.format('%.17g', s_eps)}
  local held = release and once and redis.call('ZSCORE', KEYS[n + 2 * i], digest)
  owes[i] = (llr > 0 or eps > 0) and not held
  local max_llr, max_eps = tonumber(ARGV[10 + 2 * i]), tonumber(ARGV[11 + 2 * i])
  if owes[i] and (s_llr + llr > max_llr + slack or s_eps + eps > max_eps + slack) then
    return {i, spent[1][1], spent[1][2], 0}
  end
end
for i = 1, n do
  if owes[i] then
    redis.call('ZADD', KEYS[i], now, member)
    expire(KEYS[i])
  end
  local blobs, at = KEYS[n + 2 * i - 1], KEYS[n + 2 * i]
  if release and not redis.call('ZSCORE', at, digest) then
    redis.call('ZADD', at, now, digest)
    redis.call('HSET', blobs, digest, blob)
    expire(at)
    expire(blobs)
  end
end
return {0, spent[1][1], spent[1][2], owes[1] and 1 or 0}
"""

# KEYS: a release hash and its times. ARGV: since. Returns the members blobs released
# after `since`; one HGET per digest, as unpacking many into HMGET overflows Lua's stack.
_RELEASED = """
local min = ARGV[1] == '-inf' and '-inf' or '(' .. ARGV[1]
local out = {}
for _, d in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], min, '+inf')) do
  local blob = redis.call('HGET', KEYS[1], d)
  if blob then out[#out + 1] = blob end
end
return out
"""
_SLACK = 1e-9


class RedisBudget:
    """Budgets in a Redis server (see the module's docstring). Methods block briefly;
    call them off the event loop in servers. `client` must return bytes (redis-py's
    default, not `decode_responses`): the released sets are binary."""

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
        self._charge = client.register_script(_CHARGE)
        self._released = client.register_script(_RELEASED)

    @classmethod
    def from_settings(cls, settings: BudgetSettings) -> RedisBudget:
        if not settings.redis_url:
            raise Unavailable("the Redis budget store has no URL configured")
        client = redis.Redis.from_url(settings.redis_url.get_secret_value(),
                                      socket_timeout=5.0, socket_connect_timeout=5.0)
        return cls(client, max_llr=settings.max_llr, max_epsilon=settings.max_epsilon,
                   window_s=settings.window_s, prefix=settings.redis_prefix)

    def charge(
        self,
        requester_id: str,
        charge: Charge,
        *,
        limits: Limits | None = None,
        pool: Account | None = None,
        release: Release | None = None,
    ) -> Balance:
        """Spend `charge` or raise BudgetExhausted, atomically across replicas.

        `limits`: the requester's, when not the store's defaults; `pool`: a pooled budget
        charged too (both fit or neither is charged); `release`: the set of people the
        answer is about: each holder pays for a given set once per window."""
        limits = limits or Limits(self.max_llr, self.max_epsilon)
        holders = [(requester_id, limits)]
        if pool is not None:
            holders.append((pool.key, Limits(pool.max_llr, pool.max_epsilon)))
        refused, llr, eps, paid = self._run(holders, charge, release)
        if refused:  # the script found it does not fit; holder 1 is the requester
            whose = "your" if refused == 1 or pool is None else pool.label
            raise budget_refusal(self.window_s, whose=whose)
        due = charge if paid else Charge()
        return Balance(llr + due.llr, limits.max_llr, eps + due.epsilon, limits.max_epsilon)

    def balance(self, requester_id: str, limits: Limits | None = None) -> Balance:
        limits = limits or Limits(self.max_llr, self.max_epsilon)
        _, llr, eps, _ = self._run([(requester_id, limits)], Charge(), None)
        return Balance(llr, limits.max_llr, eps, limits.max_epsilon)

    def released(self, holder: str, dataset: str, kind: str) -> list[bytes]:
        """The sets of `kind` in `dataset` released to `holder` in the window."""
        keys = self._release_keys(holder, dataset, kind)
        blobs = self._eval(self._released, list(keys), [self._since(self._clock())])
        return [bytes(b) for b in blobs]

    def close(self) -> None:
        self._client.close()

    def _run(self, holders: list[tuple[str, Limits]], charge: Charge,
             release: Release | None) -> tuple[int, float, float, bool]:
        now = self._clock()
        ttl = 0 if self.window_s is None else math.ceil(self.window_s) + 1
        keys = [self._prefix + holder for holder, _ in holders]
        if release is not None:
            for holder, _ in holders:
                keys.extend(self._release_keys(holder, release.dataset, release.kind))
        args: list[Any] = [
            repr(now), self._since(now), ttl, repr(_SLACK),
            f"{uuid.uuid4().hex}|{charge.llr!r}|{charge.epsilon!r}",
            repr(charge.llr), repr(charge.epsilon),
            "" if release is None else release.digest,
            b"" if release is None else release.members, len(holders),
            "1" if release is not None and release.once else "0",
        ]
        for _, limits in holders:
            args += [repr(limits.max_llr), repr(limits.max_epsilon)]
        refused, llr, eps, paid = self._eval(self._charge, keys, args)
        return int(refused), float(llr), float(eps), bool(int(paid))

    def _release_keys(self, holder: str, dataset: str, kind: str) -> tuple[str, str]:
        blobs = f"{self._prefix}{holder}\0released\0{dataset}\0{kind}"
        return blobs, blobs + "\0at"

    def _since(self, now: float) -> str:
        return "-inf" if self.window_s is None else repr(now - self.window_s)

    @staticmethod
    def _eval(script: Script, keys: list[str], args: list[Any]) -> Any:
        try:
            return script(keys=keys, args=args)
        except redis.RedisError as exc:
            # Fail closed; the cause is not chained (its text may name the server).
            raise Unavailable(f"budget store unavailable ({type(exc).__name__})") from None
