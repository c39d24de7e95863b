"""A rate limiter shared by every process and machine that uses a key, kept in Redis.

``Cliniko(..., limiter=RedisLimiterBackend("redis://host:6379/0"))`` (extra ``[redis]``).

The rule is the in-memory limiter's: a request holds one of ``limit`` slots from admission
until ``period`` after its response came back. Slots are leases in a sorted set per key,
scored by their expiry on the Redis server's clock (``TIME``), so the hosts' clocks do not
matter. An admitted lease first expires ``period + max_in_flight`` later (so a process killed
mid-request frees its slots by itself; longer if its process may keep it as a reservation, see
*Stalls*) and is moved to ``response + period`` on release. The
leaky bucket is kept there too, as the time it next empties (GCRA): it leaks ``limit / period``
per second and holds ``burst`` (default ``limit``). A 429 seen by any process pauses the key for
all of them and marks the bucket full, so after the pause every process together is metered
back in at the sustainable rate instead of rushing the reset. Keys are named by a hash of the
API key, never the key, share one Redis Cluster hash slot per API key (``{prefix:hash}:...``)
and expire, so nothing accumulates.

A 429 without a usable reset gives only a guess, a short jittered *fallback* pause; after it
the key is *half-open* for every process (as in the in-memory limiter): Redis admits one
request, the probe (its lease id kept in ``probe`` for a period, so a probe whose process died
lets another go after that; one admitted and never used lets another go at once), and everyone
else waits for it, asking again every ``poll``. A probe that comes back without a 429 (decided
on its loop's next turn, since a 429 is reported by ``pause()`` in the same step as the
release; void if the key paused since) opens the key, metered from that moment (the bucket is
marked full). A fallback pause that starts after the last one ran out while half-open (the
probe got a 429 again) is twice as long as the last, jittered, at most 8 s or a period: the
last length is kept in Redis (``half``), so the streak is the key's, whichever process probes.
A fallback 429 while still paused (the rest of one wave) adds nothing; a pause whose length
Cliniko said ends half-open and the streak. The half-open state expires two periods plus
``max_in_flight`` after the pause ends or the last probe was admitted, and, like the bucket, is
not put back after Redis lost its state.

Load. One :class:`RedisLimiter` per key serves the whole process (every loop and thread).
Waiters queue in the process, first in first out, and hold no connection: one task per key
(the *pump*) talks to Redis, asking for up to 32 leases per round trip for the queue's head and
sending releases in batches, and sleeps until the earliest lease can free. Every command goes
through a small gate per event loop (``max_connections``), so any number of concurrent acquires
uses a bounded number of connections; a full connection pool is "busy, retry", never
"unreachable".

*Stalls.* Without Redis nothing is admitted, so a Redis that stops answering for a while
(``DEBUG SLEEP``, a slow script or command, a paused VM) would stop every process. So each
process keeps *reservations*: a slot it releases while it has more waiting is kept for it, to be
used when it frees (a period after the response), at most its fair share (``limit`` over the
members it last saw, rounded down; a reservation beyond it frees when it comes due). Redis holds
a reserved slot ``reuse_window`` (two checks) and a lease's hold (``period + max_in_flight``)
past the time it frees; a lease admitted while its process is under its share is held that much
longer from admission (so a reservation made at its release is covered even if Redis stalls
before the release arrives; the release lowers it).
When a Redis command of the process goes unanswered for ``stall_after`` (half a check), each
reservation that comes due serves a waiter of that process without Redis. Once Redis answers,
a due reservation is renewed in the acquire for the head of the queue (as itself: it needs no
free slot; the bucket still meters it), and one not needed (no waiters, the key paused, the
reuse window passed, its event loop ending) frees as a plain release, a period after its
response. It is safe because Redis holds the slot until ``due + reuse_window + hold``: a request
sent on it goes between ``due`` and ``due + reuse_window`` and holds the slot at most a hold
after that, and nobody else is admitted to it meanwhile.
What it costs. Each reservation serves once per stall: a stall of up to about a period costs
little, a longer one its length beyond that. A process killed while holding reservations keeps
their slots from the others up to ``2 x period + max_in_flight + reuse_window`` after their
responses (a released slot otherwise frees a period after), and its slots in flight up to
``2 x hold + reuse_window`` after admission (otherwise a hold). While Redis stalls a process
learns of no other process's 429 (its own 429s pause it at once): requests on reservations may go
out in a pause that another process announced less than a check (or its last reply from Redis)
before the stall, up to its share. Requests on reservations are not metered by the bucket
(``burst``): they go when their slots free. Fairness: a process that joins a busy key gets the
slots the others do not reserve, and the others keep at most their new shares from the next
time each reservation comes due, so it reaches its share within a few periods; a process whose
reservations come due asks for any other slot a little after the time Redis tells everyone
(so it does not always come first), and Redis tells a waiting process to ask again within a
check when every slot is taken.

Losing Redis's state (``FLUSHALL``, a restart without persistence, failover to an empty
replica) never resets the budget. Each key has a generation (``epoch``) that lives a day; each
process remembers its leases of the last period (id and expiry on its own clock). Whoever finds
the generation gone starts a new one and marks the key *recovering*, during which nothing is
admitted; every process holding live leases checks the generation every ``check`` seconds
(``period / 40``, between 50 and 500 ms) and re-registers them (and its pause) when it changed.
Recovery ends as soon as every process that may hold a lease has re-registered, and at the
latest after ``3 x check + 0.25 s`` (0.4 s for a 1 s period, 1.75 s for 60 s); a fresh key (or
one unused for a day) waits that long once.

*Members.* To know who must re-register, the key keeps a member record: each process (by a
random token) with the time its last lease can expire (its last admission + ``period +
max_in_flight``, or later: a lease held longer, a reservation), the newest version of the record
it has seen (its *ack*), when Redis last heard from it, and a version that grows when a member
joins or expires. Every reply shows a member its *view* (the tokens) when the version changed,
and confirms it otherwise; the view is "fresh" for ``view_ttl = max(1 s, 2 x recovery)`` after
the request that last confirmed it was sent.
A process re-registering after a loss vouches for its view if it is fresh; the tokens it names
become members of the new generation and must re-register too (a process holding no lease
counts once it asks for one). Recovery ends early only when at least one process vouched and
every named member re-registered; a member that is dead or slow keeps the full stall.

*Why that is safe.* Let M hold a live lease when the state is lost (at time c), and R vouch at
g for a view that was current at some moment s >= v (v: when the request confirming it was
sent), with g - v <= view_ttl. R re-registers first and vouches in a second command, sent after
the reply from the new state: so g > c. A new member is admitted only once every
other member that Redis heard from within view_ttl acked a version that shows it, or view_ttl
after it joined (at j); let M's first lease be at a < c:

- If R acked M (it acks only a version it received), or joined after M (a joiner's first view
  shows every live member), R received a view showing M, and a newer view still shows M while
  M may hold a lease (its entry expires only after its last lease can). So M is named and
  recovery waits for it.
- If M was admitted without R's ack, then a >= j + view_ttl, or Redis last heard from R at
  h < a - view_ttl (and R's view is no newer than that: s <= h). R's view does not show M only
  if it is older than M's joining: s < j. Either way a - s > view_ttl, so
  g - v >= g - s > a - s > view_ttl: R does not vouch.

So a re-registration that ends recovery never misses a member holding a lease, as long as views
(and joins) come from the generation that was lost. A view is not taken while the key recovers,
and every vouched member is put in the new record, so a second loss meanwhile is covered too.
This rests on the same assumption as the stall itself: a process holding leases re-registers
within ``3 x check + 0.25 s`` of the loss (its event loop is not blocked for longer); the early
end does not weaken it (a dead or blocked member that is named keeps the full stall). One case
is covered by the stall alone, as before: leases that the local fallback granted, put in by a
process that was no member (so nobody names it) less than ``view_ttl`` before a loss. What a
process joining a busy key pays for it: its first admission waits until every member saw it
(about one check, ``period / 40``), at most ``view_ttl`` when one of them is blocked or died
lately (one Redis has not heard from for ``view_ttl`` holds nobody back). A member that died
less than ``period + max_in_flight`` ago (``2 x hold + reuse_window`` if it held reservations:
its record outlives its longest lease) is still named, so a loss then costs the full stall.

A restart then costs the time Redis is away, plus up to half a check until each process's next
probe (redis-py is told not to retry or back off: the probe is ours) and the re-registrations'
round trips. Measured with 4 processes x 500 concurrent requests (limit 200 per second), Redis
killed and answering again (empty) 0.343-0.357 s after the kill: the last process re-registered
and the key admitted again 0.348-0.366 s after the kill; with the fixed stall alone it admitted
again 0.4 s after the first re-registration (0.74-0.81 s after the kill).

When Redis cannot be reached (or answers with an error), ``on_unavailable="fail"`` (the
default) raises :class:`LimiterUnavailableError`; ``"local"`` falls back to an in-process limiter
at ``local_fraction`` of the limit (so N processes together stay under it when
``local_fraction <= 1/N``) and logs a warning. Until Redis was lost it may have admitted a
request to any process, after the last reply this one saw too, and such a request holds its slot
until a period after its response: at most ``period + max_in_flight`` after admission. So the
fallback grants nothing for ``period + max_in_flight`` after this process found Redis
unreachable (also when it never reached it); this process keeps probing Redis twice per
``check`` meanwhile, and the moment it answers, every request waiting on the fallback queues in
Redis again (a local permit granted meanwhile is not used). The leases the fallback did grant
are registered in Redis once it is back. So a restart that takes less than
``period + max_in_flight`` sends nothing locally: it costs the time Redis is away plus the
recovery stall above.

Event loops, threads, fork. Built from a URL, the backend keeps one client per event loop
(closed when that loop shuts down). Given a client (``redis.asyncio.Redis``, ``RedisCluster``,
or one made by a ``Sentinel``), it uses it on the loop it is first used from and raises
:class:`~cliniko_async.ConfigurationError` on any other. After ``fork()`` the child opens its
own connections and forgets its parent's leases (the parent still holds them).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
import random
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import AsyncIterator, Coroutine
from typing import Any, Literal, TypeAlias, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError, RedisError

from ._config import Secret
from ._limiter import (
    MAX_FALLBACK_PAUSE,
    KeyLimiter,
    LocalLimiter,
    Permit,
    RateLimit,
    RateLimitPaused,
)
from ._session import _seconds
from .errors import ClinikoError, ConfigurationError

__all__ = ["LimiterUnavailableError", "RedisLimiter", "RedisLimiterBackend"]

log = logging.getLogger("cliniko_async.redis")

AnyRedis: TypeAlias = "aioredis.Redis | RedisCluster"

#: Leases asked for in one round trip (the queue's head and those behind it).
BATCH = 32
#: How long a key's generation outlives its last admission (a key unused for longer starts a
#: new one, which costs one recovery stall).
EPOCH_TTL_MS = 86_400_000

_NOW = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000) "

# The member record (a hash per key): token -> 'expiry ack joined-version joined-at last-seen'
# (ms on the server's clock; joined-version 0 once admitted), '~' -> the member set's version.
# A member's view is the set of tokens, tagged 'epoch:version'.
_MEMBERS = """
local function parse(v)
  local r = {}
  for n in string.gmatch(v, '%S+') do r[#r + 1] = tonumber(n) end
  for i = #r + 1, 5 do r[i] = 0 end
  return r
end
local function put(key, token, r)
  redis.call('HSET', key, token, string.format('%d %d %d %d %d', r[1], r[2], r[3], r[4], r[5]))
end
-- The live members (an expired record is dropped: that process holds no lease any more).
local function members_of(key, now)
  local flat = redis.call('HGETALL', key)
  local ver, members, dropped = 0, {}, false
  for i = 1, #flat, 2 do
    if flat[i] == '~' then
      ver = tonumber(flat[i + 1])
    else
      local r = parse(flat[i + 1])
      if r[1] <= now then
        redis.call('HDEL', key, flat[i])
        dropped = true
      else
        members[flat[i]] = r
      end
    end
  end
  if dropped then ver = ver + 1 redis.call('HSET', key, '~', ver) end
  return members, ver
end
-- The view for a member that knows the one tagged `known`: just the tag when unchanged.
local function view_of(members, epoch, ver, known)
  local tag = epoch .. ':' .. ver
  local out = {tag}
  if tag ~= known then for k in pairs(members) do out[#out + 1] = k end end
  return out
end
-- A member was seen now, and acknowledges the view it received (never more than it received).
local function touch(members, key, token, epoch, known, now)
  local me = members[token]
  if not me then return end
  local e, v = string.match(known, '^(.*):(%d+)$')
  if e == epoch and tonumber(v) > me[2] then me[2] = tonumber(v) end
  me[5] = now
  put(key, token, me)
end
-- Recovery ends when a live member vouched for its view and every member named in the views
-- re-registered (or, failing that, when the recovering key expires).
local function try_end(recovering, reg, expected)
  if redis.call('GET', recovering) ~= 'v' then return false end
  if #redis.call('SDIFF', expected, reg) > 0 then return false end
  redis.call('DEL', recovering)
  return true
end
"""

# KEYS: slots, pause, bucket, epoch, recovering, members, registered, expected, half, probe.
# ARGV: limit, hold, period, interval, burst, known epoch, has leases (0/1), new epoch,
#       recovery ms, epoch ttl, this process's token, the view tag it knows, join wait ms,
#       poll ms, the number of reservations due (n), how many of the leases admitted Redis
#       holds longer (k, the first k: so that their process may keep them as reservations
#       even if Redis stalls before their release), by how much (ms), then the ids of the
#       leases wanted: the first n those reservations' own. A reservation holds its slot for
#       this process (it came due: its request's slot ended), so it is admitted without a free
#       slot (the bucket still meters it); one Redis no longer holds (it expired) needs a free
#       slot like any other.
#       Admitted, it is held as a lease from now; not admitted, it keeps its reservation.
# Returns {admitted, wait ms, paused (0/1), epoch, must register (0/1), view, probe (0/1)}.
# Half-open (after a fallback pause, `half` exists): one lease at a time, the probe, whose id
# is kept in `probe` for a period (a probe whose process died lets another go after that).
ACQUIRE = (
    _NOW
    + _MEMBERS
    + """
local epoch = redis.call('GET', KEYS[4])
if not epoch then
  -- A fresh key, or the state was lost: nobody is admitted until every process re-registered.
  epoch = ARGV[8]
  redis.call('SET', KEYS[4], epoch, 'PX', ARGV[10])
  redis.call('SET', KEYS[5], '1', 'PX', ARGV[9])
  redis.call('DEL', KEYS[6], KEYS[7], KEYS[8])
end
if epoch ~= ARGV[6] and ARGV[7] == '1' then return {0, 0, 0, epoch, 1, {}} end
local token, poll = ARGV[11], tonumber(ARGV[14])
local recovering = redis.call('PTTL', KEYS[5])
if recovering > 0 and ARGV[7] == '0' then
  -- Holding no lease, this process has nothing to put back: it counts as re-registered.
  redis.call('SADD', KEYS[7], token)
  redis.call('PEXPIRE', KEYS[7], recovering + 1000)
  if try_end(KEYS[5], KEYS[7], KEYS[8]) then recovering = 0 end
end
if recovering > 0 then return {0, math.min(recovering, poll), 0, epoch, 0, {}} end
local members, ver = members_of(KEYS[6], now)
touch(members, KEYS[6], token, epoch, ARGV[12], now)
local me = members[token]
if not me then
  -- A new member: its leases count only once every live member's view shows it.
  ver = ver + 1
  redis.call('HSET', KEYS[6], '~', ver)
  me = {now + tonumber(ARGV[2]) + tonumber(ARGV[13]), 0, ver, now, now}
  members[token] = me
  put(KEYS[6], token, me)
  redis.call('PEXPIRE', KEYS[6], ARGV[10])
end
local view = view_of(members, epoch, ver, ARGV[12])
local pause = tonumber(redis.call('GET', KEYS[2]) or '0')
if pause > now then return {0, pause - now, 1, epoch, 0, view} end
if me[3] > 0 then
  -- Settled once every other member seen within the join wait acked it (one not seen for
  -- that long does not vouch for an older view either), or after the join wait.
  local wait = tonumber(ARGV[13])
  local settled = now >= me[4] + wait
  if not settled then
    settled = true
    for k, r in pairs(members) do
      if k ~= token and r[2] < me[3] and r[5] >= now - wait then settled = false break end
    end
  end
  if not settled then
    return {0, math.min(poll, me[4] + tonumber(ARGV[13]) - now), 0, epoch, 0, view}
  end
  me[3] = 0
  put(KEYS[6], token, me)
end
local limit, hold, period = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local interval, burst = tonumber(ARGV[4]), tonumber(ARGV[5])
local half = redis.call('EXISTS', KEYS[9]) == 1
if half then
  local out = redis.call('PTTL', KEYS[10])
  if out == -1 then out = period end
  -- The probe is out: everyone waits for its answer (asking again every poll).
  if out > 0 then return {0, math.max(1, math.min(out, poll)), 0, epoch, 0, view, 0} end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local free = limit - redis.call('ZCARD', KEYS[1])
-- The bucket, kept as the time it will be empty: a request fits while it holds < burst.
local empty_at = math.max(now, tonumber(redis.call('GET', KEYS[3]) or '0'))
local renew, wanted = tonumber(ARGV[15]), #ARGV - 17
local longer, extra = tonumber(ARGV[16]), tonumber(ARGV[17])
if half then wanted, longer = math.min(wanted, 1), 0 end
local admitted = 0
while admitted < wanted and empty_at - now - (burst - 1) * interval <= 0 do
  local id = ARGV[18 + admitted]
  if admitted >= renew or not redis.call('ZSCORE', KEYS[1], id) then
    if free <= 0 then break end
    free = free - 1
  end
  if admitted < longer then
    redis.call('ZADD', KEYS[1], now + hold + extra, id)
  else
    redis.call('ZADD', KEYS[1], now + hold, id)
  end
  empty_at = empty_at + interval
  admitted = admitted + 1
end
if admitted > 0 and longer > 0 then hold = hold + extra end
if admitted > 0 then
  if redis.call('PTTL', KEYS[1]) < hold + 1000 then redis.call('PEXPIRE', KEYS[1], hold + 1000) end
  local ttl = math.ceil(empty_at - now) + 1000
  redis.call('SET', KEYS[3], string.format('%.3f', empty_at), 'PX', ttl)
  redis.call('PEXPIRE', KEYS[4], ARGV[10])
  if me[1] < now + hold then me[1] = now + hold put(KEYS[6], token, me) end
  redis.call('PEXPIRE', KEYS[6], ARGV[10])
  if half then
    redis.call('SET', KEYS[10], ARGV[18], 'PX', period)
    redis.call('HSET', KEYS[9], 'last', ARGV[18])
    redis.call('PEXPIRE', KEYS[9], hold + period)
    return {admitted, 0, 0, epoch, 0, view, 1}
  end
  return {admitted, 0, 0, epoch, 0, view, 0}
end
local wait
if free <= 0 then
  -- The earliest lease frees first; a lease in flight frees a period after its release at the
  -- earliest, and a reservation may be given up when it comes due (neither known here): so
  -- ask again within a check (two polls), never later than the earliest lease frees.
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  wait = math.min(tonumber(first[2]) - now, period, 2 * tonumber(ARGV[14]))
else
  wait = math.ceil(empty_at - now - (burst - 1) * interval)
end
return {0, math.max(1, wait), 0, epoch, 0, view}
"""
)
# KEYS: slots, probe, members. ARGV: this process's token, then (lease id, ms it still holds
# its slot) pairs; 0 ms: remove it (never used: if it was a half-open key's probe, the next
# request probes now). The member record is kept alive as long as the longest of them (a
# reservation holds its slot longer than a lease). Returns 1 if this process is a live member
# (its reservations in this release are then known to the key's recovery), 0 if not.
RELEASE = (
    _NOW
    + _MEMBERS
    + """
local longest = 0
for i = 2, #ARGV, 2 do
  local left = tonumber(ARGV[i + 1])
  if left > 0 then
    redis.call('ZADD', KEYS[1], now + left, ARGV[i])
    if left > longest then longest = left end
  else
    redis.call('ZREM', KEYS[1], ARGV[i])
    if redis.call('GET', KEYS[2]) == ARGV[i] then redis.call('DEL', KEYS[2]) end
  end
end
if longest > 0 and redis.call('PTTL', KEYS[1]) < longest + 1000 then
  redis.call('PEXPIRE', KEYS[1], longest + 1000)
end
local v = redis.call('HGET', KEYS[3], ARGV[1])
if not v then return 0 end
local me = parse(v)
if me[1] <= now then return 0 end
if me[1] < now + longest then me[1] = now + longest put(KEYS[3], ARGV[1], me) end
return 1
"""
)
# KEYS: pause, bucket, half, probe. ARGV: pause ms, burst, interval, probe (0/1), the longest
# a refused probe's pause may be (ms, jittered), how long the half-open state outlives the pause
# (ms). Returns the ms left in the key's pause.
# A fallback pause (probe = 1: its length is a guess) makes the key half-open: `half` keeps the
# last fallback length ('fb') and the probe's lease id ('last'). One that starts after the
# previous fallback pause ran out while half-open (the probe or a late request got a 429 again)
# is twice as long (at most ARGV[5]); one while still paused (the rest of a wave) adds nothing.
# A trusted pause (Cliniko said when) ends half-open and the streak.
PAUSE = (
    _NOW
    + """
local ms = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if ARGV[4] == '1' then
  local last = tonumber(redis.call('HGET', KEYS[3], 'fb') or '0')
  if now < current then
    last = math.max(last, ms)
  else
    if redis.call('EXISTS', KEYS[3]) == 1 then
      ms = math.max(ms, math.min(2 * last, tonumber(ARGV[5])))
    end
    last = ms
  end
  redis.call('HSET', KEYS[3], 'fb', last)
  redis.call('HDEL', KEYS[3], 'last')
else
  redis.call('DEL', KEYS[3])
end
redis.call('DEL', KEYS[4])
local until_ = now + ms
if until_ > current then redis.call('SET', KEYS[1], until_, 'PX', ms + 1000) end
until_ = math.max(until_, current)
if ARGV[4] == '1' then redis.call('PEXPIRE', KEYS[3], until_ - now + tonumber(ARGV[6])) end
-- Someone else is spending this key: mark the bucket full as of now.
local full = now + tonumber(ARGV[2]) * tonumber(ARGV[3])
if full > tonumber(redis.call('GET', KEYS[2]) or '0') then
  redis.call('SET', KEYS[2], string.format('%.3f', full), 'PX', math.ceil(full - now) + 1000)
end
return until_ - now
"""
)
# KEYS: half, probe, pause, bucket. ARGV: the probe's lease id, burst, interval.
# The probe came back without a 429: unless the key paused since (which forgets the probe), it
# opens, metered at the sustainable rate from now (the bucket is marked full). Returns 1 if so.
PROBE_OK = (
    _NOW
    + """
if redis.call('HGET', KEYS[1], 'last') ~= ARGV[1] then return 0 end
local out = redis.call('GET', KEYS[2])
if out and out ~= ARGV[1] then return 0 end
if tonumber(redis.call('GET', KEYS[3]) or '0') > now then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
local full = now + tonumber(ARGV[2]) * tonumber(ARGV[3])
if full > tonumber(redis.call('GET', KEYS[4]) or '0') then
  redis.call('SET', KEYS[4], string.format('%.3f', full), 'PX', math.ceil(full - now) + 1000)
end
return 1
"""
)
# KEYS: epoch, pause, members, recovering. ARGV: this process's token, the view tag it knows.
# Returns {epoch or nil, ms left in the pause, view (empty while recovering)}.
CHECK = (
    _NOW
    + _MEMBERS
    + """
local epoch = redis.call('GET', KEYS[1])
local pause = math.max(0, tonumber(redis.call('GET', KEYS[2]) or '0') - now)
if not epoch or redis.call('PTTL', KEYS[4]) > 0 then return {epoch, pause, {}} end
local members, ver = members_of(KEYS[3], now)
touch(members, KEYS[3], ARGV[1], epoch, ARGV[2], now)
return {epoch, pause, view_of(members, epoch, ver, ARGV[2])}
"""
)
# KEYS: slots, epoch, recovering, pause, members, registered, expected.
# ARGV: new epoch, epoch ttl, recovery ms, pause ms, this process's token, hold ms, the number
# of tokens in its view (-1: it vouches for none), those tokens, then (lease id, ms left) pairs.
# Puts this process's live leases (back) in; returns {epoch, ms the key still recovers}.
REGISTER = (
    _NOW
    + _MEMBERS
    + """
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[2], epoch, 'PX', ARGV[2])
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[3])
  redis.call('DEL', KEYS[5], KEYS[6], KEYS[7])
