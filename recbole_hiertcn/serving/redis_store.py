"""User states in Redis, shared by every service process.

One key per user and model version (``<prefix>:<version>:<user>``, the state's bytes as
value), so a new model never reads states of another. :meth:`RedisStateStore.transact` is an
optimistic transaction: ``WATCH`` the users' keys, read them, compute, write them in
``MULTI``/``EXEC``; if another process changed one of them in between, Redis drops the write
and the update is computed again on the new states. No event is lost and each user's events
apply one after another.
"""

import random
import time

from recbole_hiertcn.serving.state import UserState

MAX_RETRIES = 1000


class StoreContention(RuntimeError):
    """A transaction lost the race :data:`MAX_RETRIES` times in a row."""


class RedisStateStore:
    """Args: ``url`` (``redis://host:port/db``) or a ready ``client``; ``prefix`` of the keys;
    ``ttl`` seconds after which an idle user's state expires (None: never)."""

    def __init__(self, url="redis://127.0.0.1:6379/0", prefix="hiertcn", ttl=None,
                 client=None):
        if client is None:
            try:
                import redis
            except ImportError:
                raise ImportError("the Redis store needs the redis client: pip install redis"
                                  ) from None
            client = redis.Redis.from_url(url)
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 1):
            raise ValueError(f"ttl must be a positive number of seconds or None, got {ttl!r}")
        self.client, self.prefix, self.ttl = client, prefix, ttl

    def _key(self, version, user):
        return f"{self.prefix}:{version}:{user}"

    def get(self, version, user):
        data = self.client.get(self._key(version, user))
        return None if data is None else UserState.from_bytes(data)

    def transact(self, version, users, update):
        """As :meth:`MemoryStateStore.transact`, across processes."""
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
                except WatchError:
                    continue
        raise StoreContention(f"{len(users)} users: still contended after {MAX_RETRIES} tries")

    def seed(self, version, states, chunk=10_000):
        """As :meth:`MemoryStateStore.seed` (``SET NX``: a live state is never replaced)."""
        put, items = 0, list(states.items())
        for first in range(0, len(items), chunk):
            with self.client.pipeline(transaction=False) as pipe:
                for user, state in items[first:first + chunk]:
                    pipe.set(self._key(version, user), state.to_bytes(), nx=True, ex=self.ttl)
                put += sum(1 for done in pipe.execute() if done)
        return put

    def __len__(self):
        return sum(1 for _ in self.client.scan_iter(match=f"{self.prefix}:*", count=1000))

    def close(self):
        self.client.close()
