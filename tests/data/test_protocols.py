"""Evaluation protocols on hand-made layouts."""

import numpy as np
import pytest

from recbole_hiertcn.core.session_rule import SessionRule
from recbole_hiertcn.data import protocols


def layout(sessions_per_user):
    """Users given as lists of session lengths -> (starts, lengths, opens)."""
    lengths, opens = [], []
    for sessions in sessions_per_user:
        lengths.append(sum(sessions))
        for size in sessions:
            opens += [True] + [False] * (size - 1)
    lengths = np.array(lengths)
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    return starts, lengths, np.array(opens)


def test_user_layout():
    starts, lengths = protocols.user_layout([3, 3, 5, 9, 9, 9])
    assert starts.tolist() == [0, 2, 3] and lengths.tolist() == [2, 1, 3]


def test_session_opens_by_id_and_by_gap():
    starts = np.array([0, 3])
    assert SessionRule(False, 0).opens([7, 7, 8, 8, 8], starts).tolist() == [
        True, False, True, True, False]
    times = [0, 100, 1900, 2000, 5000]
    assert SessionRule(True, 1800).opens(times, starts).tolist() == [
        True, False, True, True, True]


@pytest.mark.parametrize("length, train_end, valid, test", [
    (1, 1, None, None),   # no target at all
    (2, 2, None, None),   # one target: kept for training (RecBole's rule)
    (3, 2, None, 2),      # two targets: train, test
    (4, 2, 2, 3),         # three: train, valid, test
    (7, 5, 5, 6),
])
def test_ls_matches_recbole_leave_one_out(length, train_end, valid, test):
    end, valid_pos, test_pos = protocols.split(np.array([10]), np.array([length]), "LS")
    assert end.tolist() == [train_end]
    assert valid_pos.tolist() == ([] if valid is None else [10 + valid])
    assert test_pos.tolist() == ([] if test is None else [10 + test])


def test_ls_single_held_out_modes():
    starts, lengths = np.array([0]), np.array([5])
    end, valid, test = protocols.split(starts, lengths, "LS", "test_only")
    assert end.tolist() == [4] and valid.tolist() == [] and test.tolist() == [4]
    end, valid, test = protocols.split(starts, lengths, "LS", "valid_only")
    assert end.tolist() == [4] and valid.tolist() == [4] and test.tolist() == []


def test_last_session_holds_out_whole_sessions():
    # user 0: sessions of 2, 3, 2, 4 items; user 1: one session; user 2: two sessions
    starts, lengths, opens = layout([[2, 3, 2, 4], [5], [1, 3]])
    end, valid, test = protocols.split(starts, lengths, "last_session", opens=opens)
    assert end.tolist() == [5, 5, 1]
    assert valid.tolist() == [5, 6]  # user 0's third session
    assert test.tolist() == [7, 8, 9, 10,  # user 0's last session
                             17, 18, 19]  # user 2's second session (starts at 16 + 1)
    # the first position of a user is never a target, even when its session is held out
    starts, lengths, opens = layout([[1, 2]])
    end, valid, test = protocols.split(starts, lengths, "last_session", opens=opens)
    assert end.tolist() == [1] and test.tolist() == [1, 2]


def test_unknown_protocol_is_refused():
    with pytest.raises(ValueError, match="eval_args.split"):
        protocols.split(np.array([0]), np.array([3]), "RS")


def test_user_holdout_holds_out_whole_users_with_every_target():
    lengths = np.array([3, 1, 4, 2, 5, 3, 2, 6, 2, 3])
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    holdout = protocols.UserHoldout((0.6, 0.2, 0.2), seed=3)
    group = holdout.groups(len(lengths))
    assert (group == 1).sum() == 2 and (group == 2).sum() == 2
    end, valid, test = protocols.split(starts, lengths, "user_holdout", holdout=holdout)
    for user, (start, length) in enumerate(zip(starts, lengths)):
        targets = list(range(start + 1, start + length))  # every event but the first
        if group[user] == 0:
            assert end[user] == length  # all of it trains
            assert not set(targets) & (set(valid) | set(test))
        else:
            assert end[user] == 1  # nothing of a held-out user trains
            assert set(targets) <= set(valid if group[user] == 1 else test)
    assert len(valid) + len(test) == sum(lengths[group > 0] - 1)
    # the same seed draws the same users; another seed other users
    assert np.array_equal(protocols.UserHoldout((0.6, 0.2, 0.2), 3).groups(10), group)
    assert not np.array_equal(protocols.UserHoldout((0.6, 0.2, 0.2), 4).groups(10), group)


def test_user_holdout_single_held_out_modes_give_the_other_share_to_training():
    holdout = protocols.UserHoldout((0.8, 0.1, 0.1), seed=0)
    assert set(holdout.groups(100, "valid_only")) == {0, 1}
    assert (holdout.groups(100, "test_only") == 2).sum() == 10


@pytest.mark.parametrize("shares", [(0.8, 0.1), (0.5, 0.4, 0.4), (1.2, -0.1, -0.1)])
def test_user_holdout_shares_are_checked(shares):
    with pytest.raises(ValueError, match="`user_holdout_shares`"):
        protocols.UserHoldout(shares)


def test_eval_args_name_the_protocol_and_refuse_unknown_ones():
    """What the presets, the comparison tool and the tests pass to RecBole for a protocol."""
    assert protocols.eval_args("last_session") == {
        "split": {"last_session": "valid_and_test"}, "order": "TO", "group_by": "user",
        "mode": "full"}
    assert protocols.eval_args("LS", "test_only")["split"] == {"LS": "test_only"}
    with pytest.raises(ValueError, match=r"unknown protocol 'leave_one_out'; use one of"):
        protocols.eval_args("leave_one_out")
    with pytest.raises(ValueError, match="unknown split mode 'valid'"):
        protocols.eval_args("LS", "valid")
