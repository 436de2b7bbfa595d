"""Which items a query position has seen, in its running session or before it."""

import numpy as np
import pytest
import torch

from recbole_hiertcn.core.seen_items import (
    SeenItemBias,
    SeenItemCounts,
    SeenItems,
    seen_in_window,
    seen_items,
)

N_ITEMS = 12


def ids(mask_row):
    return sorted(torch.nonzero(mask_row).flatten().tolist())


def layout():
    """One row: sessions [3, 4, 5], [6, 3, 7], [8] then padding; a second row [9], [10, 9]."""
    items = torch.tensor([[3, 4, 5, 6, 3, 7, 8, 0],
                          [9, 10, 9, 0, 0, 0, 0, 0]])
    opens = torch.tensor([[1, 0, 0, 1, 0, 0, 1, 1],
                          [1, 1, 0, 1, 1, 1, 1, 1]], dtype=torch.bool)
    return items, opens


def test_a_position_sees_the_items_before_it_split_by_the_running_session():
    items, opens = layout()
    rows, positions = torch.tensor([0, 0, 0, 0, 1]), torch.tensor([2, 5, 6, 7, 2])
    seen = seen_items(items, opens, rows, positions).masks(N_ITEMS)
    assert ids(seen.current[0]) == [3, 4] and ids(seen.earlier[0]) == []
    # inside session 2: 6 is in it; 3 is in both sessions and counts as running-session only
    assert ids(seen.current[1]) == [3, 6] and ids(seen.earlier[1]) == [4, 5]
    # a position that opens a session has seen nothing of the running one
    assert ids(seen.current[2]) == [] and ids(seen.earlier[2]) == [3, 4, 5, 6, 7]
    # padding (id 0) is never seen; the last session is over at the padding's position
    assert ids(seen.current[3]) == [] and ids(seen.earlier[3]) == [3, 4, 5, 6, 7, 8]
    assert ids(seen.current[4]) == [10] and ids(seen.earlier[4]) == [9]


def test_the_first_position_and_the_target_itself_are_never_seen():
    items, opens = layout()
    seen = seen_items(items, opens, torch.tensor([0, 0]), torch.tensor([0, 1])).masks(N_ITEMS)
    assert not seen.current[0].any() and not seen.earlier[0].any()
    assert ids(seen.current[1]) == [3]  # not 4, the item at the position itself


def test_the_window_limits_how_far_back_a_position_looks():
    items, opens = layout()
    seen = seen_items(items, opens, torch.tensor([0]), torch.tensor([7]), window=3).masks(
        N_ITEMS)
    assert ids(seen.current[0]) == [] and ids(seen.earlier[0]) == [3, 7, 8]


def test_at_reads_the_kinds_of_given_items():
    items, opens = layout()
    seen = seen_items(items, opens, torch.tensor([0, 0]), torch.tensor([4, 5]))
    one = seen.at(torch.tensor([6, 4]))  # 6: running session at both; 4: before it at 5
    assert one.current.tolist() == [True, False] and one.earlier.tolist() == [False, True]
    several = seen.at(torch.tensor([[4, 11], [11, 5]]))
    assert several.current.tolist() == [[False, False], [False, False]]
    assert several.earlier.tolist() == [[True, False], [False, True]]
    # 3: only in an earlier session at 4; in the running session and an earlier one at 5,
    # where it counts as the running session's
    three = seen.at(torch.tensor([3, 3]))
    assert three.current.tolist() == [False, True] and three.earlier.tolist() == [True, False]


def test_at_equals_the_dense_masks_gathered_on_random_layouts():
    """Scoring a few items per query (BPR, uni100 evaluation) reads the history directly; it
    must agree with the whole-catalogue masks everywhere, repeats and padding included."""
    generator = torch.Generator().manual_seed(0)
    items = torch.randint(0, 7, (5, 30), generator=generator)  # many repeats, some padding
    opens = torch.rand(5, 30, generator=generator) < 0.3
    rows = torch.randint(0, 5, (200,), generator=generator)
    positions = torch.randint(0, 30, (200,), generator=generator)
    for window in (None, 4):
        history = seen_items(items, opens, rows, positions, window)
        dense = history.masks(7)
        asked = torch.randint(0, 7, (200, 3), generator=generator)
        sparse = history.at(asked)
        assert torch.equal(sparse.current, dense.current.gather(1, asked))
        assert torch.equal(sparse.earlier, dense.earlier.gather(1, asked))
        assert dense.current.any() and dense.earlier.any()


