"""Evaluation protocols on a flat, user-sorted interaction log, computed with numpy.

Positions are indices into the log sorted by (user, time). Position 0 of a user never is a target
(nothing precedes it), as in RecBole's sequential augmentation. Every protocol returns, per user,
the end of the training part (training targets are the user's positions ``1 .. train_end - 1``,
relative) and the global positions of the validation and test targets.

* ``LS`` - RecBole's leave-one-out on the user's targets: the last is the test target, the one
  before the validation target (``valid_and_test``; ``valid_only`` and ``test_only`` as in
  RecBole). A user with fewer targets keeps at least one for training, exactly as RecBole does.
* ``last_session`` - every target of the user's last session is a test target, every target of
  the second-to-last session a validation target, the sessions before are for training. A user
  with fewer sessions keeps at least one session for training.
"""

import numpy as np

PROTOCOLS = ("LS", "last_session")
MODES = ("valid_and_test", "valid_only", "test_only")


def user_layout(user_ids):
    """Start position and length of each user's block in a user-sorted array."""
    user_ids = np.asarray(user_ids)
    if len(user_ids) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    boundaries = np.flatnonzero(np.r_[True, user_ids[1:] != user_ids[:-1]])
    lengths = np.diff(np.r_[boundaries, len(user_ids)])
    return boundaries.astype(np.int64), lengths.astype(np.int64)


def session_opens(starts, values, by_time, gap):
    """True at every position that opens a session: a user's first position, a new session id,
    or (``by_time``) an idle gap ``>= gap`` seconds."""
    values = np.asarray(values)
    opens = np.ones(len(values), dtype=bool)
    if len(values) > 1:
        if by_time:
            opens[1:] = (values[1:] - values[:-1]) >= gap
        else:
            opens[1:] = values[1:] != values[:-1]
    opens[starts] = True
    return opens


def _held_out_counts(units, mode):
    """How many trailing units (targets or sessions) go to (valid, test), RecBole's rule."""
    wanted = 2 if mode == "valid_and_test" else 1
    legal = np.clip(units - 1, 0, wanted)
    if mode == "valid_and_test":
        valid = (legal == 2).astype(np.int64)
        test = (legal >= 1).astype(np.int64)
    elif mode == "valid_only":
        valid, test = legal, np.zeros_like(legal)
    else:
        valid, test = np.zeros_like(legal), legal
    return valid, test


def split(starts, lengths, protocol="LS", mode="valid_and_test", opens=None):
    """Split every user's targets.

    Args:
        starts, lengths: from :func:`user_layout`.
        protocol: ``LS`` or ``last_session``.
        mode: ``valid_and_test``, ``valid_only`` or ``test_only``.
        opens: from :func:`session_opens`; needed for ``last_session``.

    Returns:
        tuple: ``train_end`` per user (relative, exclusive), and the global positions of the
        validation and of the test targets (sorted).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"eval_args.split: unknown protocol {protocol!r}; use one of {PROTOCOLS}")
    if mode not in MODES:
        raise ValueError(f"eval_args.split: unknown mode {mode!r}; use one of {MODES}")
    if protocol == "LS":
        targets = np.maximum(lengths - 1, 0)
        valid, test = _held_out_counts(targets, mode)
        train_end = lengths - valid - test
        valid_pos = (starts + train_end)[valid > 0]
        test_pos = (starts + lengths - 1)[test > 0]
        return train_end, np.sort(valid_pos), np.sort(test_pos)

    if opens is None:
        raise ValueError("last_session needs session boundaries")
    session_starts = np.flatnonzero(opens)
    owner = np.searchsorted(starts, session_starts, side="right") - 1
    per_user = np.bincount(owner, minlength=len(starts))
    first_session = np.r_[0, np.cumsum(per_user)[:-1]]
    valid, test = _held_out_counts(per_user, mode)
    held = valid + test
    # position where the held-out sessions begin (or the user's end when none are held out)
    first_held = first_session + per_user - held
    session_end = np.r_[session_starts[1:], len(opens)]
    train_end = np.where(held > 0, session_starts[np.minimum(first_held, len(session_starts) - 1)]
                         - starts, lengths)
    valid_pos = _positions(session_starts, session_end, first_held[valid > 0], starts[valid > 0])
    test_pos = _positions(session_starts, session_end, (first_session + per_user - 1)[test > 0],
                          starts[test > 0])
    return train_end, valid_pos, test_pos


def ranges(begin, counts):
    """Concatenation of ``arange(begin[i], begin[i] + counts[i])`` over i, without a loop."""
    begin, counts = np.asarray(begin, np.int64), np.maximum(np.asarray(counts, np.int64), 0)
    offsets = np.repeat(begin - np.r_[0, np.cumsum(counts)[:-1]], counts)
    return np.arange(counts.sum(), dtype=np.int64) + offsets


def _positions(session_starts, session_end, sessions, user_starts):
    """All positions of the given sessions, except a user's very first position."""
    begin = np.maximum(session_starts[sessions], user_starts + 1)
    return np.sort(ranges(begin, session_end[sessions] - begin))
