"""Where sessions start: the plugin's one session rule.

An event opens a session when it is its user's first, when its session id differs from the
event before it (a dataset with a session field), or, by time, when at least ``gap`` seconds
passed since the event before it (``session_gap``; an idle gap of exactly ``gap`` opens one).

The dataset and the evaluation protocols (flat numpy logs), the session-kNN index, the models
(``[B, T]`` torch batches) and the served stream (one event at a time) all ask this object.
"""

import dataclasses

import numpy as np
import torch

DEFAULT_SESSION_GAP = 1800.0  # seconds of idle time that open a session (30 minutes)
# How an export names its rule (``session_rule`` of an artifact and of a checkpoint).
TIME_GAP, SESSION_ID = "time_gap", "session_id"
RULE_NAMES = (TIME_GAP, SESSION_ID)


@dataclasses.dataclass(frozen=True)
class SessionRule:
    """``by_time``: sessions from time gaps of at least ``gap`` seconds; otherwise from session
    ids (``gap`` unused)."""

    by_time: bool
    gap: float = DEFAULT_SESSION_GAP

    @classmethod
    def from_name(cls, name, gap=DEFAULT_SESSION_GAP):
        """The rule an export names (anything but ``session_id`` is the time-gap rule)."""
        return cls(by_time=name != SESSION_ID, gap=gap)

    @property
    def name(self):
        return TIME_GAP if self.by_time else SESSION_ID

    def _changes(self, values):
        """True where a value (last axis, numpy or torch) opens a session after the one before
        it; one shorter than ``values``."""
        if self.by_time:
            return (values[..., 1:] - values[..., :-1]) >= self.gap
        return values[..., 1:] != values[..., :-1]

    def opens(self, values, starts=None):
        """Flat numpy log -> True at every position that opens a session. ``values``: session
        ids or times in log order; ``starts``: each user's first position (always opens)."""
        values = np.asarray(values)
        opens = np.ones(len(values), dtype=bool)
        if len(values) > 1:
            opens[1:] = self._changes(values)
        if starts is not None:
            opens[starts] = True
        return opens

    def opens_rows(self, values):
        """``[B, T]`` torch rows of one user each -> True where a session opens (position 0
        always)."""
        opens = torch.ones_like(values, dtype=torch.bool)
        opens[:, 1:] = self._changes(values)
        return opens

    def opens_after(self, previous, value):
        """One event: whether ``value`` (its time or session id) opens a session after an event
        of the same user with ``previous``."""
        if self.by_time:
            return value - previous >= self.gap
        return value != previous

    def continues_after(self, previous_time, time):
        """Numpy times: True where ``time`` is less than ``gap`` after ``previous_time`` (the
        session running at ``previous_time`` goes on); by-time rules only."""
        return time - previous_time < self.gap