def test_the_bias_adds_one_offset_per_mask():
    bias = SeenItemBias(3)
    assert torch.equal(bias.current, torch.tensor(0.0)) and torch.equal(bias.earlier,
                                                                         torch.tensor(0.0))
    with torch.no_grad():
        bias.current.fill_(-2.0)
        bias.earlier.fill_(0.5)
    seen = SeenItems(torch.tensor([[True, False, False]]), torch.tensor([[False, True, False]]))
    assert torch.equal(bias(seen), torch.tensor([[-2.0, 0.5, 0.0]]))


def test_counts_weigh_each_earlier_occurrence_by_its_age():
    """Row 0 at position 6 (sessions [3, 4, 5], [6, 3, 7], then the query opens [8]): 3 was
    had once a session ago and once two sessions ago, 4 once two sessions ago; 8 never."""
    items, opens = layout()
    history = seen_items(items, opens, torch.tensor([0]), torch.tensor([6]))
    counts = SeenItemCounts(N_ITEMS)
    decay = 0.9
    with torch.no_grad():
        counts.count_weight.fill_(1.0)
        counts.repeat[4] = 0.25
    offsets = counts.all(history)[0]
    assert torch.allclose(offsets[3], torch.log1p(torch.tensor(1 + decay)))
    assert torch.allclose(offsets[4], torch.log1p(torch.tensor(decay)) + 0.25)
    assert torch.allclose(offsets[6], torch.log1p(torch.tensor(1.0)))
    assert offsets[8] == 0 and offsets[0] == 0


def test_counts_leave_the_running_sessions_items_to_its_own_offset():
    items, opens = layout()
    history = seen_items(items, opens, torch.tensor([0]), torch.tensor([5]))  # inside [6, 3, 7]
    counts = SeenItemCounts(N_ITEMS)
    with torch.no_grad():
        counts.current.fill_(-3.0)
        counts.count_weight.fill_(1.0)
        counts.repeat.fill_(0.5)
    offsets = counts.all(history)[0]
    assert offsets[3] == -3.0 and offsets[6] == -3.0  # 3: also in an earlier session
    assert torch.allclose(offsets[4], torch.log1p(torch.tensor(1.0)) + 0.5)
    assert offsets[9] == 0  # never seen: no repeat offset


def random_history(generator, queries, window):
    """SeenHistory of ``queries`` random positions of 5 random rows of 30 ids below 7."""
    items = torch.randint(0, 7, (5, 30), generator=generator)
    opens = torch.rand(5, 30, generator=generator) < 0.3
    rows = torch.randint(0, 5, (queries,), generator=generator)
    positions = torch.randint(0, 30, (queries,), generator=generator)
    return seen_items(items, opens, rows, positions, window)


def test_counts_start_as_the_two_offsets_and_agree_in_all_three_forms():
    generator = torch.Generator().manual_seed(0)
    history = random_history(generator, 100, 6)
    flags, counts = SeenItemBias(7), SeenItemCounts(7)
    with torch.no_grad():
        for module in (flags, counts):
            module.current.fill_(-1.0)
            module.earlier.fill_(0.7)
    assert torch.equal(counts.all(history), flags.all(history))
    for ids in (torch.tensor([6, 0, 2]), torch.tensor([3, 5, 3, 1])):  # a repeat, too
        assert torch.equal(flags.columns(history, ids), flags.all(history)[:, ids])
    with torch.no_grad():
        counts.count_weight.fill_(0.8)
        counts.decay_logit.fill_(0.3)
        counts.repeat.copy_(torch.linspace(-1, 1, 7))
    dense = counts.all(history)
    asked = torch.randint(0, 7, (100, 3), generator=generator)
    assert torch.allclose(counts.at(history, asked), dense.gather(1, asked))
    assert torch.allclose(counts.at(history, asked[:, 0]), dense.gather(1, asked[:, :1])[:, 0])
    shared = torch.tensor([6, 0, 2])
    assert torch.allclose(counts.columns(history, shared), dense[:, shared])
    repeated = torch.tensor([3, 5, 3, 1])  # a sampled softmax may draw an id twice
    assert torch.allclose(counts.columns(history, repeated), dense[:, repeated])
    assert not torch.equal(dense, flags.all(history))
    dense.sum().backward()
    assert counts.decay_logit.grad != 0 and counts.count_weight.grad != 0


