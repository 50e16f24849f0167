"""State every app process shares: Redis when configured, in-process stand-ins otherwise."""

from __future__ import annotations

import multiprocessing
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ehass import metrics
from ehass.config import Settings
from ehass.core.breaker import CircuitBreaker

log = structlog.get_logger("ehass.shared")
T = TypeVar("T")

BREAKER_FAILURES = 3  # consecutive failures or timeouts that open the circuit
# Connecting may take longer than a command: see `Settings.redis_socket_timeout_seconds`.
CONNECT_TIMEOUT_SECONDS = 1.0
# Revocations Redis missed, kept to be written once it answers; beyond this many the oldest
# are dropped (the database still refuses them; only a stale "active" verdict, at most
# ACTIVE_CACHE_SECONDS old, could then outlive them in Redis).
MAX_UNSENT_REVOCATIONS = 10_000
# What a Redis that does not answer raises. A ResponseError is an answer, not an outage.
_OUTAGES = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)


class CircuitOpenError(RedisConnectionError):
    """Redis was not asked: it failed repeatedly and its circuit is open."""


class RedisGuard:
    """The circuit breaker every call to this process's Redis goes through, whichever
    client makes it (the shared client, its pipelines, the rate limiter's own pool)."""

    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker

    async def run(self, call: Callable[[], Awaitable[T]], *, even_if_open: bool = False) -> T:
        """`call()` unless the circuit is open (then CircuitOpenError, at once)."""
        if not even_if_open and not self.breaker.allow():
            metrics.count_redis_short_circuit()
            raise CircuitOpenError("Redis is not asked while its circuit is open")
        try:
            result = await call()
        except _OUTAGES:
            self._failed()
            raise
        except RedisError:
            self._succeeded()  # Redis answered, with an error of the command's own
            raise
        self._succeeded()
        return result

    def _succeeded(self) -> None:
        if self.breaker.record_success():
            metrics.set_redis_circuit_open(False)
            log.info("redis.circuit_closed")

    def _failed(self) -> None:
        if self.breaker.record_failure():
            metrics.set_redis_circuit_open(True)
            log.warning("redis.circuit_opened", retry_in_seconds=self.breaker.open_for)


class GuardedRedis(Redis):
    """A redis-py client whose every command and pipeline goes through a RedisGuard:
    callers keep catching RedisError, and an open circuit is one more of those."""

    guard: RedisGuard

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        return await self.guard.run(lambda: Redis.execute_command(self, *args, **options))

    async def ping_even_if_open(self) -> bool:
        """PING whatever the circuit says: health checks report on Redis itself, not on
        the circuit, and an answer closes it without waiting for the next probe. They run
        at the pace of whatever polls them, not of the requests, so the wait is affordable."""
        return bool(
            await self.guard.run(lambda: Redis.execute_command(self, "PING"), even_if_open=True)
        )

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        pipe = GuardedPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )
        pipe.guard = self.guard
        return pipe


class GuardedPipeline(Pipeline):
    guard: RedisGuard

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        return await self.guard.run(lambda: Pipeline.execute(self, raise_on_error))


def guarded_client(url: str, guard: RedisGuard, *, socket_timeout: float) -> GuardedRedis:
    client = GuardedRedis.from_url(
        url, socket_timeout=socket_timeout, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS
    )
    client.guard = guard
    return client


def _note_failure(exc: BaseException, event: str | None) -> None:
    """Counts (and logs, under `event`) a Redis call that failed. One the open circuit
    refused is counted as short-circuited instead, and not logged: while the circuit is
    open that would be a line per request; opening and closing are logged once."""
    if isinstance(exc, CircuitOpenError):
        return
    metrics.count_redis_error()
    if event is not None:
        log.warning(event)


@dataclass(frozen=True, slots=True)
class LimitState:
    allowed: bool
    retry_after: float


