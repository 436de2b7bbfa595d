"""A served HierTCN, one event at a time.

:class:`StreamingHierTCN` keeps a :class:`~recbole_hiertcn.serving.state.UserState` per user in
a store and updates it at every event; a recommendation runs the TCN over the current
session's last ``receptive_field`` positions and, when the request opens a new session, one
high-level GRU step (not committed). The cost of an event or a request does not depend on the
user's history length, and the embedding equals the batched model's on the whole history.

Policies (the HTTP service maps the errors to 4xx answers):

* an unknown user starts empty;
* user and session ids are ``str`` (``7`` and ``"7"`` would otherwise silently be one user),
  item tokens ``str`` or ``int``; each at most ``max_id_length`` characters (default
  :data:`MAX_ID_LENGTH`); anything else is refused (:class:`InvalidValue`);
* an item the model never saw is refused (:class:`UnknownItem`); nothing is changed;
* a time that is not a finite number of at most :data:`MAX_ABS_TIME` in magnitude is refused
  (:class:`InvalidValue`), and so is an event without a session id for a model trained with
  session ids (:class:`BadEvent`);
* an event older than the user's last event is refused (:class:`OutOfOrderEvent`): the state
  would otherwise have to be rebuilt from a history it does not keep;
* a batch of events is checked whole before any of it is applied.
"""

import dataclasses
import math
import numbers

import numpy as np
import torch

from recbole_hiertcn.core.gap_decay import decay_after
from recbole_hiertcn.core.seen_items import seen_in_window
from recbole_hiertcn.core.session_rule import SessionRule
from recbole_hiertcn.serving.retrieval import ExactRetrieval
from recbole_hiertcn.serving.state import StateFormatError, UserState
from recbole_hiertcn.serving.store import MemoryStateStore

# Item ids of each user's last events kept for ``exclude_seen``.
SEEN_WINDOW = 200
# Longest user id, session id or item token accepted (characters): a state store keys on them.
MAX_ID_LENGTH = 256
# Largest |time| accepted (seconds): 2**53, up to which every integer is exact in float64 (the
# state's ``last_time``), so an integer time is never rounded; Unix times in seconds,
# milliseconds or microseconds fit, and a gap between two such times is always finite.
MAX_ABS_TIME = 2 ** 53


class BadEvent(ValueError):
    """An event or request that cannot be applied; nothing was changed."""


class UnknownItem(BadEvent):
    """An item token the model has no id for."""


class OutOfOrderEvent(BadEvent):
    """An event older than the user's last observed event."""


class InvalidValue(BadEvent):
    """A value of the wrong type, too long or out of range (the HTTP service answers 422)."""


