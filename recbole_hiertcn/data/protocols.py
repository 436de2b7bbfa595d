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
* ``user_holdout`` - the authors' reference protocol: users are split at random (seeded) into
  training, validation and test users (80/10/10 by default); every target of a validation or
  test user is held out and predicted from that user's own earlier events only (no state carried
  over from training), training uses the training users alone.
"""

import numpy as np

PROTOCOLS = ("LS", "last_session", "user_holdout")
DEFAULT_HOLDOUT = (0.8, 0.1, 0.1)  # shares of training, validation and test users
MODES = ("valid_and_test", "valid_only", "test_only")


def eval_args(protocol, mode="valid_and_test"):
    """RecBole's ``eval_args`` for a run under ``protocol`` (one of :data:`PROTOCOLS`): the
    split, the log in time order, grouped by user, full-sort evaluation (what the comparison
    tool sets for every run).

    Raises:
        ValueError: an unknown protocol or mode, named with the known ones.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; use one of {list(PROTOCOLS)}")
    if mode not in MODES:
        raise ValueError(f"unknown split mode {mode!r}; use one of {list(MODES)}")
    return {"split": {protocol: mode}, "order": "TO", "group_by": "user", "mode": "full"}


def user_layout(user_ids):
    """Start position and length of each user's block in a user-sorted array."""
    user_ids = np.asarray(user_ids)
    if len(user_ids) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    boundaries = np.flatnonzero(np.r_[True, user_ids[1:] != user_ids[:-1]])
    lengths = np.diff(np.r_[boundaries, len(user_ids)])
    return boundaries.astype(np.int64), lengths.astype(np.int64)


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


def split(starts, lengths, protocol="LS", mode="valid_and_test", opens=None, holdout=None):
    """Split every user's targets.

    Args:
        starts, lengths: from :func:`user_layout`.
        protocol: ``LS``, ``last_session`` or ``user_holdout``.
        mode: ``valid_and_test``, ``valid_only`` or ``test_only``.
        opens: True where a position opens a session
            (:meth:`~recbole_hiertcn.core.session_rule.SessionRule.opens`); needed for
            ``last_session``.
        holdout: a :class:`UserHoldout`; for ``user_holdout`` (default shares, seed 0).

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
    if protocol == "user_holdout":
        return (holdout or UserHoldout()).split(starts, lengths, mode)

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


class UserHoldout:
    """The ``user_holdout`` protocol: which users are held out, and their targets.

    ``shares``: fractions of training, validation and test users (summing to 1); ``seed``
    draws the assignment (the same seed, the same users). Under ``valid_only`` the test share
    trains, under ``test_only`` the validation share does.
    """

    def __init__(self, shares=DEFAULT_HOLDOUT, seed=0):
        shares = tuple(float(v) for v in shares)
        if len(shares) != 3 or min(shares) < 0 or abs(sum(shares) - 1) > 1e-9:
            raise ValueError("config key `user_holdout_shares` must be three fractions of "
                             f"users (train, valid, test) that sum to 1, got {list(shares)}")
        self.shares, self.seed = shares, int(seed)

    def groups(self, users, mode="valid_and_test"):
        """0 (train), 1 (valid) or 2 (test) per user: the counts rounded down, the rest train."""
        train, valid, test = self.shares
        if mode == "valid_only":
            test = 0.0
        elif mode == "test_only":
            valid = 0.0
        order = np.random.default_rng(self.seed).permutation(users)
        n_valid, n_test = int(users * valid), int(users * test)
        group = np.zeros(users, dtype=np.int8)
        group[order[:n_valid]] = 1
        group[order[n_valid:n_valid + n_test]] = 2
        return group

    def split(self, starts, lengths, mode="valid_and_test"):
        """``split``'s result: held-out users keep no training target (``train_end`` 1) and
        every target of theirs (positions 1 .. length - 1) is held out."""
        group = self.groups(len(starts), mode)
        held = group > 0
        train_end = np.where(held, np.minimum(lengths, 1), lengths)
        valid_pos = ranges(starts[group == 1] + 1, lengths[group == 1] - 1)
        test_pos = ranges(starts[group == 2] + 1, lengths[group == 2] - 1)
        return train_end, np.sort(valid_pos), np.sort(test_pos)