class SharedState:
    def __init__(self, settings: Settings) -> None:
        self.prefix = settings.redis_key_prefix
        self.redis: GuardedRedis | None = None
        self._local_limiter = MovingWindowRateLimiter(MemoryStorage())
        self._shared_limiter: MovingWindowRateLimiter | None = None
        self._local_hashes = LocalHashes()
        self._unsent_revocations: dict[str, float] = {}  # session id -> monotonic deadline
        self.guard = RedisGuard(
            CircuitBreaker(
                failure_threshold=BREAKER_FAILURES,
                open_seconds=settings.redis_breaker_open_seconds,
                max_open_seconds=settings.redis_breaker_max_open_seconds,
            )
        )
        if settings.redis_url:
            timeout = settings.redis_socket_timeout_seconds
            self.redis = guarded_client(settings.redis_url, self.guard, socket_timeout=timeout)
            storage = RedisStorage(
                "async+" + settings.redis_url,
                implementation="redispy",
                key_prefix=f"{self.prefix}:limits",
                socket_timeout=timeout,
                socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
            )
            self._shared_limiter = MovingWindowRateLimiter(storage)

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()

    async def ping(self) -> bool | None:
        """True/False for a configured Redis, None when none is configured."""
        if self.redis is None:
            return None
        try:
            return await self.redis.ping_even_if_open()
        except (RedisError, OSError) as exc:
            _note_failure(exc, None)
            return False

    # --- session state cache ----------------------------------------------------------

    def _session_key(self, session_id: str) -> str:
        return f"{self.prefix}:session:{session_id}"

    def _keep_unsent_revocation(self, session_id: str, ttl_seconds: int) -> None:
        self._unsent_revocations.pop(session_id, None)
        self._unsent_revocations[session_id] = time.monotonic() + max(1, ttl_seconds)
        while len(self._unsent_revocations) > MAX_UNSENT_REVOCATIONS:
            del self._unsent_revocations[next(iter(self._unsent_revocations))]

    async def _write_revocation_marks(self, ttls: Mapping[str, int]) -> None:
        """{session id: ttl seconds} marked revoked in Redis, in one round trip."""
        assert self.redis is not None
        if not ttls:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for session_id, ttl in ttls.items():
                pipe.set(self._session_key(session_id), b"0", ex=max(1, ttl))
            await pipe.execute()

    async def _send_unsent_revocations(self) -> None:
        """Revocations Redis missed while it did not answer, written before it is read
        again: an "active" verdict it cached before the outage must not outlive them."""
        assert self.redis is not None
        now = time.monotonic()
        due = {sid: int(at - now) for sid, at in self._unsent_revocations.items() if at > now}
        try:
            await self._write_revocation_marks(due)
        except (RedisError, OSError) as exc:
            _note_failure(exc, "redis.session_cache_write_failed")
            return
        for sid in [*self._unsent_revocations]:
            if sid in due or self._unsent_revocations[sid] <= now:
                del self._unsent_revocations[sid]

    # --- caches: a hash of fields per key, each key expiring as a whole --------------------
    # A cache read that fails is a miss, and a write that fails is skipped: the database
    # stays the record, and callers key their entries so a stale one is never looked up.

    async def cache_get(self, key: str, fields: Sequence[str]) -> list[bytes | None]:
        key = f"{self.prefix}:cache:{key}"
        if self.redis is None:
            return self._local_hashes.get(key, fields)
        try:
            return await self.redis.hmget(key, fields)
        except (RedisError, OSError) as exc:
            _note_failure(exc, "redis.cache_read_failed")
            return [None] * len(fields)

    async def cache_put(self, key: str, values: Mapping[str, bytes], *, ttl_seconds: int) -> None:
        key = f"{self.prefix}:cache:{key}"
        if self.redis is None:
            self._local_hashes.put(key, values, ttl_seconds=ttl_seconds)
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hset(key, mapping=dict(values))
                pipe.expire(key, ttl_seconds, nx=True)  # from the first write, like LocalHashes
                await pipe.execute()
        except (RedisError, OSError) as exc:
            _note_failure(exc, "redis.cache_write_failed")

    # --- counters (failed logins, request rates) ----------------------------------------
    # Redis counters are shared by every instance; when Redis does not answer, each process
    # keeps counting in memory rather than letting requests through unlimited.

    async def _with_fallback(self, call: str, item: RateLimitItem, *keys: str) -> object:
        shared = self._shared_limiter
        if shared is not None:
            try:
                return await self.guard.run(lambda: getattr(shared, call)(item, *keys))
            except Exception as exc:  # limits wraps every storage failure differently
                _note_failure(exc, "redis.rate_limit_unavailable")
        return await getattr(self._local_limiter, call)(item, *keys)

    async def limit_state(self, item: RateLimitItem, *keys: str) -> LimitState:
        """Whether one more hit is allowed, without counting it."""
        if await self._with_fallback("test", item, *keys):
            return LimitState(True, 0.0)
        return LimitState(False, await self._retry_after(item, *keys))

    async def hit(self, item: RateLimitItem, *keys: str) -> LimitState:
        """Counts a hit; says whether it was within the limit."""
        if await self._with_fallback("hit", item, *keys):
            return LimitState(True, 0.0)
        return LimitState(False, await self._retry_after(item, *keys))

    async def _retry_after(self, item: RateLimitItem, *keys: str) -> float:
        stats = await self._with_fallback("get_window_stats", item, *keys)
        return max(1.0, stats.reset_time - time.time())  # type: ignore[attr-defined]

    # --- session accounts: what authentication needs of a session, shared by every instance
    # Two keys per session. `session:{id}` = "0" marks it revoked (the format of the
    # verdict cache before; instances of that version still read and write it). Next to it,
    # `session-account:{id}` holds the encoded account the session belongs to. A revocation
    # mark always wins, so an account write racing a revocation can never revive a session.

    def _session_account_key(self, session_id: str) -> str:
        return f"{self.prefix}:session-account:{session_id}"

    @property
    def _local_sessions(self) -> LocalSessions:
        # Without Redis the stand-in is shared by every app of the process under this prefix,
        # so two apps in one process see each other's writes as two instances would.
        return LocalSessions.for_prefix(self.prefix)

    async def session_account(self, session_id: str) -> tuple[bool, bytes | None]:
        """(revoked, the encoded account); (False, None) when unknown or unreachable."""
        if self.redis is None:
            if not LocalSessions.usable():
                return False, None
            return self._local_sessions.get(session_id)
        if self._unsent_revocations:
            await self._send_unsent_revocations()
        try:
            mark, account = await self.redis.mget(
                self._session_key(session_id), self._session_account_key(session_id)
            )
        except (RedisError, OSError) as exc:
            _note_failure(exc, "redis.session_cache_read_failed")
            return False, None
        return mark == b"0", account

    async def put_session_accounts(
        self, accounts: Mapping[str, tuple[bytes, int]], *, replace: bool
    ) -> None:
        """Stores {session id: (encoded account, ttl seconds)}. `replace=False` is a reader
        filling a miss: it never overwrites what a writer stored meanwhile."""
        if not accounts:
            return
        if self.redis is None:
            if LocalSessions.usable():
                for session_id, (value, ttl) in accounts.items():
                    self._local_sessions.put(session_id, value, ttl_seconds=ttl, replace=replace)
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for session_id, (value, ttl) in accounts.items():
                    pipe.set(
                        self._session_account_key(session_id), value, ex=max(1, ttl), nx=not replace
                    )
                await pipe.execute()
        except (RedisError, OSError) as exc:
            _note_failure(exc, "redis.session_cache_write_failed")

    async def revoke_session_accounts(self, ttls: Mapping[str, int]) -> None:
        """Marks {session id: ttl seconds} revoked, in one round trip for all of them."""
        if not ttls:
            return
        if self.redis is None:
            if LocalSessions.usable():
                for session_id, ttl in ttls.items():
                    self._local_sessions.revoke(session_id, ttl_seconds=ttl)
            return
        try:
            await self._write_revocation_marks(ttls)
        except (RedisError, OSError) as exc:
            # The database row is the record; readers fall back to it when Redis fails, and
            # the marks are sent before this process next reads a session from Redis.
            _note_failure(exc, "redis.session_cache_write_failed")
            for session_id, ttl in ttls.items():
                self._keep_unsent_revocation(session_id, ttl)


