"""Building blocks of HierTCN: session layout, the session-level GRU and a session-causal TCN.

Sequences are kept in a flat layout ``[batch, time]`` in which a user's sessions sit one after
another. The TCN never mixes sessions: each convolution tap is masked unless it reaches back to a
position of the same session, which is exactly a causal TCN run on every session separately with
zero left-padding - but in one batched call, with no padding per session.
"""

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from recbole_hiertcn.core.receptive_field import receptive_field


def session_layout(opens):
    """Session index and position inside the session for a flat layout.

    Args:
        opens (torch.BoolTensor): ``[B, T]``, True where a position starts a new session. The first
            position always starts one, whatever ``opens[:, 0]`` says.

    Returns:
        tuple: ``session`` ``[B, T]`` (0 for the first session of each row) and ``position``
        ``[B, T]`` (0 at each session's first position).
    """
    opens = opens.clone()
    opens[:, 0] = True
    session = torch.cumsum(opens.long(), dim=1) - 1
    index = torch.arange(opens.size(1), device=opens.device).expand_as(opens)
    start = torch.cummax(torch.where(opens, index, torch.zeros_like(index)), dim=1).values
    return session, index - start


def session_means(encoder, items, opens, session, num_sessions):
    """Mean item vector of every session of every row: ``[B, num_sessions, D]``.

    One ``bag_mean`` over the flat layout (see :class:`~recbole_hiertcn.core.item_encoder.
    ItemEncoder`), a bag per session, so no ``[B, T, D]`` tensor is made. Padding items (id 0)
    are left out of the means; a session of padding only, or a session index beyond the row's
    sessions, gets a zero vector.
    """
    batch, length = items.shape
    starts = opens.clone()
    starts[:, 0] = True
    offsets = torch.nonzero(starts.reshape(-1)).squeeze(1)
    means = encoder.bag_mean(items.reshape(-1), offsets)
    row, index = offsets // length, session.reshape(-1)[offsets]
    keep = index < num_sessions
    out = means.new_zeros(batch, num_sessions, means.size(-1))
    out[row[keep], index[keep]] = means[keep]
    return out