end
local n = tonumber(ARGV[7])
local longest = 0
for i = 8 + math.max(n, 0), #ARGV, 2 do
  local left = tonumber(ARGV[i + 1])
  redis.call('ZADD', KEYS[1], 'GT', now + left, ARGV[i])
  if left > longest then longest = left end
end
if longest > 0 and redis.call('PTTL', KEYS[1]) < longest + 1000 then
  redis.call('PEXPIRE', KEYS[1], longest + 1000)
end
local pause = tonumber(ARGV[4])
if pause > 0 and now + pause > tonumber(redis.call('GET', KEYS[4]) or '0') then
  redis.call('SET', KEYS[4], now + pause, 'PX', pause + 1000)
end
local members, ver = members_of(KEYS[5], now)
local token, hold = ARGV[5], tonumber(ARGV[6])
local me = members[token]
if not me then
  ver = ver + 1
  me = {now + longest + 1, 0, 0, now, now}
  members[token] = me
else
  me[1] = math.max(me[1], now + longest)
  me[5] = now
end
put(KEYS[5], token, me)
local recovering = redis.call('PTTL', KEYS[3])
if recovering > 0 then
  redis.call('SADD', KEYS[6], token)
  redis.call('PEXPIRE', KEYS[6], recovering + 1000)
  if n >= 0 then
    -- Every member this process knew of must re-register too; they stay members meanwhile.
    for i = 8, 7 + n do
      local other = ARGV[i]
      redis.call('SADD', KEYS[7], other)
      if not members[other] then
        ver = ver + 1
        members[other] = {now + hold, 0, 0, now, now}
        put(KEYS[5], other, members[other])
      end
    end
    redis.call('PEXPIRE', KEYS[7], recovering + 1000)
    redis.call('SET', KEYS[3], 'v', 'KEEPTTL')
  end
  if try_end(KEYS[3], KEYS[6], KEYS[7]) then recovering = 0 end