class LocalHashes:
    """The in-process stand-in for the Redis cache hashes: least recently used keys go
    first beyond `max_keys`, and a key expires `ttl_seconds` after it was first written."""

    def __init__(self, max_keys: int = 4096) -> None:
        self.max_keys = max_keys
        self._entries: OrderedDict[str, tuple[float, dict[str, bytes]]] = OrderedDict()

    def get(self, key: str, fields: Sequence[str]) -> list[bytes | None]:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= time.monotonic():
            self._entries.pop(key, None)
            return [None] * len(fields)
        self._entries.move_to_end(key)
        return [entry[1].get(name) for name in fields]

    def put(self, key: str, values: Mapping[str, bytes], *, ttl_seconds: int) -> None:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= time.monotonic():
            entry = (time.monotonic() + ttl_seconds, {})
            self._entries[key] = entry
        entry[1].update(values)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_keys:
            self._entries.popitem(last=False)


class LocalSessions:
    """The in-process stand-in for the session keys: revocation marks and accounts, least
    recently used first out beyond `max_keys`, each expiring after its own ttl."""

    _by_prefix: dict[str, LocalSessions] = {}  # one store per process and key prefix

    def __init__(self, max_keys: int = 16384) -> None:
        self.max_keys = max_keys
        self._entries: OrderedDict[str, tuple[float, bytes | None]] = OrderedDict()

    @classmethod
    def for_prefix(cls, prefix: str) -> LocalSessions:
        return cls._by_prefix.setdefault(prefix, cls())

    @staticmethod
    def usable() -> bool:
        """Not in a process uvicorn started as one of several workers: a logout there must
        reach its siblings, which only the database (or Redis) can tell them."""
        return multiprocessing.parent_process() is None

    def get(self, session_id: str) -> tuple[bool, bytes | None]:
        entry = self._entries.get(session_id)
        if entry is None or entry[0] <= time.monotonic():
            self._entries.pop(session_id, None)
            return False, None
        self._entries.move_to_end(session_id)
        return entry[1] is None, entry[1]

    def put(self, session_id: str, value: bytes, *, ttl_seconds: int, replace: bool) -> None:
        current = self._entries.get(session_id)
        live = current is not None and current[0] > time.monotonic()
        if live and current is not None and (current[1] is None or not replace):
            return  # a revocation stays; a reader's fill never overwrites a writer's
        self._store(session_id, value, ttl_seconds)

    def revoke(self, session_id: str, *, ttl_seconds: int) -> None:
        self._store(session_id, None, ttl_seconds)

    def _store(self, session_id: str, value: bytes | None, ttl_seconds: int) -> None:
        self._entries[session_id] = (time.monotonic() + max(1, ttl_seconds), value)
        self._entries.move_to_end(session_id)
        while len(self._entries) > self.max_keys:
            self._entries.popitem(last=False)
