"""Where served user states live.

A store maps ``(model version, user)`` to a :class:`~recbole_hiertcn.serving.state.UserState`.
Every change goes through :meth:`transact`: the store reads the states of the users named,
hands them to an update function and writes back what it returns, with no other update of
those users in between - so two requests for one user never lose an event. The in-memory store
does it with a lock; :class:`~recbole_hiertcn.serving.redis_store.RedisStateStore` with
Redis' optimistic transactions (``WATCH`` / ``MULTI``), which several service processes share.
"""

import threading


class MemoryStateStore:
    """User states in this process's memory (the default)."""

    def __init__(self):
        self._states = {}
        self._lock = threading.Lock()

    def get(self, version, user):
        """The user's state, or None for a user without events under this model version."""
        with self._lock:
            state = self._states.get((version, user))
            return None if state is None else state.copy()

    def transact(self, version, users, update):
        """``update({user: state or None})`` -> ``{user: new state}``, applied atomically for
        these users; returns what ``update`` returned."""
        with self._lock:
            current = {user: self._states.get((version, user)) for user in users}
            current = {user: None if state is None else state.copy()
                       for user, state in current.items()}
            changed = update(current)
            for user, state in changed.items():
                self._states[(version, user)] = state
            return changed

    def seed(self, version, states):
        """Put ``{user: state}`` for users the store has no state of (a restart keeps the
        newer live states); returns how many were put."""
        with self._lock:
            put = 0
            for user, state in states.items():
                if (version, user) not in self._states:
                    self._states[(version, user)] = state
                    put += 1
            return put

    def states(self, version):
        """``{user: state}`` of every user under ``version`` (copies)."""
        with self._lock:
            return {user: state.copy() for (held, user), state in self._states.items()
                    if held == version}

    def __len__(self):
        with self._lock:
            return len(self._states)

    def close(self):
        pass