end
redis.call('HSET', KEYS[5], '~', ver)
redis.call('PEXPIRE', KEYS[5], ARGV[2])
return {epoch, math.max(recovering, 0)}
"""
)


class LimiterUnavailableError(ClinikoError):
    """The shared limiter's Redis could not be reached (``on_unavailable="fail"``)."""


class _Busy(Exception):
    """The connection pool is exhausted (by someone else's use of a client we were given)."""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --- per event loop: a client and a gate --------------------------------------------------------


class _LoopState:
    __slots__ = ("client", "closer", "gate", "scripts")

    def __init__(self, client: AnyRedis, max_connections: int) -> None:
        self.client = client
        self.gate = asyncio.Semaphore(max_connections)
        self.scripts = {
            name: client.register_script(text)
            for name, text in (
                ("acquire", ACQUIRE),
                ("release", RELEASE),
                ("pause", PAUSE),
                ("register", REGISTER),
                ("check", CHECK),
                ("probe_ok", PROBE_OK),
            )
        }
        self.closer: Any = None


async def _close_with_loop(
    backend: weakref.ref[RedisLimiterBackend], loop: asyncio.AbstractEventLoop, state: _LoopState
) -> AsyncIterator[None]:
    """Started once and kept: the loop finalizes it at shutdown (``asyncio.run`` does), which
    sends the releases still pending (the last job's) and closes this loop's connections while
    the loop can still run them."""
    try:
        yield
    finally:
        owner = backend()
        if owner is not None:
            owner._drop_loop(loop)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    for limiter in list(owner._limiters.values()):
                        await limiter._flush(state)
        with contextlib.suppress(Exception):
            await state.client.aclose()


