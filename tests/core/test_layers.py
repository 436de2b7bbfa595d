"""The building blocks against slow, obviously-correct references."""

import math

import torch
from torch import nn
from torch.nn import functional as F

from recbole_hiertcn.core.gap_decay import session_decay
from recbole_hiertcn.core.item_encoder import ItemEncoder
from recbole_hiertcn.core.layers import (
    SessionGRU,
    SessionCausalConv1d,
    SessionStateGRU,
    SessionTCN,
    session_layout,
    session_means,
)


def test_session_layout_on_a_hand_example():
    opens = torch.tensor([[False, False, True, False, False, True],
                          [True, True, False, True, False, False]])
    session, position = session_layout(opens)
    assert session.tolist() == [[0, 0, 1, 1, 1, 2], [0, 1, 1, 2, 2, 2]]
    assert position.tolist() == [[0, 1, 0, 1, 2, 0], [0, 0, 1, 0, 1, 2]]


def test_session_means_leave_out_padding_and_missing_sessions():
    emb = ItemEncoder(10, 3)
    items = torch.tensor([[4, 5, 6, 0], [7, 0, 8, 9]])
    opens = torch.tensor([[True, False, True, False], [True, True, False, False]])
    session, _ = session_layout(opens)
    means = session_means(emb, items, opens, session, 3)
    w = emb.all_items().detach()
    assert torch.allclose(means[0, 0], (w[4] + w[5]) / 2)
    assert torch.allclose(means[0, 1], w[6])  # the padding after it does not count
    assert torch.equal(means[0, 2], torch.zeros(3))
    assert torch.allclose(means[1, 0], w[7])
    assert torch.allclose(means[1, 1], (w[8] + w[9]) / 2)


def conv_per_session(conv, x, opens):
    """Reference: run an ordinary causal Conv1d on every session separately (zero left pad)."""
    k, d = conv.kernel_size, conv.dilation
    in_ch = x.size(-1)
    # nn.Linear weight [out, k*in] over taps (x_t, x_{t-d}, ...) -> Conv1d weight [out, in, k]
    weight = conv.linear.weight.view(-1, k, in_ch).flip(1).permute(0, 2, 1)
    out = torch.zeros(x.size(0), x.size(1), weight.size(0))
    session, _ = session_layout(opens)
    for b in range(x.size(0)):
        for s in session[b].unique():
            idx = (session[b] == s).nonzero().squeeze(1)
            seg = x[b, idx].t().unsqueeze(0)  # [1, C, len]
            seg = F.pad(seg, ((k - 1) * d, 0))
            out[b, idx] = F.conv1d(seg, weight, conv.linear.bias, dilation=d)[0].t()
    return out


def test_masked_conv_equals_a_conv_run_on_each_session_alone():
    torch.manual_seed(0)
    conv = SessionCausalConv1d(4, 3, kernel_size=3, dilation=2)
    x = torch.randn(2, 11, 4)
    opens = torch.zeros(2, 11, dtype=torch.bool)
    opens[0, [4, 5, 9]] = True
    opens[1, [7]] = True
    _, position = session_layout(opens)
    assert torch.allclose(conv(x, position), conv_per_session(conv, x, opens), atol=1e-5)


def test_tcn_last_position_fast_path_equals_full_computation():
    torch.manual_seed(1)
    for convs_per_block in (1, 2):
        tcn = SessionTCN(6, [6, 8, 8], kernel_size=3, dilations=[1, 2, 4],
                         convs_per_block=convs_per_block)
        x = torch.randn(3, tcn.receptive_field + 4, 6)
        opens = torch.rand(3, x.size(1)) < 0.15
        _, position = session_layout(opens)
        full = tcn(x, position)[:, -1]
        assert torch.allclose(tcn.forward_last(x, position), full, atol=1e-5)


def test_tcn_output_depends_on_exactly_the_receptive_field():
    torch.manual_seed(2)
    tcn = SessionTCN(32, [32, 32], kernel_size=5, dilations=[1, 2])
    assert tcn.receptive_field == 13
    x = torch.randn(1, 20, 32, requires_grad=True)
    position = torch.arange(20).unsqueeze(0)
    tcn(x, position)[0, -1].sum().backward()
    touched = (x.grad.abs().sum(-1)[0] > 0).nonzero().squeeze(1).tolist()
    assert min(touched) == 20 - 13 and max(touched) == 19


