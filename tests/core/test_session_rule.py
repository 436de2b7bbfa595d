"""The one session rule: a new user, a new session id, or an idle gap of at least
``session_gap`` seconds opens a session (a gap of exactly ``session_gap`` opens one)."""

import numpy as np
import pytest
import torch

from recbole_hiertcn.core.session_rule import (
    DEFAULT_SESSION_GAP,
    SESSION_ID,
    TIME_GAP,
    SessionRule,
)


def test_the_default_gap_is_half_an_hour():
    assert DEFAULT_SESSION_GAP == 1800.0
    assert SessionRule(by_time=True).gap == DEFAULT_SESSION_GAP


def test_the_id_rule_opens_where_the_id_changes_and_at_every_user_start():
    rule = SessionRule(by_time=False)
    assert rule.opens([7, 7, 8, 8, 7], starts=[0]).tolist() == [True, False, True, False, True]
    assert rule.opens([7, 7, 7], starts=[0, 2]).tolist() == [True, False, True]
    assert rule.opens_after("a", "a") is False and rule.opens_after("a", "b") is True


@pytest.mark.parametrize("gap, opens", [(1799, False), (1799.999, False), (1800, True),
                                        (1800.001, True), (0, False), (86_400, True)])
def test_the_gap_rule_opens_at_a_gap_of_at_least_session_gap(gap, opens):
    rule = SessionRule(by_time=True, gap=1800.0)
    times = np.array([1_000_000.0, 1_000_000.0 + gap])
    assert rule.opens(times, starts=[0]).tolist() == [True, opens]
    assert rule.opens_rows(torch.tensor([times.tolist()], dtype=torch.float64)).tolist() == [
        [True, opens]]
    assert rule.opens_after(times[0], times[1]) == opens
    assert bool(rule.continues_after(times[:1], times[1:])[0]) == (not opens)


def test_the_three_forms_agree_on_a_random_log():
    rng = np.random.default_rng(3)
    # gaps around the rule's edge, exact ones included
    times = np.cumsum(rng.choice([0, 30, 1799, 1800, 1801, 7200], size=200)).astype(np.float64)
    starts = np.array([0, 50, 120])
    rule = SessionRule(by_time=True)
    flat = rule.opens(times, starts)
    one_by_one = [True] + [rule.opens_after(a, b) for a, b in zip(times[:-1], times[1:])]
    one_by_one = np.array(one_by_one)
    one_by_one[starts] = True
    rows = rule.opens_rows(torch.from_numpy(times[None, 50:120]))[0].numpy()
    assert flat.tolist() == one_by_one.tolist()
    assert rows.tolist() == flat[50:120].tolist()


def test_a_one_event_log_and_an_empty_log():
    rule = SessionRule(by_time=True)
    assert rule.opens([5.0]).tolist() == [True]
    assert rule.opens(np.zeros(0)).tolist() == []


def test_export_names():
    assert SessionRule(by_time=True).name == TIME_GAP
    assert SessionRule(by_time=False).name == SESSION_ID
    assert SessionRule.from_name(SESSION_ID).by_time is False
    assert SessionRule.from_name(TIME_GAP, 60.0) == SessionRule(True, 60.0)