def test_the_served_form_agrees_with_the_batched_one():
    """seen_in_window (one served user, numpy) gives the ids the batched masks mark."""
    rng = np.random.default_rng(1)
    n_items = 9
    for _ in range(50):
        window = rng.integers(0, n_items, size=int(rng.integers(1, 12)))
        running = int(rng.integers(0, window.size + 3))
        length = window.size
        items = torch.from_numpy(np.r_[window, 0]).unsqueeze(0)  # the query's slot at the end
        opens = torch.zeros(1, length + 1, dtype=torch.bool)
        opens[0, 0] = True
        opens[0, max(length - running, 0)] = True  # the running session's first item
        if running == 0:
            opens[0, length] = True  # the query opens a session
        seen = seen_items(items, opens, torch.tensor([0]), torch.tensor([length]))
        masks = seen.masks(n_items)
        current, earlier = seen_in_window(window, running)
        assert current.tolist() == torch.nonzero(masks.current[0]).squeeze(1).tolist()
        assert earlier.tolist() == torch.nonzero(masks.earlier[0]).squeeze(1).tolist()


def set_gate(module, seed):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        module.gate.linear.weight.copy_(torch.randn(module.gate.linear.weight.shape,
                                                    generator=generator))
        module.gate.linear.bias.copy_(torch.randn(module.gate.linear.bias.shape,
                                                  generator=generator))


@pytest.mark.parametrize("kind", [SeenItemBias, SeenItemCounts])
def test_a_gate_starts_as_no_gate_then_scales_each_term_per_query(kind):
    generator = torch.Generator().manual_seed(1)
    history = random_history(generator, 60, 8)
    hidden = torch.randn(60, 4, generator=generator)
    plain, gated = kind(7), kind(7, gate_size=4)
    gated.load_state_dict(plain.state_dict(), strict=False)  # the terms' weights, not the gate
    with torch.no_grad():
        for module in (plain, gated):
            module.current.fill_(-1.0)
            module.earlier.fill_(0.7)
            if kind is SeenItemCounts:
                module.count_weight.fill_(0.8)
                module.repeat.copy_(torch.linspace(-1, 1, 7))
    assert torch.equal(gated.all(history, hidden), plain.all(history))
    set_gate(gated, 0)
    dense = gated.all(history, hidden)
    scales = 2 * torch.sigmoid(hidden @ gated.gate.linear.weight.t() + gated.gate.linear.bias)
    seen = history.masks(7)
    expected = -1.0 * seen.current * scales[:, :1] + 0.7 * seen.earlier * scales[:, 1:2]
    if kind is SeenItemCounts:
        expected = expected + scales[:, 2:3] * (plain.all(history) - plain(seen))
    assert torch.allclose(dense, expected, atol=1e-6)
    shared = torch.tensor([3, 5, 3, 1])
    assert torch.allclose(gated.columns(history, shared, hidden), dense[:, shared], atol=1e-6)
    asked = torch.randint(0, 7, (60, 3), generator=generator)
    assert torch.allclose(gated.at(history, asked, hidden), dense.gather(1, asked), atol=1e-6)
    # [M, k] ids with their own [M, k, C] query vectors (a BPR batch's negatives)
    assert torch.allclose(gated.at(history, asked, hidden.unsqueeze(1).expand(-1, 3, -1)),
                          dense.gather(1, asked), atol=1e-6)
    assert torch.allclose(gated.at(history, asked[:, 0], hidden), dense.gather(
        1, asked[:, :1])[:, 0], atol=1e-6)
    with pytest.raises(ValueError, match="seen_item_gate .* pass hidden"):
        gated.all(history)


def test_a_gate_draws_nothing_from_the_random_stream():
    """With and without the gate, the same seed gives the same dropout masks and negatives."""
    torch.manual_seed(0)
    SeenItemCounts(7)
    without = torch.rand(3)
    torch.manual_seed(0)
    SeenItemCounts(7, gate_size=4)
    assert torch.equal(torch.rand(3), without)