class SessionStateGRU(nn.Module):
    """High level of HierTCN: a stacked GRU that steps once per finished session.

    Its input for session ``i`` is a summary of that session (the mean item embedding by
    default, see :mod:`~recbole_hiertcn.core.session_summary`) plus a learned bias.
    :meth:`forward` returns the state *before* every session - zero before the first - with the
    hidden states of all layers concatenated (``num_layers * hidden_size`` features).

    Rows are packed by their number of finished sessions, so a batch costs the sum of its
    rows' session counts, not ``batch x longest row``.
    """

    def __init__(self, input_size, hidden_size, num_layers, dropout=0.0):
        super().__init__()
        self.input_bias = nn.Parameter(torch.zeros(input_size))
        self.layers = nn.ModuleList(
            nn.GRU(input_size if i == 0 else hidden_size, hidden_size, batch_first=True)
            for i in range(num_layers)
        )
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.state_size = hidden_size * num_layers

    def forward(self, session_inputs, finished, decay=None):
        """States before each session.

        Args:
            session_inputs: ``[B, S, D]`` summary of every session.
            finished: ``[B]`` sessions of each row whose state after them is needed; the state
                before session ``i`` is read only for ``i <= finished``.
            decay: optional ``[B, S]`` factors: the state is scaled by ``decay[:, i]`` before
                session ``i`` uses it and before the GRU steps on from it (the reference's
                time-gap decay). Then the GRU steps session by session.

        Returns:
            ``[B, S, state_size]``: zero before the first session, and zero beyond
            ``finished`` (never read) on the packed path.
        """
        if decay is not None:
            return self._decayed(session_inputs, decay)
        batch, num_sessions, _ = session_inputs.shape
        before = session_inputs.new_zeros(batch, num_sessions, self.state_size)
        finished = finished.clamp(max=num_sessions - 1)
        rows = torch.nonzero(finished > 0).squeeze(1)
        if rows.numel() == 0:
            return before
        lengths = finished[rows]
        steps = int(lengths.max())
        inputs = session_inputs[rows, :steps] + self.input_bias
        packed = pack_padded_sequence(inputs, lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        outputs = []
        for i, gru in enumerate(self.layers):
            if i > 0:
                packed = PackedSequence(self.dropout(packed.data), packed.batch_sizes,
                                        packed.sorted_indices, packed.unsorted_indices)
            packed, _ = gru(packed)
            outputs.append(pad_packed_sequence(packed, batch_first=True, total_length=steps)[0])
        before[rows, 1:steps + 1] = torch.cat(outputs, dim=-1)
        return before

    def _decayed(self, session_inputs, decay):
        batch, num_sessions, _ = session_inputs.shape
        state = session_inputs.new_zeros(batch, self.state_size)
        before = []
        for i in range(num_sessions):
            state = decay[:, i:i + 1] * state
            before.append(state)
            if i < num_sessions - 1:
                state = self.step(state, session_inputs[:, i])
        return torch.stack(before, dim=1)

    def step(self, state, session_input):
        """The state after one more session: ``state`` ``[B, state_size]`` (the layers'
        states side by side), ``session_input`` ``[B, D]`` that session's mean item vector."""
        hidden = self.state_size // len(self.layers)
        layer_input, updated = session_input + self.input_bias, []
        for j, gru in enumerate(self.layers):
            if j > 0:
                layer_input = self.dropout(layer_input)
            layer_state = state[:, j * hidden:(j + 1) * hidden].unsqueeze(0).contiguous()
            out, _ = gru(layer_input.unsqueeze(1), layer_state)
            layer_input = out[:, 0]
            updated.append(layer_input)
        return torch.cat(updated, dim=-1)


class SessionCausalConv1d(nn.Module):
    """Dilated causal convolution that only reaches back inside the current session.

    Output at ``t`` is ``W [x_t ; x_{t-d} ; ... ; x_{t-(k-1)d}] + b``, where a tap counts only if
    ``position[t] >= j * d`` (it lands in the same session); other taps read zeros.
    """

    def __init__(self, in_channels, out_channels, kernel_size, dilation):
        super().__init__()
        self.kernel_size, self.dilation = kernel_size, dilation
        # One matrix over the stacked taps: the same parameters and FLOPs as a Conv1d.
        self.linear = nn.Linear(kernel_size * in_channels, out_channels)

    def forward(self, x, position, slots=None):
        """``x`` ``[B, T, C_in]``, ``position`` ``[B, T]`` -> ``[B, T, C_out]``.

        With ``slots`` (a sorted 1-d index tensor), only those output positions are computed
        (``[B, len(slots), C_out]``); taps that fall before position 0 read zeros.
        """
        length = x.size(1)
        taps = []
        for j in range(self.kernel_size):
            shift = j * self.dilation
            if slots is not None:
                source = slots - shift
                shifted = x[:, source.clamp(min=0)] * (source >= 0).view(1, -1, 1).to(x.dtype)
                reach = position[:, slots] >= shift
            else:
                if shift == 0:
                    shifted = x
                elif shift >= length:
                    shifted = torch.zeros_like(x)
                else:
                    shifted = F.pad(x[:, :-shift], (0, 0, shift, 0))
                reach = position >= shift
            taps.append(shifted * reach.unsqueeze(-1).to(x.dtype))
        return self.linear(torch.cat(taps, dim=-1))

    def input_slots(self, slots):
        """Input positions that the outputs at ``slots`` read."""
        shifts = torch.arange(self.kernel_size, device=slots.device) * self.dilation
        needed = (slots.unsqueeze(1) - shifts).flatten()
        return torch.unique(needed[needed >= 0])


NORMS = {
    "none": lambda channels: nn.Identity(),  # the reference; no parameters
    "layer": nn.LayerNorm,  # over the channels of each position, as NextItNet's blocks
}


class TemporalBlock(nn.Module):
    """Residual block: ``convs`` session-causal convolutions, each followed by ``norm`` (see
    :data:`NORMS`), ReLU and dropout, then ``relu(out + residual)``; the residual is projected
    when the channel count changes.

    Normalisation, when chosen, is over the channels of one position: never over time, which
    would leak later positions into earlier outputs.
    """

    def __init__(self, in_channels, out_channels, kernel_size, dilation, convs=1, dropout=0.0,
                 norm="none"):
        super().__init__()
        self.convs = nn.ModuleList(
            SessionCausalConv1d(in_channels if i == 0 else out_channels, out_channels,
                                kernel_size, dilation)
            for i in range(convs)
        )
        self.norms = nn.ModuleList(NORMS[norm](out_channels) for _ in range(convs))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.residual = (
            nn.Linear(in_channels, out_channels) if in_channels != out_channels else nn.Identity()
        )

    def forward(self, x, position):
        out = x
        for conv, norm in zip(self.convs, self.norms):
            out = self.dropout(torch.relu(norm(conv(out, position))))
        return torch.relu(out + self.residual(x))

    def plan(self, slots):
        """Positions each conv must compute so that the block output is right at ``slots``.

        Returns the positions needed of the block input and, per conv, its output positions.
        """
        conv_slots = []
        for conv in reversed(self.convs):
            conv_slots.append(slots)
            slots = conv.input_slots(slots)
        conv_slots.reverse()
        return torch.unique(torch.cat([slots, conv_slots[-1]])), conv_slots

    def forward_at(self, x, position, slots, conv_slots):
        """Block output at ``slots`` only; ``x`` must be right at the positions :meth:`plan` named.

        Returns a ``[B, T, C_out]`` tensor that is right at ``slots`` and zero elsewhere.
        """
        out = x
        for conv, norm, needed in zip(self.convs, self.norms, conv_slots):
            values = self.dropout(torch.relu(norm(conv(out, position, needed))))
            out = values.new_zeros(x.size(0), x.size(1), values.size(-1))
            out[:, needed] = values
        result = torch.zeros_like(out)
        result[:, slots] = torch.relu(out[:, slots] + self.residual(x[:, slots]))
        return result


class SessionTCN(nn.Module):
    """Low level of HierTCN: a stack of :class:`TemporalBlock` over the positions of sessions."""

    def __init__(self, in_channels, channels, kernel_size, dilations, convs_per_block=1,
                 dropout=0.0, norm="none"):
        super().__init__()
        widths = [in_channels] + list(channels)
        self.blocks = nn.ModuleList(
            TemporalBlock(widths[i], widths[i + 1], kernel_size, dilations[i], convs_per_block,
                          dropout, norm)
            for i in range(len(channels))
        )
        # How many positions (including itself) one output can see.
        self.receptive_field = receptive_field(kernel_size, dilations, convs_per_block)

    def forward(self, x, position):
        for block in self.blocks:
            x = block(x, position)
        return x

    def forward_last(self, x, position):
        """Output at the last position only: ``[B, C]``.

        Each conv is evaluated just at the positions the last output depends on (for the
        default kernel 5 and dilations 1, 2: 5 + 1 positions instead of 2 x 13).
        """
        slots = torch.tensor([x.size(1) - 1], device=x.device)
        plans = []
        for block in reversed(self.blocks):
            needed, conv_slots = block.plan(slots)
            plans.append((slots, conv_slots))
            slots = needed
        for block, (block_slots, conv_slots) in zip(self.blocks, reversed(plans)):
            x = block.forward_at(x, position, block_slots, conv_slots)
        return x[:, -1]


class SessionGRU(nn.Module):
    """The "HierGRU" low level: a GRU over the positions of every session (reset at each start).

    Same interface as :class:`SessionTCN` on a full flat layout (every row starts a session);
    all sessions of a batch are packed into one GRU call. Its reach inside a session is
    unbounded, so ``receptive_field`` is None.
    """

    receptive_field = None

    def __init__(self, in_channels, hidden_size, dropout=0.0):
        super().__init__()
        self.gru = nn.GRU(in_channels, hidden_size, batch_first=True)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.hidden_size = hidden_size

    def forward(self, x, position):
        """``x`` ``[B, T, C]``, ``position`` ``[B, T]`` (``< 0``: not a real position)."""
        batch, length, channels = x.shape
        flat_position = position.reshape(-1)
        valid = flat_position >= 0
        session = torch.cumsum((flat_position == 0).long(), dim=0) - 1
        starts = torch.nonzero(flat_position == 0).squeeze(1)
        lengths = torch.bincount(session[valid], minlength=len(starts))
        steps = int(lengths.max())
        index = starts.unsqueeze(1) + torch.arange(steps, device=x.device)
        inside = torch.arange(steps, device=x.device).unsqueeze(0) < lengths.unsqueeze(1)
        flat = x.reshape(-1, channels)
        sessions = flat[index.clamp(max=len(flat) - 1)] * inside.unsqueeze(-1).to(x.dtype)
        packed = pack_padded_sequence(sessions, lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        out, _ = self.gru(packed)
        out = pad_packed_sequence(out, batch_first=True, total_length=steps)[0]
        result = x.new_zeros(batch * length, self.hidden_size)
        result[index[inside]] = out[inside]
        return self.dropout(result.view(batch, length, self.hidden_size))