# --- a key's limiter ----------------------------------------------------------------------------

_LOCAL = object()  # a waiter's outcome: Redis is unreachable, use the local fallback


class _Waiter:
    __slots__ = ("future", "loop", "max_wait")

    def __init__(self, loop: asyncio.AbstractEventLoop, max_wait: float) -> None:
        self.loop = loop
        self.max_wait = max_wait
        self.future: asyncio.Future[Any] = loop.create_future()


class _Lease:
    __slots__ = ("_id", "_limiter", "_local", "_probe", "_released")

    def __init__(
        self,
        limiter: RedisLimiter,
        lease_id: str,
        local: Permit | None = None,
        *,
        probe: bool = False,
    ) -> None:
        self._limiter = limiter
        self._id = lease_id
        self._local = local
        self._probe = probe  # the probe of a half-open key
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            if self._local is not None:
                self._local.release()
            self._limiter._release(self._id, self._probe)


class RedisLimiter:
    """One key's limiter, shared through Redis. Get it from :class:`RedisLimiterBackend`."""

    def __init__(self, backend: RedisLimiterBackend, fingerprint: str, rate_limit: RateLimit):
        self.rate_limit = rate_limit
        self._backend = backend
        tag = f"{{{backend.prefix}:{fingerprint}}}"  # one hash slot per API key (Redis Cluster)
        self.keys = {
            name: f"{tag}:{name}"
            for name in (
                "slots", "pause", "bucket", "epoch", "recovering", "members", "registered",
                "expected", "half", "probe",
            )
        }  # fmt: skip
        self._period = float(rate_limit.period)
        self._period_ms = int(rate_limit.period * 1000)
        self._hold = rate_limit.period + backend.max_in_flight
        self._hold_ms = int(self._hold * 1000)
        self._interval_ms = self._period_ms / rate_limit.requests  # the bucket leaks one each
        self._burst = rate_limit.burst or rate_limit.requests
        #: How often a process holding leases checks that Redis still has them.
        self.check_interval = min(0.5, max(0.05, self._period / 40))
        #: How long nothing is admitted after the state was found lost, at most: recovery ends
        #: sooner once every member of the key re-registered (see the module docstring).
        self.recovery = 3 * self.check_interval + 0.25
        #: A view of the members vouches for them only this long after it was last confirmed;
        #: a new member waits at most this long for every member to see it.
        self.view_ttl = max(1.0, 2 * self.recovery)
        #: How often a waiter asks again while the key recovers or it waits to be seen.
        self.poll = self.check_interval / 2
        #: A Redis command unanswered this long is a stall: due reservations serve meanwhile.
        self.stall_after = self.poll
        #: How long after it came due a reservation may still be used (a stall's detection
        #: included); Redis holds its slot that much plus a lease's hold past its due time.
        self.reuse_window = 2 * self.check_interval
        #: How much longer Redis holds a lease admitted while more wait (so that it covers a
        #: reservation made at its release: due at most a hold after admission).
        self._longer_ms = self._hold_ms + math.ceil(self.reuse_window * 1000)
        self._reset()

    def _reset(self) -> None:
        """Fresh process-local state (at creation, and in a forked child)."""
        self._lock = threading.Lock()
        self._waiters: deque[_Waiter] = deque()
        self._released: list[str] = []
        self._unused: list[str] = []
        self._pause_ms = 0
        self._pause_probe = False
        self._pauses = 0  # counts pause() calls: a probe's "came back fine" is void after one
        self._probe_ok: list[str] = []  # probes that came back fine, to tell Redis
        self._pump_loop: asyncio.AbstractEventLoop | None = None
        self._pump_gen = 0
        self._wake_event: asyncio.Event | None = None
        self._pump_task: asyncio.Task[None] | None = None
        #: This process's leases of the last period: id -> expiry (time.monotonic()).
        self._leases: dict[str, float] = {}
        #: Reservations (see _release): lease id -> when its slot is ours again; those that
        #: Redis confirmed (so usable while it stalls); leases served from one meanwhile.
        self._reserved: dict[str, float] = {}
        self._confirmed: set[str] = set()
        self._blind: set[str] = set()
        self._renewing: set[str] = set()  # reservations in the acquire command that is out
        #: Leases Redis holds longer (for reservation): id -> when their acquire was sent.
        self._longer: dict[str, float] = {}
        self._epoch = ""
        self._register = False
        #: The members of the key this process last saw (tokens), the view's tag, and when the
        #: request that confirmed it was sent (time.monotonic()).
        self._view: list[str] = []
        self._view_tag = ""
        self._view_at = -math.inf
        self._ack_due = False
        self._degraded = False  # Redis unreachable: the local fallback serves (on "local")
        self._resume_at = 0.0  # time.monotonic(): the end of the last pause this process saw
        #: When this process found Redis unreachable (time.monotonic()): Redis may have admitted
        #: leases to any process until then.
        self._lost_at = 0.0
        self._fallback: LocalLimiter | None = None
        self._back: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._token = uuid.uuid4().hex[:10]  # this limiter's lease id prefix (new after fork)
        self._ids = (f"{self._token}{n:x}" for n in itertools.count())

    # -- acquiring

    async def acquire(self, max_wait: float = math.inf) -> Permit:
        loop = asyncio.get_running_loop()
        self._backend._state()  # a client given for another loop: ConfigurationError, at once
        paused = self._resume_at - time.monotonic()
        if paused > max_wait:
            raise RateLimitPaused(paused)
        if self._degraded:
            self._kick(loop)  # keep probing Redis
            return await self._acquire_local(max_wait)
        waiter = _Waiter(loop, max_wait)
        with self._lock:
            self._waiters.append(waiter)
        self._kick(loop)
        try:
            while True:
                # A pump on a loop that stopped running (not closed) would strand us: look
                # again now and then; the wait itself costs no Redis traffic.
                done, _ = await asyncio.wait({waiter.future}, timeout=2.0)
                if done:
                    break
                self._kick(loop)
        except BaseException:
            with self._lock, contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
            if waiter.future.done() and not waiter.future.cancelled():
                outcome = waiter.future.exception() or waiter.future.result()
                if isinstance(outcome, _Lease):
                    self._give_back(outcome._id)
            else:
                waiter.future.cancel()
            raise
        outcome = waiter.future.result()
        if outcome is _LOCAL:
            return await self._acquire_local(max_wait)
        return cast(Permit, outcome)

    async def _acquire_local(self, max_wait: float) -> Permit:
        """From the local fallback while Redis is away; back to Redis as soon as it answers."""
        loop = asyncio.get_running_loop()
        back: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if not self._degraded:
                back.set_result(None)
            self._back.append((loop, back))
        local: asyncio.Future[Permit] = asyncio.ensure_future(self._local().acquire(max_wait))
        try:
            waiting: set[asyncio.Future[Any]] = {local, back}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            local.cancel()
            raise
        finally:
            with self._lock, contextlib.suppress(ValueError):
                self._back.remove((loop, back))
        if back.done():
            # Redis is back: queue there. A local permit granted meanwhile is not used (Redis,
            # which other processes use again, does not count it).
            local.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                (await local).release()
            return await self.acquire(max_wait)
        permit = local.result()
        lease_id = next(self._ids)
        with self._lock:
            self._leases[lease_id] = time.monotonic() + self._hold
            self._register = True  # put it in Redis once it is back
        self._kick(loop)
        return _Lease(self, lease_id, permit)

    def _local(self) -> LocalLimiter:
        with self._lock:
            if self._fallback is None:
                share = max(1, int(self.rate_limit.requests * self._backend.local_fraction))
                burst = min(share, self.rate_limit.burst or share)
                fallback = LocalLimiter(
                    RateLimit(share, self.rate_limit.period, burst), clock=time.monotonic
                )
                # Until Redis was lost, it may have admitted a lease to any process (after the
                # last reply this process saw, too), and such a lease holds its slot until a
                # period after its response, at most period + max_in_flight after admission.
                # So nothing goes before that; this process's own leases (admitted before too)
                # are free by then. Redis is usually back sooner: then nothing went locally.
                now = time.monotonic()
                # (A lease Redis holds longer, for a reservation the fallback does not use,
                # ends a hold after its acquire at the latest, like the others.)
                ends = [
                    self._longer[k] + self._hold if k in self._longer else t
                    for k, t in self._leases.items()
                ]
                opens = max(self._lost_at + self._hold, *ends, now)
                if opens > now:
                    for _ in range(share):
                        fallback.occupy(opens)
                if self._resume_at > now:
                    fallback.pause(self._resume_at - now)
                self._fallback = fallback
            return self._fallback

    def _give_back(self, lease_id: str) -> None:
        """A lease admitted for a waiter that went away: never used, so it frees at once."""
        with self._lock:
            self._forget(lease_id)
        self._kick(None)

    # -- releasing and pausing (sync, from any thread)

    def _release(self, lease_id: str, probe: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            blind = lease_id in self._blind
            self._blind.discard(lease_id)
            sent = self._longer.pop(lease_id, None)
            if lease_id in self._leases:
                due = now + self._period
                if not (probe or blind) and self._may_reserve(now):
                    # (Due a little later, jittered as every other wake-up for Redis: so that
                    # this process does not always come first for the slots freeing with it.)
                    due += random.uniform(0, 0.005)
                    # Keep the slot for our next waiter: it is ours again when it frees (a
                    # period after this response), and Redis holds it until reuse_window and
                    # a lease's hold past that, so it may be used then even if Redis stalls.
                    # Already so if Redis held it longer from admission and the response came
                    # within max_in_flight of it; else once Redis confirms the release.
                    self._reserved[lease_id] = due
                    self._leases[lease_id] = due + self.reuse_window + self._hold
                    if (
                        sent is not None
                        and due - self._period <= sent + self._backend.max_in_flight
                    ):
                        self._confirmed.add(lease_id)
                else:
                    self._leases[lease_id] = due
            self._released.append(lease_id)
            pauses = self._pauses
        if probe:
            # A 429 on it is reported (pause()) in the same synchronous step: decide on the
            # loop's next turn (without a loop, released from plain code: now).
            try:
                asyncio.get_running_loop().call_soon(self._probe_back, lease_id, pauses)
            except RuntimeError:
                self._probe_back(lease_id, pauses)
        self._kick(None)

    def _may_reserve(self, now: float) -> bool:
        """(Lock held.) A released slot is kept for this process while it has waiters that
        its reservations do not cover, up to its fair share, and never while the key is paused
        or Redis is away."""
        if self._degraded or self._resume_at > now:
            return False
        kept = len(self._reserved) + len(self._longer)
        return kept < self._share() and len(self._reserved) < len(self._waiters)

    def _share(self) -> int:
        """The limit over the key's members this process last saw, rounded down (the shares
        of all add up to at most the limit: the rest goes to whoever asks first)."""
        return self.rate_limit.requests // max(1, len(self._view))

    def _forget(self, lease_id: str) -> None:
        """(Lock held.) A lease or reservation nobody will use: Redis frees it now."""
        self._reserved.pop(lease_id, None)
        self._longer.pop(lease_id, None)
        self._confirmed.discard(lease_id)
        self._leases.pop(lease_id, None)
        self._unused.append(lease_id)

    def _demote(self, now: float, keep: bool) -> None:
        """(Lock held.) Give up reservations: every one unless ``keep`` (waiters remain to use
        them), else those past their reuse window. Each then frees when its request's slot
        did (a period after its response), as a plain release."""
        for lease_id, due in list(self._reserved.items()):
            if lease_id in self._renewing or (keep and now <= due + self.reuse_window):
                continue
            if due > now:
                del self._reserved[lease_id]
                self._confirmed.discard(lease_id)
                self._leases[lease_id] = due
                self._released.append(lease_id)
            else:
                self._forget(lease_id)

    def _serve_reserved(self) -> float:
        """A Redis command of ours is unanswered for ``stall_after``: serve the waiters from
        reservations Redis confirmed, each once it is due (its slot freed; Redis holds it for
        us until ``reuse_window`` past that, plus a lease's hold). Returns when to look again
        while the command stays unanswered: the next due time, or a ``poll`` from now (a
        release or a waiter may come meanwhile)."""
        now = time.monotonic()
        granted: list[tuple[_Waiter, _Lease]] = []
        wake = now + self.poll
        with self._lock:
            if not self._degraded and self._resume_at <= now:
                for lease_id in sorted(self._confirmed, key=self._reserved.__getitem__):
                    due = self._reserved[lease_id]
                    if due > now:
                        wake = min(wake, due)
                        break
                    if now > due + self.reuse_window or not self._waiters:
                        continue
                    del self._reserved[lease_id]
                    self._confirmed.discard(lease_id)
                    self._renewing.discard(lease_id)
                    self._leases[lease_id] = now + self._hold  # Redis holds it at least so long
                    self._blind.add(lease_id)
                    granted.append((self._waiters.popleft(), _Lease(self, lease_id)))
        if granted:
            log.debug("Redis is slow to answer: %d requests go on this process's reservations",
                      len(granted))  # fmt: skip
        for waiter, lease in granted:
            _deliver(waiter, lease, self)
        return wake

    def _probe_back(self, lease_id: str, pauses: int) -> None:
        """The probe came back: fine unless this process paused the key since (Redis also
        ignores it if another process did)."""
        with self._lock:
            if pauses != self._pauses:
                return
            self._probe_ok.append(lease_id)
        self._kick(None)

    def pause(self, seconds: float, *, probe: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            self._pauses += 1
            self._resume_at = max(self._resume_at, now + seconds)
            self._pause_ms = max(self._pause_ms, max(1, math.ceil(seconds * 1000)))
            self._pause_probe = self._pause_probe or probe
            self._confirmed.clear()  # after a pause, only Redis admits (half-open, metering)
            fallback = self._fallback
        self._fail_paused(self._resume_at - now)
        if fallback is not None:
            fallback.pause(seconds, probe=probe)
        self._kick(None)

    def paused_for(self) -> float:
        """Seconds left in the pause this process last saw (its own 429s and other processes')."""
        return max(0.0, self._resume_at - time.monotonic())

    def _note_pause(self, seconds: float) -> None:
        with self._lock:
            self._resume_at = max(self._resume_at, time.monotonic() + seconds)
            self._confirmed.clear()

    def _fail_paused(self, remaining: float) -> None:
        """Waiters that will not wait out the pause fail now."""
        with self._lock:
            doomed = [w for w in self._waiters if w.max_wait < remaining]
            for w in doomed:
                self._waiters.remove(w)
        for w in doomed:
            _deliver(w, RateLimitPaused(remaining), self)

    # -- the pump: the only task of this process that talks to Redis about this key

    def _kick(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Make sure a pump runs (starting one on ``loop`` or the running loop) and wake it."""
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
        with self._lock:
            current = self._pump_loop
            if current is not None and current.is_running():
                event = self._wake_event
                start = False
            elif loop is None:
                return  # nothing to run it on now: the next acquire's pump sends it
            else:
                self._pump_gen += 1
                self._pump_loop = loop
                self._wake_event = None
                gen, start, event = self._pump_gen, True, None
        if start:
            assert loop is not None
            if _running(loop):
                self._pump_task = loop.create_task(self._pump(gen))
            else:
                loop.call_soon_threadsafe(self._start_pump, gen)
        elif event is not None and current is not None:
            if _running(current):
                event.set()
            else:
                with contextlib.suppress(RuntimeError):  # closed meanwhile: the next kick moves it
                    current.call_soon_threadsafe(event.set)

    def _start_pump(self, gen: int) -> None:
        self._pump_task = asyncio.get_running_loop().create_task(self._pump(gen))

    async def _pump(self, gen: int) -> None:
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        with self._lock:
            if self._pump_gen != gen:
                return
            self._wake_event = event
        try:
            await self._rounds(gen, event)
        except asyncio.CancelledError:
            # Our loop is shutting down (asyncio.run ended). Another waiter's loop takes over;
            # with none, leases still live (or releases unsent) are watched from a thread of
            # ours until they expire: a flush meanwhile must still find them put back.
            with self._lock:
                mine = self._pump_gen == gen
                if mine:
                    self._pump_loop = None
                    self._wake_event = None
                others = [w.loop for w in self._waiters if w.loop is not loop]
                busy = bool(
                    self._leases or self._released or self._unused or self._pause_ms
                    or self._probe_ok
                )  # fmt: skip
            if mine and others:
                with contextlib.suppress(RuntimeError):
                    others[0].call_soon_threadsafe(self._kick, others[0])
            elif mine and busy and self._backend._given is None:
                self._continue_in_thread()
            raise
        finally:
            with self._lock:
                if self._pump_gen == gen:
                    self._pump_loop = None
                    self._wake_event = None

    def _continue_in_thread(self) -> None:
        async def pump_here() -> None:
            loop = asyncio.get_running_loop()
            with self._lock:
                if self._pump_loop is not None and self._pump_loop.is_running():
                    return  # a new loop took over meanwhile
                self._pump_gen += 1
                gen = self._pump_gen
                self._pump_loop = loop
                self._wake_event = None
            await self._pump(gen)

        coro = pump_here()
        thread = threading.Thread(
            target=asyncio.run, args=(coro,), name="cliniko-redis-limiter", daemon=True
        )
        try:
            thread.start()
        except RuntimeError:  # the interpreter is shutting down: Redis expires them itself
            coro.close()

    async def _rounds(self, gen: int, event: asyncio.Event) -> None:
        next_try = 0.0  # when admission may next succeed (time.monotonic())
        next_check = time.monotonic() + self.check_interval
        task = asyncio.current_task()
        while True:
            if task is not None and task.cancelling():
                # A cancellation (the loop shutting down) that a library swallowed: honour it.
                raise asyncio.CancelledError
            now = time.monotonic()
            released: list[str] = []
            unused: list[str] = []
            probe_ok: list[str] = []
            pause_ms = 0
            with self._lock:
                if self._pump_gen != gen:
                    return
                degraded = self._degraded
                if self._reserved:
                    self._demote(now, keep=bool(self._waiters) and not degraded)
                if len(self._leases) > 2 * self.rate_limit.requests or not self._waiters:
                    self._leases = {k: t for k, t in self._leases.items() if t > now}
                # Waiters on the local fallback count: they go back to Redis when it answers,
                # so keep probing for them (never leave them on the fallback once it is back).
                waiting = bool(self._waiters or (degraded and self._back))
                live = bool(self._leases)
                pending = bool(
                    self._released or self._unused or self._pause_ms or self._register
                    or self._probe_ok
                )  # fmt: skip
                if degraded and not (waiting or live):
                    # Redis is away and we hold nothing: its copies expire by themselves.
                    self._released, self._unused, self._pause_ms = [], [], 0
                    self._probe_ok = []
                    self._register = pending = False
                idle = not (pending or waiting or live)
                if idle:
                    self._pump_loop = None
                    back, self._back = self._back, []
                    self._degraded = False  # the next acquire tries Redis again
                elif not degraded:
                    released, self._released = self._released, []
                    unused, self._unused = self._unused, []
                    pause_ms, self._pause_ms = self._pause_ms, 0
                    probe_ok, self._probe_ok = self._probe_ok, []
            if idle:
                _wake(back)  # (none: a waiter on the fallback keeps us probing)
                return
            failed = False
            try:
                state = self._backend._state()
                if degraded:
                    # Redis was unreachable: our leases (and pause) are all in self._leases;
                    # probe now and then, and put them in at once when it answers.
                    if now >= next_check:
                        next_check = now + self.poll
                        await self._reregister(state)
                        next_try = 0.0
                else:
                    if pause_ms:
                        await self._send_pause(state, pause_ms)
                        pause_ms = 0
                    if released or unused:
                        await self._send_release(state, released, unused)
                        released, unused = [], []
                    if probe_ok:
                        if await self._send_probe_ok(state, probe_ok):
                            next_try = 0.0  # the key is open: the waiters may go now
                        probe_ok = []
                    if self._register or self._ack_due or ((live or waiting) and now >= next_check):
                        next_check = now + self.check_interval
                        self._ack_due = False
                        if self._register or await self._check(state):
                            await self._reregister(state)
                    if waiting and now >= min(next_try, self._next_due()):
                        next_try = await self._admit(state, next_try)
            except _Busy:
                next_try = time.monotonic() + random.uniform(0.01, 0.05)
                failed = True
            except (RedisError, OSError) as exc:
                self._unavailable(exc)
                # Probe again soon (twice per check): a restart costs its downtime plus at most
                # this, not a backoff (redis-py itself is told not to retry, see _state).
                next_try = next_check = time.monotonic() + self.poll
                failed = True
            except ClinikoError as exc:  # a client given for another loop
                self._fail_all(exc)
                with self._lock:
                    if self._pump_gen == gen:
                        self._pump_loop = None
                return
            except Exception as exc:  # an odd reply (a proxy, a module): fail closed, retry later
                log.exception("unexpected error in the Redis rate limiter")
                self._fail_all(
                    LimiterUnavailableError(
                        f"the shared rate limiter failed unexpectedly ({type(exc).__name__}: {exc})"
                    )
                )
                next_try = next_check = time.monotonic() + self.check_interval
                failed = True
            finally:
                if released or unused or pause_ms or probe_ok:  # not sent: the next round
                    with self._lock:
                        self._released[:0] = released
                        self._unused[:0] = unused
                        self._pause_ms = max(self._pause_ms, pause_ms)
                        self._probe_ok[:0] = probe_ok
            # Sleep until something can change: a lease frees, the next check, or a wake-up.
            event.clear()
            with self._lock:
                degraded = self._degraded
                pending = bool(
                    self._released or self._unused or self._pause_ms or self._register
                    or self._ack_due or self._probe_ok
                )  # fmt: skip
                if pending and not degraded and not failed:
                    continue
                waiting = bool(self._waiters) and not degraded
                watch = waiting or pending or bool(self._leases) or degraded
            if failed:
                deadline = next_try  # back off before trying again
            else:
                deadline = min(next_try if waiting else math.inf, next_check if watch else math.inf)
                with self._lock:
                    # A reservation is used (or given up) when it comes due; or dropped once
                    # its reuse window passed (while the key is paused).
                    for due in self._reserved.values():
                        deadline = min(deadline, due if due > now else due + self.reuse_window)
            timeout = deadline - time.monotonic()
            if timeout > 0 and math.isfinite(timeout):
                alarm = asyncio.get_running_loop().call_later(timeout, event.set)
                try:
                    await event.wait()
                finally:
                    alarm.cancel()

    async def _flush(self, state: _LoopState) -> None:
        """Send the pending releases and pause now (a loop shutting down says goodbye)."""
        with self._lock:
            if self._degraded:
                return
            if self._reserved:
                self._demote(time.monotonic(), keep=bool(self._waiters))
            released, self._released = self._released, []
            unused, self._unused = self._unused, []
            pause_ms, self._pause_ms = self._pause_ms, 0
            probe_ok, self._probe_ok = self._probe_ok, []
        try:
            if pause_ms:
                await self._send_pause(state, pause_ms)
                pause_ms = 0
            if released or unused:
                await self._send_release(state, released, unused)
                released, unused = [], []
            if probe_ok:
                await self._send_probe_ok(state, probe_ok)
                probe_ok = []
        finally:
            if released or unused or pause_ms or probe_ok:
                with self._lock:
                    self._released[:0] = released
                    self._unused[:0] = unused
                    self._pause_ms = max(self._pause_ms, pause_ms)
                    self._probe_ok[:0] = probe_ok

    async def _admit(self, state: _LoopState, next_try: float) -> float:
        """One round trip for the queue's head (and up to BATCH behind it); when to retry
        (``next_try``: when Redis said a slot may free)."""
        now = time.monotonic()
        if self._resume_at > now:  # our own 429, maybe not in Redis yet
            self._fail_paused(self._resume_at - now)
            return self._resume_at
        with self._lock:
            wanted = min(len(self._waiters), BATCH)
            # Reservations due go first, as themselves. They stay reservations while the
            # command is out, so a stall meanwhile may still use them (_serve_reserved takes
            # one out of _renewing: then it is not handed out again whatever Redis answers).
            due = sorted((t, k) for k, t in self._reserved.items() if t <= now)
            # Within this process's share as it is now (it shrinks when a process joins): a
            # reservation beyond it, or beyond the waiters, frees now (its slot ended).
            room = max(0, self._share() - (len(self._reserved) - len(due)) - len(self._longer))
            renew = [k for _, k in due[: min(wanted, room)]]
            for _, lease_id in due[len(renew) :]:
                self._forget(lease_id)
            self._renewing = set(renew)
            if renew:
                # Only those: the slots that free with them (our other leases') go to whoever
                # asks first when Redis said they free, this process or another.
                wanted = len(renew)
            has_leases = bool(self._leases)
            # Leases that waiters then may keep as reservations at their release: Redis holds
            # them longer from the start (lowered at their release), up to this process's
            # fair share.
            longer = 0 if self._degraded else min(wanted, room)
        if not wanted:
            return now
        ids = [*renew, *(next(self._ids) for _ in range(wanted - len(renew)))]
        args = [
            self.rate_limit.requests, self._hold_ms, self._period_ms, self._interval_ms,
            self._burst, self._epoch, int(has_leases), uuid.uuid4().hex,
            int(self.recovery * 1000), EPOCH_TTL_MS, self._token, self._view_tag,
            int(self.view_ttl * 1000), max(1, int(self.poll * 1000)), len(renew), longer,
            self._longer_ms, *ids,
        ]  # fmt: skip
        sent = time.monotonic()
        try:
            reply = await self._call(state, "acquire", self._acquire_keys(), args)
        except BaseException:
            # Maybe admitted, but nobody will use them: take them out again (harmless if not).
            with self._lock:
                for lease_id in ids:
                    if lease_id in self._renewing or lease_id not in renew:
                        self._forget(lease_id)
                self._renewing = set()
            raise
        admitted, wait_ms, paused, epoch, must_register, view = reply[:6]
        probe = len(reply) > 6 and bool(int(reply[6]))
        self._take_view(view, now)
        now = time.monotonic()
        if int(must_register):
            with self._lock:
                for lease_id in self._renewing:
                    self._forget(lease_id)
                self._renewing = set()
            self._register = True
            return now
        self._epoch = _text(epoch)
        if int(admitted):
            granted: list[tuple[_Waiter, _Lease]] = []
            with self._lock:
                for i, lease_id in enumerate(ids[: int(admitted)]):
                    if lease_id in renew and lease_id not in self._renewing:
                        continue  # used on a stall meanwhile: its request holds it
                    self._reserved.pop(lease_id, None)
                    self._confirmed.discard(lease_id)
                    if self._waiters:
                        self._leases[lease_id] = now + self._hold
                        if i < longer and not probe:
                            self._longer[lease_id] = sent
                            self._leases[lease_id] = sent + self._hold + self._longer_ms / 1000
                        lease = _Lease(self, lease_id, probe=probe)
                        granted.append((self._waiters.popleft(), lease))
                    else:
                        self._forget(lease_id)
                for lease_id in ids[int(admitted) :]:
                    if lease_id in self._renewing:
                        self._forget(lease_id)  # not admitted (paused...): its slot ended
                self._renewing = set()
            for waiter, lease in granted:
                _deliver(waiter, lease, self)
            if renew:
                # Ask for more (the slots our other leases free now) only a little after the
                # others that Redis told when: this process, whose reservations come due as
                # they free, would otherwise always come first (and a newcomer never in).
                return max(next_try, now + random.uniform(0.005, 0.015))
            return now
        with self._lock:
            for lease_id in self._renewing:
                self._forget(lease_id)
            self._renewing = set()
        wait = int(wait_ms) / 1000
        if int(paused):  # another process's 429
            self._note_pause(wait)
            self._fail_paused(wait)
        return now + wait + random.uniform(0, 0.005)  # a little jitter against lockstep

    async def _check(self, state: _LoopState) -> bool:
        """The light check: did Redis lose this key's state (its generation is not the one we
        know)? Also learns of another process's 429 while we wait."""
        keys = [self.keys[k] for k in ("epoch", "pause", "members", "recovering")]
        sent = time.monotonic()
        epoch, pause_ms, view = await self._call(
            state, "check", keys, [self._token, self._view_tag]
        )
        self._take_view(view, sent)
        if int(pause_ms) > 0:
            self._note_pause(int(pause_ms) / 1000)
            self._fail_paused(int(pause_ms) / 1000)
        return epoch is None or _text(epoch) != self._epoch

    async def _reregister(self, state: _LoopState) -> None:
        now = time.monotonic()
        with self._lock:
            self._register = False
            pairs = [(k, math.ceil((t - now) * 1000) + 1) for k, t in self._leases.items()]
            pause_ms = max(0, math.ceil((self._resume_at - now) * 1000))
        head: list[Any] = [
            uuid.uuid4().hex, EPOCH_TTL_MS, int(self.recovery * 1000), pause_ms, self._token,
            self._hold_ms,
        ]  # fmt: skip
        args = [*head, -1]
        for lease_id, left in pairs:
            if left > 1:
                args += [lease_id, left]
        keys = [
            self.keys[k]
            for k in ("slots", "epoch", "recovering", "pause", "members", "registered", "expected")
        ]
        try:
            epoch, recovering = await self._call(state, "register", keys, args)
            # The key recovers: vouch for the members this process saw, if that view was
            # confirmed lately (a member that joined since waited at least view_ttl). Sent
            # only now, after a reply from the new state: so after the loss (module docstring).
            fresh = time.monotonic() - self._view_at <= self.view_ttl
            if int(recovering) > 0 and self._view_tag and fresh:
                vouch = [*head, len(self._view), *self._view]
                await self._call(state, "register", keys, vouch)
        except BaseException:
            self._register = True
            raise
        if self._degraded:
            log.warning("Redis reachable again: the shared limiter is back in use")
            with self._lock:
                self._degraded = False
                back, self._back = self._back, []
            _wake(back)
        elif self._epoch and _text(epoch) != self._epoch:
            log.warning(
                "Redis lost the rate limiter's state (flush, restart or failover): "
                "%d leases of this process put back",
                len(pairs),
            )
        self._epoch = _text(epoch)
        self._degraded = False

    async def _call(self, state: _LoopState, script: str, keys: list[str], args: list[Any]) -> Any:
        loop = asyncio.get_running_loop()

        def stalled() -> None:  # unanswered for stall_after: go on with our reservations
            wake = self._serve_reserved()
            timer[0] = loop.call_later(max(0.0, wake - time.monotonic()), stalled)

        timer = [loop.call_later(self.stall_after, stalled)]
        try:
            async with state.gate:
                return await _guard(state.scripts[script](keys=keys, args=args))
        finally:
            timer[0].cancel()

    def _next_due(self) -> float:
        with self._lock:
            return min(self._reserved.values(), default=math.inf)

    def _acquire_keys(self) -> list[str]:
        names = ("slots", "pause", "bucket", "epoch", "recovering", "members", "registered")
        return [self.keys[k] for k in (*names, "expected", "half", "probe")]

    def _take_view(self, view: Any, sent: float) -> None:
        """Keep the member set a reply showed (none while the key recovers): ``[tag]`` confirms
        the view we have, ``[tag, *tokens]`` replaces it."""
        if not view:
            return
        tag = _text(view[0])
        if tag != self._view_tag:
            self._view = [_text(v) for v in view[1:]]
            self._view_tag = tag
            # A member joined (or left): say at once that we saw it, so it is not kept waiting.
            self._ack_due = bool(self._leases)
        self._view_at = sent

    def _pause_keys(self) -> list[str]:
        return [self.keys[k] for k in ("pause", "bucket", "half", "probe")]

    def _release_keys(self) -> list[str]:
        return [self.keys["slots"], self.keys["probe"], self.keys["members"]]

    async def _send_release(
        self, state: _LoopState, released: list[str], unused: list[str]
    ) -> None:
        """Release leases; the reservations among them are confirmed once Redis holds them
        (and the member record, which recovery reads, outlives them)."""
        args = self._release_args(released, unused)
        if int(await self._call(state, "release", self._release_keys(), args)):
            with self._lock:
                self._confirmed.update(k for k in released if k in self._reserved)

    async def _send_pause(self, state: _LoopState, pause_ms: int) -> None:
        """Pause the key in Redis; learn how long it is paused (a refused probe's pause is
        doubled there, from the last fallback length every process saw)."""
        left = await self._call(state, "pause", self._pause_keys(), self._pause_args(pause_ms))
        if int(left) > 0:
            self._note_pause(int(left) / 1000)
            self._fail_paused(int(left) / 1000)

    async def _send_probe_ok(self, state: _LoopState, lease_ids: list[str]) -> bool:
        """Probes that came back without a 429: the key opens (unless it paused since)."""
        keys = [self.keys[k] for k in ("half", "probe", "pause", "bucket")]
        opened = False
        for lease_id in lease_ids:
            args = [lease_id, self._burst, self._interval_ms]
            opened = bool(int(await self._call(state, "probe_ok", keys, args))) or opened
        return opened

    def _release_args(self, released: list[str], unused: list[str]) -> list[Any]:
        """Each released lease holds its slot until a period after its response (on our
        clock, so a release sent late is not held longer; 1 ms more, as Redis's clock counts
        whole milliseconds, rounded down); an unused one frees now."""
        now = time.monotonic()
        args: list[Any] = [self._token]
        with self._lock:
            for lease_id in released:
                until = self._leases.get(lease_id, now)
                args += [lease_id, math.ceil((until - now) * 1000) + 1 if until > now else 0]
        for lease_id in unused:
            args += [lease_id, 0]
        return args

    def _pause_args(self, pause_ms: int) -> list[Any]:
        with self._lock:
            probe, self._pause_probe = self._pause_probe, False
        # A refused probe doubles the fallback pause up to MAX_FALLBACK_PAUSE (or a period),
        # jittered; the half-open state outlives the pause by a period and a lease's hold.
        cap = min(self._period, MAX_FALLBACK_PAUSE) * random.uniform(0.5, 1)
        keep = self._hold_ms + self._period_ms
        return [pause_ms, self._burst, self._interval_ms, int(probe), int(cap * 1000), keep]

    def _unavailable(self, exc: BaseException) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        if self._backend.on_unavailable == "fail":
            self._fail_all(
                LimiterUnavailableError(
                    f"the shared rate limiter's Redis is unreachable ({reason}); check the Redis "
                    "server, or pass on_unavailable='local' to fall back to a per-process "
                    "limiter at a safe fraction of the limit"
                )
            )
            return
        with self._lock:
            starting = not self._degraded
            self._degraded = True
            if starting:
                self._lost_at = time.monotonic()
                self._fallback = None  # a fresh one, loaded with the leases we hold now
            self._demote(time.monotonic(), keep=False)
            waiters = list(self._waiters)
            self._waiters.clear()
        if starting:
            log.warning(
                "Redis unreachable (%s): using a local limiter at %.0f%% of the limit",
                reason,
                self._backend.local_fraction * 100,
            )
        for w in waiters:
            _deliver(w, _LOCAL, self)

    def _fail_all(self, exc: ClinikoError) -> None:
        with self._lock:
            waiters = list(self._waiters)
            self._waiters.clear()
        for w in waiters:
            _deliver(w, exc, self)

    def __repr__(self) -> str:
        return f"<RedisLimiter {self.rate_limit}>"


def _wake(back: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]) -> None:
    """Tell the waiters on the local fallback that Redis is in use again."""
    for waiter_loop, future in back:
        with contextlib.suppress(RuntimeError):
            waiter_loop.call_soon_threadsafe(_done, future)


def _done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _running(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _deliver(waiter: _Waiter, outcome: object, limiter: RedisLimiter) -> None:
    """Hand a waiter its lease (or error) on its own loop."""

    def resolve() -> None:
        if waiter.future.done():
            if isinstance(outcome, _Lease):
                limiter._give_back(outcome._id)
        elif isinstance(outcome, BaseException):
            waiter.future.set_exception(outcome)
        else:
            waiter.future.set_result(outcome)

    if _running(waiter.loop):
        resolve()
        return
    try:
        waiter.loop.call_soon_threadsafe(resolve)
    except RuntimeError:  # its loop is closed: nobody waits there any more
        if isinstance(outcome, _Lease):
            limiter._give_back(outcome._id)


async def _guard(awaitable: Coroutine[Any, Any, Any] | Any) -> Any:
    """Run a Redis command; a full pool is ``_Busy``, another loop's client a clear error."""
    try:
        return await awaitable
    except MaxConnectionsError as exc:
        raise _Busy() from exc
    except RedisConnectionError as exc:
        # redis-py before 7.2's asyncio pool says "Too many connections" with a plain
        # ConnectionError (no MaxConnectionsError): a full pool all the same, not an outage.
        if str(exc) == "Too many connections":
            raise _Busy() from exc
        raise
    except RuntimeError as exc:
        raise ConfigurationError(
            "the Redis client given to RedisLimiterBackend belongs to another event loop (or a "
            f"closed one): {exc}. Pass a redis:// URL instead (the backend then keeps one client "
            "per event loop), or use the backend only on the loop that created the client"
        ) from None


# --- the backend --------------------------------------------------------------------------------

_BACKENDS: weakref.WeakSet[RedisLimiterBackend] = weakref.WeakSet()
_INHERITED: list[object] = []  # a forked child's copies of its parent's connections: never touched


class RedisLimiterBackend:
    """Keeps every key's budget in Redis, shared by all processes that use this backend.

    ``redis`` is a URL (one client per event loop, made here, closed with its loop) or a
    ``redis.asyncio.Redis`` / ``RedisCluster`` / Sentinel-made client, used on its own loop.
    ``max_connections`` caps the Redis commands in flight per event loop (and so connections).
    """

    def __init__(
        self,
        redis: str | AnyRedis,
        *,
        prefix: str = "cliniko-async",
        on_unavailable: Literal["fail", "local"] = "fail",
        local_fraction: float = 0.25,
        max_in_flight: float = 60.0,
        max_connections: int = 8,
        socket_timeout: float = 5.0,
    ) -> None:
        if on_unavailable not in ("fail", "local"):
            raise ConfigurationError("on_unavailable must be 'fail' or 'local'")
        if "{" in prefix or "}" in prefix:
            raise ConfigurationError("prefix must not contain '{' or '}' (Redis Cluster hash tags)")
        if (
            isinstance(max_connections, bool)
            or not isinstance(max_connections, int)
            or max_connections < 1
        ):
            raise ConfigurationError("max_connections must be a positive integer")
        if (
            isinstance(local_fraction, bool)
            or not isinstance(local_fraction, int | float)
            or not 0 < local_fraction <= 1
        ):
            raise ConfigurationError(f"local_fraction must be in (0, 1], got {local_fraction!r}")
        for name, value in (("max_in_flight", max_in_flight), ("socket_timeout", socket_timeout)):
            if not _seconds(value):
                raise ConfigurationError(f"{name} must be a number of seconds > 0, got {value!r}")
        if isinstance(redis, str):
            try:
                parse_url(redis)  # type: ignore[no-untyped-call]
            except ValueError:
                # (redis-py's message may quote parts of the URL: its password among them.)
                raise ConfigurationError(
                    "RedisLimiterBackend needs a Redis URL: redis://[user:password@]host:port/db, "
                    "rediss://... (TLS) or unix:///path/to/socket"
                ) from None
            #: The URL may carry a password: kept where no repr, vars() or pickle shows it.
            self._url: Secret | None = Secret(redis)
            self._given: AnyRedis | None = None
        elif isinstance(redis, aioredis.Redis | RedisCluster):
            self._url, self._given = None, redis
        else:
            raise ConfigurationError(
                "RedisLimiterBackend takes a redis:// URL or a redis.asyncio client, "
                f"not {type(redis).__name__}"
            )
        self.prefix = prefix
        self.on_unavailable = on_unavailable
        self.local_fraction = local_fraction
        self.max_in_flight = max_in_flight
        self.max_connections = max_connections
        self.socket_timeout = socket_timeout
        self._lock = threading.Lock()
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        self._given_loop: weakref.ref[asyncio.AbstractEventLoop] | None = None
        self._forked = False
        # Weak: a key's limiter lives as long as a session uses it or it holds live leases
        # (its pump refers to it).
        self._limiters: weakref.WeakValueDictionary[tuple[str, RateLimit], RedisLimiter] = (
            weakref.WeakValueDictionary()
        )
        _BACKENDS.add(self)

    def _state(self) -> _LoopState:
        """The running loop's client and gate."""
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is not None:
            return state
        with self._lock:
            state = self._states.get(loop)
            if state is not None:
                return state
            for old in [lp for lp in self._states if lp.is_closed()]:
                del self._states[old]  # closed without shutting down its async generators
            if self._given is not None:
                if self._forked:
                    raise ConfigurationError(
                        "the Redis client given to RedisLimiterBackend belongs to the parent "
                        "process (this one was forked after the backend was made). Pass a "
                        "redis:// URL instead: the backend then opens its own connections in "
                        "each process and event loop"
                    )
                first = self._given_loop() if self._given_loop is not None else None
                if first is None or first.is_closed():
                    self._given_loop = weakref.ref(loop)
                elif first is not loop:
                    raise ConfigurationError(
                        "the Redis client given to RedisLimiterBackend is used from another "
                        "event loop; a redis.asyncio client belongs to one loop. Pass a "
                        "redis:// URL instead (the backend then keeps one client per event "
                        "loop), or use this backend only on the client's loop"
                    )
                state = _LoopState(self._given, self.max_connections)
            else:
                assert self._url is not None
                pool = aioredis.ConnectionPool.from_url(
                    self._url.reveal(),
                    max_connections=self.max_connections + 2,
                    socket_timeout=self.socket_timeout,
                    socket_connect_timeout=min(2.0, self.socket_timeout),
                    # No retries inside redis-py: a failed command returns at once and the
                    # pump's own probe (every check interval) decides what happens next.
                    retry=Retry(NoBackoff(), 0),
                )
                client = aioredis.Redis(connection_pool=pool)
                state = _LoopState(client, self.max_connections)
                state.closer = _close_with_loop(weakref.ref(self), loop, state)
                # Start it, so the loop finalizes it at shutdown: the body runs to its yield.
                with contextlib.suppress(StopIteration):
                    state.closer.__anext__().send(None)
            self._states[loop] = state
            return state

    def _drop_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self._states.pop(loop, None)

    def limiter_for(self, fingerprint: str, rate_limit: RateLimit) -> KeyLimiter:
        key = (fingerprint, rate_limit)
        limiter = self._limiters.get(key)
        if limiter is None:
            with self._lock:
                limiter = self._limiters.get(key)
                if limiter is None:
                    limiter = self._limiters[key] = RedisLimiter(self, fingerprint, rate_limit)
        return limiter

    async def aclose(self) -> None:
        """Close the connections this backend opened on the running loop (and forget those of
        closed loops). A client passed in is left open: its owner closes it."""
        loop = asyncio.get_running_loop()
        with self._lock:
            state = self._states.pop(loop, None)
            for old in [lp for lp in self._states if lp.is_closed()]:
                del self._states[old]
        if state is not None and self._given is None:
            with contextlib.suppress(Exception):
                await state.client.aclose()

    def _after_fork(self) -> None:
        """In a forked child: new connections, no memory of the parent's leases or waiters."""
        self._lock = threading.Lock()
        self._forked = True
        _INHERITED.append(dict(self._states))  # the parent's sockets: never closed from here
        self._states = weakref.WeakKeyDictionary()
        for limiter in list(self._limiters.values()):
            limiter._reset()

    def __repr__(self) -> str:
        return f"RedisLimiterBackend(prefix={self.prefix!r})"


def _after_fork_in_child() -> None:
    for backend in list(_BACKENDS):
        backend._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
