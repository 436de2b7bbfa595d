"""What a served HierTCN keeps per user between events, and its byte layout.

Everything the next prediction needs, and nothing that grows with the history:

* ``long_term``: the high-level state the current session runs on (already scaled by the
  gap decay, if the model has one);
* ``session_sum`` / ``session_count``: the running sum of the current session's item table
  vectors and their count (the session's mean is the high level's next input);
* ``recent``: the current session's last ``receptive_field`` item ids, oldest first, 0 before
  the session's start - the TCN reads the item before each of its last ``receptive_field``
  positions;
* ``seen``: the user's last ``seen_window`` item ids (0: none yet), for ``exclude_seen``;
* ``last_time``, ``last_session``: time and session id of the last event (NaN / None before
  the first event); ``events``: events observed.
"""

import dataclasses
import math
import struct

import numpy as np

_MAGIC = b"HTS1"
# magic, state_size, table_dim, receptive_field, seen_window, session_count, events, last_time,
# length of the session id in bytes (or 0xFFFFFFFF for none)
_HEADER = struct.Struct("<4sIIIIQQdI")
_NO_SESSION = 0xFFFFFFFF


class StateFormatError(ValueError):
    """Stored bytes that are not a user state of this model's shape."""


@dataclasses.dataclass
class UserState:
    long_term: np.ndarray  # float32 [state_size]
    session_sum: np.ndarray  # float32 [table_dim]
    session_count: int
    recent: np.ndarray  # int64 [receptive_field]
    seen: np.ndarray  # int64 [seen_window]
    last_time: float
    last_session: object  # str or None
    events: int

    @classmethod
    def empty(cls, state_size, table_dim, receptive_field, seen_window):
        """A user with no events yet."""
        return cls(np.zeros(state_size, np.float32), np.zeros(table_dim, np.float32), 0,
                   np.zeros(receptive_field, np.int64), np.zeros(seen_window, np.int64),
                   math.nan, None, 0)

    def copy(self):
        return dataclasses.replace(self, long_term=self.long_term.copy(),
                                   session_sum=self.session_sum.copy(),
                                   recent=self.recent.copy(), seen=self.seen.copy())

    def to_bytes(self):
        """Compact bytes (ids as int32): header, then the arrays, then the session id."""
        session = b"" if self.last_session is None else self.last_session.encode("utf-8")
        header = _HEADER.pack(_MAGIC, self.long_term.size, self.session_sum.size,
                              self.recent.size, self.seen.size, self.session_count, self.events,
                              self.last_time,
                              _NO_SESSION if self.last_session is None else len(session))
        return b"".join((header, self.long_term.astype("<f4").tobytes(),
                         self.session_sum.astype("<f4").tobytes(),
                         self.recent.astype("<i4").tobytes(), self.seen.astype("<i4").tobytes(),
                         session))

    @classmethod
    def from_bytes(cls, data, shape=None):
        """Inverse of :meth:`to_bytes`; ``shape`` ``(state_size, table_dim, receptive_field,
        seen_window)`` is checked when given."""
        if len(data) < _HEADER.size:
            raise StateFormatError("user state: too short")
        (magic, state_size, table_dim, reach, window, count, events, last_time,
         session_length) = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            raise StateFormatError("user state: not a HierTCN user state")
        if shape is not None and (state_size, table_dim, reach, window) != tuple(shape):
            raise StateFormatError(f"user state: shape {(state_size, table_dim, reach, window)}"
                                   f" is not the model's {tuple(shape)}")
        offset = _HEADER.size
        arrays = []
        for size, dtype in ((state_size, "<f4"), (table_dim, "<f4"), (reach, "<i4"),
                            (window, "<i4")):
            end = offset + 4 * size
            if end > len(data):
                raise StateFormatError("user state: truncated")
            arrays.append(np.frombuffer(data[offset:end], dtype=dtype))
            offset = end
        if session_length == _NO_SESSION:
            session = None
        else:
            session = bytes(data[offset:offset + session_length]).decode("utf-8")
            offset += session_length
        if offset != len(data):
            raise StateFormatError("user state: trailing bytes")
        return cls(arrays[0].astype(np.float32), arrays[1].astype(np.float32), int(count),
                   arrays[2].astype(np.int64), arrays[3].astype(np.int64), float(last_time),
                   session, int(events))


_RECORD = struct.Struct("<II")  # bytes of the user token, bytes of the state


def encode_states(pairs):
    """``(user token, UserState)`` pairs -> one byte string (the export's ``states.bin``)."""
    parts = []
    for user, state in pairs:
        token, data = str(user).encode("utf-8"), state.to_bytes()
        parts += [_RECORD.pack(len(token), len(data)), token, data]
    return b"".join(parts)


def decode_states(data, shape=None):
    """Inverse of :func:`encode_states`: yields ``(user token, UserState)``."""
    view, offset = memoryview(data), 0
    while offset < len(data):
        if offset + _RECORD.size > len(data):
            raise StateFormatError("states: truncated record header")
        token_length, state_length = _RECORD.unpack_from(view, offset)
        offset += _RECORD.size
        end = offset + token_length + state_length
        if end > len(data):
            raise StateFormatError("states: truncated record")
        user = bytes(view[offset:offset + token_length]).decode("utf-8")
        yield user, UserState.from_bytes(bytes(view[offset + token_length:end]), shape)
        offset = end