def _shown(value, limit=40):
    """``repr(value)`` cut to ``limit`` characters: an error message never echoes a huge input."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


@dataclasses.dataclass(frozen=True)
class Event:
    user: str
    item: str  # or an int naming the same token
    time: float
    session: object = None  # session id (str) when the model was trained with session ids


def _event_opens(rule, state, time, session):
    """Whether an event at ``time`` / in ``session`` opens a session after the user's last
    event (:class:`~recbole_hiertcn.core.session_rule.SessionRule`); never without the value
    the rule reads."""
    if rule.by_time:
        return time is not None and rule.opens_after(state.last_time, time)
    return session is not None and rule.opens_after(state.last_session, str(session))


def _check_time(time, required):
    if time is None:
        if required:
            raise BadEvent("time is required")
        return None
    if isinstance(time, bool) or not isinstance(time, numbers.Real):
        raise InvalidValue(f"time must be a number of seconds, got {_shown(time)}")
    try:
        seconds = float(time)
    except OverflowError:  # an int (or Fraction) beyond float64
        seconds = math.inf
    # compared as given: an int just above 2**53 would round down to it as a float
    if not math.isfinite(seconds) or abs(time) > MAX_ABS_TIME:
        raise InvalidValue(f"time must be a finite number of seconds within +-2**53, got "
                           f"{_shown(time)}")
    return seconds


def _check_id(what, value, max_length):
    """``value`` as a plain ``str`` if it is a ``str`` of at most ``max_length`` characters."""
    if not isinstance(value, str):
        raise InvalidValue(f"{what} must be a str, got {type(value).__name__} {_shown(value)}")
    if len(value) > max_length:
        raise InvalidValue(f"{what} is {len(value)} characters long; at most {max_length}")
    return str(value)  # numpy.str_ -> str


def _check_item(item, max_length):
    """An item token: a ``str``, or an ``int`` naming the same token. Unlike a user id, an int
    cannot alias anything here: tokens are the export's fixed vocabulary, all strings (RecBole
    reads token columns as text), and :meth:`ServedModel.item_id` looks them up as
    ``str(token)``, so ``7`` can only ever be item ``"7"``; an id never seen is refused."""
    if isinstance(item, numbers.Integral) and not isinstance(item, bool):
        item = str(int(item))
    return _check_id("item", item, max_length)


class StreamingHierTCN:
    """``observe`` events and ``recommend`` items for users of a
    :class:`~recbole_hiertcn.serving.artifact.ServedModel`.

    Args:
        model: the loaded export.
        store: a state store (default: in memory).
        retrieval: top-k over all items (default: :class:`ExactRetrieval`).
        seen_window: item ids of each user's last events kept for ``exclude_seen``.
        max_id_length: longest user id, session id or item token accepted (characters).
    """

    def __init__(self, model, store=None, retrieval=None, seen_window=SEEN_WINDOW,
                 max_id_length=MAX_ID_LENGTH):
        if isinstance(max_id_length, bool) or not isinstance(max_id_length, int) or (
                max_id_length < 1):
            raise ValueError(f"max_id_length must be a positive integer, got {max_id_length!r}")
        self.max_id_length = max_id_length
        self.model, self.core, self.settings = model, model.core, model.settings
        self.store = MemoryStateStore() if store is None else store
        self.retrieval = ExactRetrieval(model) if retrieval is None else retrieval
        self.rule = SessionRule.from_name(model.session_rule, self.settings.session_gap)
        self.receptive_field = self.settings.receptive_field
        if self.receptive_field is None:
            raise ValueError("HierTCN serving streams the TCN low level; this model has "
                             "`low_level: gru`")
        window = model.history_window if self.settings.seen_item_bias else None
        if window is not None and seen_window < window:
            raise ValueError(f"seen_window {seen_window} is shorter than the {window} last items "
                             f"the model's seen-item offsets read")
        self.seen_window = seen_window
        with torch.no_grad():
            self._table = self.core.item_encoder.raw_vectors().detach().cpu().numpy().astype(
                np.float32)
        self._shape = (self.core.state_size, self._table.shape[1], self.receptive_field,
                       seen_window)

    # ------------------------------------------------------------------ state
    def empty_state(self):
        return UserState.empty(*self._shape)

    def state(self, user):
        """The user's state (an empty one for an unknown user)."""
        user = _check_id("user", user, self.max_id_length)
        return self._checked(self.store.get(self.model.version, user))

    def _session(self, session):
        return None if session is None else _check_id("session", session, self.max_id_length)

    def _checked(self, state):
        """A stored state, refused if another configuration wrote it (a shared store)."""
        if state is None:
            return self.empty_state()
        shape = (state.long_term.size, state.session_sum.size, state.recent.size,
                 state.seen.size)
        if shape != self._shape:
            raise StateFormatError(f"stored user state of shape {shape}, but this model and "
                                   f"seen_window need {self._shape}")
        return state

    def _decay(self, state, time):
        """``exp(-gap / gap_decay)`` for a session opening at ``time`` (1 without decay)."""
        if self.settings.gap_decay is None:
            return 1.0
        if time is None:
            raise BadEvent("time is required: the model decays its state with the gap "
                           "between sessions")
        return decay_after(time - state.last_time, self.settings.gap_decay)

    def _long_term_after(self, states, times):
        """High-level states after each user's current session, decayed to ``times``:
        ``[len(states), state_size]`` float32."""
        if self.core.high_level is None:
            return np.zeros((len(states), 0), np.float32)
        with torch.no_grad():
            after = self.core.session_state_after(
                torch.from_numpy(np.stack([s.long_term for s in states])),
                torch.from_numpy(np.stack([s.session_sum for s in states])),
                torch.tensor([s.session_count for s in states]),
                torch.from_numpy(np.stack([s.recent for s in states])))
        decay = np.array([self._decay(s, t) for s, t in zip(states, times)], np.float32)
        return after.numpy() * decay[:, None]

    def load_exported_states(self):
        """Put the export's users' states (``export --with-states``) into the store, for users
        it holds no state of; returns how many were put."""
        from recbole_hiertcn.serving.artifact import read_states

        return self.store.seed(self.model.version, dict(read_states(self.model, self._shape)))

    # ------------------------------------------------------------------ events
    def _resolve(self, event):
        user = _check_id("user", event.user, self.max_id_length)
        token = _check_item(event.item, self.max_id_length)
        session = self._session(event.session)
        time = _check_time(event.time, required=True)
        item = self.model.item_id(token)
        if item is None:
            raise UnknownItem(f"unknown item {token!r}")
        if session is None and not self.rule.by_time:
            raise BadEvent("session is required: the model was trained with session ids "
                           "(`session_field`)")
        return user, item, time, session

    def observe(self, user, item, time, session=None):
        """Apply one event: ``user`` and ``session`` ``str``, ``item`` a token (``str``, or an
        ``int`` naming the same token), ``time`` in seconds (see the module's policies)."""
        self.observe_many([Event(user, item, time, session)])

    def observe_many(self, events):
        """Apply a batch of :class:`Event` (or ``(user, item, time[, session])`` tuples) in
        their order; users are updated together, one event of each per round. The whole
        batch is checked first: a bad event applies nothing."""
        resolved = [self._resolve(e if isinstance(e, Event) else Event(*e)) for e in events]
        if not resolved:
            return
        by_user = {}
        for user, item, time, session in resolved:
            by_user.setdefault(user, []).append((item, time, session))
        for user, user_events in by_user.items():
            times = [time for _, time, _ in user_events]
            if any(later < earlier for earlier, later in zip(times, times[1:])):
                raise OutOfOrderEvent(f"user {user!r}: events of the batch are not in time "
                                      f"order")
        self.store.transact(self.model.version, list(by_user),
                            lambda states: self._apply(states, by_user))

    def _apply(self, states, by_user):
        states = {user: self._checked(state) for user, state in states.items()}
        for user, user_events in by_user.items():
            state = states[user]
            if state.events and user_events[0][1] < state.last_time:
                raise OutOfOrderEvent(f"user {user!r}: event at {user_events[0][1]} is older "
                                      f"than the user's last event ({state.last_time})")
        rounds = max(len(user_events) for user_events in by_user.values())
        for step in range(rounds):
            batch = [(states[user], user_events[step]) for user, user_events in by_user.items()
                     if step < len(user_events)]
            opening = [(state, time) for state, (_, time, session) in batch
                       if state.events > 0 and _event_opens(self.rule, state, time, session)]
            if opening:
                after = self._long_term_after([s for s, _ in opening], [t for _, t in opening])
                for (state, _), long_term in zip(opening, after):
                    state.long_term = long_term
                    state.session_count = 0
                    state.session_sum[:] = 0.0
                    state.recent[:] = 0
            for state, (item, time, session) in batch:
                state.session_sum += self._table[item]
                state.session_count += 1
                state.recent[:-1] = state.recent[1:]
                state.recent[-1] = item
                if state.seen.size:
                    state.seen[:-1] = state.seen[1:]
                    state.seen[-1] = item
                state.last_time, state.last_session = time, session
                state.events += 1
        return states

    # ------------------------------------------------------------------ predictions
    def embedding(self, user, time=None, session=None):
        """The user embedding for the next event (``[C]``), as the batched model computes it
        for a target at ``time`` / in ``session``; nothing is committed.

        A request that opens a new session (``time`` at least ``session_gap`` after the last
        event, or a new ``session`` id) is predicted from the long-term state updated with the
        current session; with ``target_session_known: False`` a request always continues the
        running session, as the model was trained."""
        state, time = self.state(user), _check_time(time, required=False)
        session = self._session(session)
        return self._hidden(state, time, self._request_opens(state, time, session))

    def _request_opens(self, state, time, session):
        """Whether the requested next event opens a session, as the model was trained to
        predict it (never with the target's session withheld, except for a user's first)."""
        return state.events == 0 or (self.settings.target_session_known
                                     and _event_opens(self.rule, state, time, session))

    def _hidden(self, state, time, opens):
        reach = self.receptive_field
        if opens:
            long_term = (state.long_term[None] if state.events == 0
                         else self._long_term_after([state], [time]))
            previous = np.zeros(reach, np.int64)
            last_position = 0
        else:
            long_term = state.long_term[None]
            # window positions p - reach + 1 .. p; the item before each is the session's
            # item at that position - 1, i.e. ``recent`` (0 where before the session)
            previous = state.recent
            last_position = state.session_count
        position = torch.arange(last_position - reach + 1, last_position + 1).unsqueeze(0)
        with torch.no_grad():
            return self.core.step_output(torch.from_numpy(previous).unsqueeze(0), position,
                                         torch.from_numpy(long_term))[0]

    def recommend(self, user, k=10, time=None, session=None, exclude_seen=False):
        """Top-``k`` ``(item token, score)`` pairs for the user's next event, best first;
        padding is never returned, and with ``exclude_seen`` neither are the user's last
        ``seen_window`` items."""
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise InvalidValue(f"k must be a positive integer, got {_shown(k)}")
        state = self.state(user)
        time = _check_time(time, required=False)
        session = self._session(session)
        opens = self._request_opens(state, time, session)
        hidden = self._hidden(state, time, opens)
        exclude = state.seen[state.seen > 0] if exclude_seen else None
        with torch.no_grad():
            query = self.core.retrieval_query(hidden)
        ids, scores = self.retrieval.top_k(query, int(k), exclude,
                                           self._seen_offsets(state, opens, hidden))
        return [(self.model.item_tokens[i], float(s)) for i, s in zip(ids, scores)]

    def _seen_offsets(self, state, opens, hidden):
        """``(item ids, score offsets)`` of the model's seen-item bias for the next event
        (None without the option): over the user's last ``history_window`` items, as an
        evaluation row's history; the running session's are the last ``session_count``,
        none when the request ``opens`` a session. ``hidden``: the query's vector, which
        ``seen_item_gate`` scales the two offsets by."""
        bias = self.core.seen_item_bias
        if bias is None or state.events == 0:
            return None
        window = state.seen[-self.model.history_window:]
        current, earlier = seen_in_window(window, 0 if opens else state.session_count)
        with torch.no_grad():
            scales = (1.0, 1.0) if bias.gate is None else bias.gate(hidden).tolist()
            values = ([float(bias.current) * scales[0]] * current.size
                      + [float(bias.earlier) * scales[1]] * earlier.size)
        return (torch.from_numpy(np.concatenate([current, earlier])),
                torch.tensor(values, dtype=torch.float32))