def test_packed_session_gru_equals_a_gru_run_row_by_row():
    torch.manual_seed(3)
    gru = SessionStateGRU(5, 4, num_layers=2)
    inputs = torch.randn(3, 6, 5)
    finished = torch.tensor([0, 5, 2])
    states = gru(inputs, finished)
    assert states.shape == (3, 6, 8)
    assert torch.equal(states[:, 0], torch.zeros(3, 8))
    for row, count in enumerate(finished.tolist()):
        h = [torch.zeros(1, 4), torch.zeros(1, 4)]
        for step in range(count):
            layer_in = inputs[row, step:step + 1] + gru.input_bias
            for layer, cell in enumerate(gru.layers):
                _, out = cell(layer_in.unsqueeze(0), h[layer].unsqueeze(0))
                h[layer] = out[0]
                layer_in = h[layer]
            expected = torch.cat(h, dim=-1)[0]
            assert torch.allclose(states[row, step + 1], expected, atol=1e-5)


def test_receptive_field_counts_every_conv():
    tcn = SessionTCN(4, [4, 4], kernel_size=5, dilations=[1, 2], convs_per_block=2)
    assert tcn.receptive_field == 1 + 2 * 4 * 3
    assert isinstance(tcn.blocks[0].residual, nn.Identity)
    assert isinstance(SessionTCN(4, [8], 3, [1]).blocks[0].residual, nn.Linear)


def test_session_gru_equals_a_gru_run_on_each_session_alone():
    torch.manual_seed(4)
    layer = SessionGRU(5, 3)
    x = torch.randn(2, 9, 5)
    opens = torch.zeros(2, 9, dtype=torch.bool)
    opens[0, [3, 4, 8]] = True
    opens[1, [6]] = True
    session, position = session_layout(opens)
    out = layer(x, position)
    for b in range(2):
        for s in session[b].unique():
            idx = (session[b] == s).nonzero().squeeze(1)
            expected, _ = layer.gru(x[b, idx].unsqueeze(0))
            assert torch.allclose(out[b, idx], expected[0], atol=1e-6)


def decay_per_session(times, opens, num_sessions, bandwidth):
    """Reference: for every row and session, exp(-(its first time - previous session's last
    time) / bandwidth), gaps below 0 counted as 0; 1 where the session or the previous one is
    missing."""
    session, _ = session_layout(opens)
    out = torch.ones(times.size(0), num_sessions)
    for b in range(times.size(0)):
        for s in range(1, num_sessions):
            now = (session[b] == s).nonzero().squeeze(1)
            before = (session[b] == s - 1).nonzero().squeeze(1)
            if len(now) and len(before):
                gap = max(float(times[b, now[0]] - times[b, before].max()), 0.0)
                out[b, s] = math.exp(-gap / bandwidth)
    return out


def test_session_decay_equals_a_per_session_reference_with_padding_and_extra_sessions():
    o, _ = True, False
    times = torch.tensor([
        # three sessions, the last one of several events, then time padding (joins it)
        [0.0, 60.0, 5000.0, 5060.0, 12000.0, 12030.0, 12090.0, 0.0, 0.0],
        # two sessions, then padding whose session id 0 opens a "session" of its own
        [0.0, 100.0, 9000.0, 9030.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        # four sessions: the fourth is beyond num_sessions (as after a query's session)
        [0.0, 4000.0, 4100.0, 20000.0, 20050.0, 50000.0, 50010.0, 50020.0, 0.0],
    ], dtype=torch.float64)
    opens = torch.tensor([[o, _, o, _, o, _, _, _, _],
                          [o, _, o, _, o, _, _, _, _],
                          [o, o, _, o, _, o, _, _, _]])
    session = session_layout(opens)[0]
    decay = session_decay(times, opens, session, 3, bandwidth=10_000.0)
    expected = decay_per_session(times, opens, 3, 10_000.0)
    assert torch.allclose(decay, expected, atol=1e-6)
    # the last column holds real decays: the multi-event session and the clamped row's third
    assert decay[0, 2] < 0.55 and decay[2, 2] < 0.3
