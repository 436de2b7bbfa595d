"""The time-gap decay: the batched form (training) and the one-gap form (serving) agree."""

import numpy as np
import torch

from recbole_hiertcn.core.gap_decay import decay_after, session_decay
from recbole_hiertcn.core.layers import session_layout


def test_the_batched_and_the_one_gap_forms_give_the_same_float32_values():
    rng = np.random.default_rng(0)
    times = np.cumsum(rng.choice([0, 40, 1800, 3600, 86_400, 400_000], size=(3, 30)), axis=1)
    times = times.astype(np.float64) + 1_000_000
    opens = torch.from_numpy(np.diff(times, axis=1, prepend=0) >= 1800)
    session, _ = session_layout(opens)
    count = int(session.max()) + 1
    bandwidth = 7200.0
    batched = session_decay(torch.from_numpy(times), opens, session, count, bandwidth)
    for row in range(3):
        starts = np.flatnonzero(opens[row].numpy() | (np.arange(30) == 0))
        expected = [1.0] + [decay_after(times[row, start] - times[row, start - 1], bandwidth)
                            for start in starts[1:]]
        got = batched[row, :len(expected)].tolist()
        assert got == expected, row


def test_a_negative_gap_counts_as_none():
    assert decay_after(-50.0, 10.0) == 1.0
    assert decay_after(0.0, 10.0) == 1.0
    assert decay_after(10.0, 10.0) == float(np.float32(np.exp(-1.0)))
