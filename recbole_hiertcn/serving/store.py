"""Where served user states live.

A store maps ``(model version, user)`` to a :class:`~recbole_hiertcn.serving.state.UserState`.
Every change goes through :meth:`transact`: the store reads the states of the users named,
hands them to an update function and writes back what it returns, with no other update of
those users in between - so two requests for one user never lose an event. The in-memory store
does it with a lock; :class:`~recbole_hiertcn.serving.redis_store.RedisStateStore` with
Redis' optimistic transactions (``WATCH`` / ``MULTI``), which several service processes share.

A store that cannot be reached (Redis refusing connections, or not answering within its
timeout) raises :class:`StoreUnavailable`; the HTTP service answers 503 with ``Retry-After``.
"""

import collections
import math
import numbers
import threading
import time


class StoreUnavailable(RuntimeError):
    """The state store cannot be reached now (refused, closed or timed out); a retry later may
    succeed. A write whose answer was lost may have applied (Redis: an ``EXEC`` timed out)."""


def check_ttl(ttl, integer=False):
    """``ttl``: None, or a positive number of seconds (an int for Redis' ``EX``)."""
    kinds = numbers.Integral if integer else numbers.Real
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, kinds)
                            or not math.isfinite(ttl) or ttl <= 0):
        raise ValueError(f"ttl must be a positive number of seconds or None, got {ttl!r}")
    return ttl


class MemoryStateStore:
    """User states in this process's memory (the default).

    Unbounded by default. ``max_users``: keep at most this many states, dropping the least
    recently updated first (LRU on events: a read does not count, as with Redis' ``ttl``);
    ``ttl``: drop a state ``ttl`` seconds after its user's last event. A dropped user simply
    starts fresh, as an unknown user: their next event opens a new history. ``clock``: seconds,
    for the ttl (monotonic by default).
    """

    def __init__(self, max_users=None, ttl=None, clock=time.monotonic):
        if max_users is not None and (isinstance(max_users, bool)
                                      or not isinstance(max_users, numbers.Integral)
                                      or max_users < 1):
            raise ValueError(f"max_users must be a positive integer or None, got {max_users!r}")
        self.max_users, self.ttl, self._clock = max_users, check_ttl(ttl), clock
        # (version, user) -> (time of the last update, state), least recently updated first
        self._states = collections.OrderedDict()
        self._lock = threading.Lock()

    # the helpers below run under the lock
    def _expired(self, updated, now):
        return self.ttl is not None and now - updated >= self.ttl

    def _live(self, key, now):
        """The state under ``key``, or None (an expired one is dropped)."""
        entry = self._states.get(key)
        if entry is None:
            return None
        if self._expired(entry[0], now):
            del self._states[key]
            return None
        return entry[1]

    def _put(self, key, state, now):
        self._states[key] = (now, state)
        self._states.move_to_end(key)

    def _evict(self, now):
        """Drop expired states, then the least recently updated beyond ``max_users``. Entries
        are in update order, so both come off the front: amortised O(1) an update."""
        while self._states and self._expired(next(iter(self._states.values()))[0], now):
            self._states.popitem(last=False)
        while self.max_users is not None and len(self._states) > self.max_users:
            self._states.popitem(last=False)

    def get(self, version, user):
        """The user's state, or None for a user without events under this model version."""
        with self._lock:
            state = self._live((version, user), self._clock())
            return None if state is None else state.copy()

    def transact(self, version, users, update):
        """``update({user: state or None})`` -> ``{user: new state}``, applied atomically for
        these users; returns what ``update`` returned."""
        with self._lock:
            now = self._clock()
            current = {user: self._live((version, user), now) for user in users}
            current = {user: None if state is None else state.copy()
                       for user, state in current.items()}
            changed = update(current)
            for user, state in changed.items():
                self._put((version, user), state, now)
            self._evict(now)
            return changed

    def seed(self, version, states):
        """Put ``{user: state}`` for users the store has no state of (a restart keeps the
        newer live states); returns how many were put (``max_users`` may drop some again)."""
        with self._lock:
            now, put = self._clock(), 0
            for user, state in states.items():
                if self._live((version, user), now) is None:
                    self._put((version, user), state, now)
                    put += 1
            self._evict(now)
            return put

    def states(self, version):
        """``{user: state}`` of every user under ``version`` (copies)."""
        with self._lock:
            self._evict(self._clock())
            return {user: state.copy() for (held, user), (_, state) in self._states.items()
                    if held == version}

    def __len__(self):
        with self._lock:
            self._evict(self._clock())
            return len(self._states)

    def close(self):
        pass
