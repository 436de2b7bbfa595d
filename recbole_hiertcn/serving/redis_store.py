"""User states in Redis, shared by every service process.

One key per user and model version (``<prefix>:<version>:<user>``, the state's bytes as
value), so a new model never reads states of another. :meth:`RedisStateStore.transact` is an
optimistic transaction: ``WATCH`` the users' keys, read them, compute, write them in
``MULTI``/``EXEC``; if another process changed one of them in between, Redis drops the write
and the update is computed again on the new states. No event is lost and each user's events
apply one after another.

A Redis that refuses connections, drops them or does not answer within the socket timeouts
raises :class:`~recbole_hiertcn.serving.store.StoreUnavailable`: a command waits at most
about the connect plus the read timeout (a dropped connection is retried once at once; a
timeout is not retried). A transaction whose connection fails after ``WATCH`` is not computed
again (its ``EXEC`` may have applied without an answer): it raises too, outcome unknown.
Redis' other errors are left as they are.
"""

import contextlib
import random
import time

from recbole_hiertcn.serving.state import UserState
from recbole_hiertcn.serving.store import StoreUnavailable, check_ttl

MAX_RETRIES = 1000
# Seconds to open a connection / to wait for an answer: a silent Redis cannot hang a request.
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 2.0

try:  # errors of a Redis that cannot be reached (the client is only needed by this store)
    from redis.exceptions import ConnectionError as _RedisConnectionError
    from redis.exceptions import TimeoutError as _RedisTimeoutError

    _UNREACHABLE = (_RedisConnectionError, _RedisTimeoutError)
except ImportError:
    _UNREACHABLE = ()


class StoreContention(RuntimeError):
    """A transaction lost the race :data:`MAX_RETRIES` times in a row."""


def _positive_seconds(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


class RedisStateStore:
    """Args: ``url`` (``redis://host:port/db``) or a ready ``client``; ``prefix`` of the keys;
    ``ttl`` seconds after which an idle user's state expires (None: never);
    ``connect_timeout`` / ``read_timeout`` seconds to connect / to wait for an answer (for a
    client made from ``url``; a ready ``client`` keeps its own)."""

    def __init__(self, url="redis://127.0.0.1:6379/0", prefix="hiertcn", ttl=None,
                 client=None, connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT):
        connect_timeout = _positive_seconds("connect_timeout", connect_timeout)
        read_timeout = _positive_seconds("read_timeout", read_timeout)
        if client is None:
            try:
                import redis
                from redis.backoff import NoBackoff
                from redis.retry import Retry
            except ImportError:
                raise ImportError("the Redis store needs the redis client: pip install redis"
                                  ) from None
            # a dropped connection (say, closed by Redis while idle) is retried once at once,
            # a timeout not at all: a silent Redis stays silent, and retries multiply the wait
            client = redis.Redis.from_url(
                url, socket_connect_timeout=connect_timeout, socket_timeout=read_timeout,
                retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)))
        self.client, self.prefix, self.ttl = client, prefix, check_ttl(ttl, integer=True)

    def _key(self, version, user):
        return f"{self.prefix}:{version}:{user}"

    @contextlib.contextmanager
    def _reaching_redis(self):
        """Redis refusing, dropping or not answering -> :class:`StoreUnavailable`."""
        try:
            yield
        except _UNREACHABLE as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise StoreUnavailable(f"Redis unavailable: {reason}") from error

    def get(self, version, user):
        with self._reaching_redis():
            data = self.client.get(self._key(version, user))
        return None if data is None else UserState.from_bytes(data)

    def transact(self, version, users, update):
        """As :meth:`MemoryStateStore.transact`, across processes."""
        with self._reaching_redis():
            return self._transact(version, users, update)

    def _transact(self, version, users, update):
        from redis import WatchError

        keys = [self._key(version, user) for user in users]
        for attempt in range(MAX_RETRIES):
            if attempt > 2:  # a hot user: back off a little, at random, before trying again
                time.sleep(random.random() * min(0.001 * 2 ** (attempt - 2), 0.05))
            with self.client.pipeline() as pipe:
                try:
                    pipe.watch(*keys)
                    values = pipe.mget(keys) if keys else []
                    current = {user: None if data is None else UserState.from_bytes(data)
                               for user, data in zip(users, values)}
                    changed = update(current)
                    pipe.multi()
                    for user, state in changed.items():
                        pipe.set(self._key(version, user), state.to_bytes(), ex=self.ttl)
                    pipe.execute()
                    return changed
                except WatchError as error:
                    # redis-py also reports a connection lost or timed out while WATCHing as a
                    # WatchError (raised while handling that error): not a race, and after an
                    # EXEC without answer the write may have applied - computing the update
                    # again on the new states could apply it twice
                    if isinstance(error.__context__, _UNREACHABLE):
                        raise error.__context__
                    continue
        raise StoreContention(f"{len(users)} users: still contended after {MAX_RETRIES} tries")

    def seed(self, version, states, chunk=10_000):
        """As :meth:`MemoryStateStore.seed` (``SET NX``: a live state is never replaced)."""
        put, items = 0, list(states.items())
        for first in range(0, len(items), chunk):
            with self._reaching_redis(), self.client.pipeline(transaction=False) as pipe:
                for user, state in items[first:first + chunk]:
                    pipe.set(self._key(version, user), state.to_bytes(), nx=True, ex=self.ttl)
                put += sum(1 for done in pipe.execute() if done)
        return put

    def __len__(self):
        with self._reaching_redis():
            return sum(1 for _ in self.client.scan_iter(match=f"{self.prefix}:*", count=1000))

    def close(self):
        self.client.close()
