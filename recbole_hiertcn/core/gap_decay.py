"""The time-gap decay of HierTCN's session state (``gap_decay``, the reference's Pinterest
setting): before a session, the high-level state is scaled by ``exp(-gap / gap_decay)``, the gap
being the time from the previous session's last event to the session's first. The batched form
(training, evaluation) and the one-session form (serving) compute it alike: in float64, rounded
to float32.
"""

import math

import numpy as np
import torch


def decay_after(gap, bandwidth):
    """``exp(-gap / bandwidth)`` of one gap in seconds (a negative gap counts as 0), as the
    float32 value :func:`session_decay` gives."""
    return float(np.float32(math.exp(-max(gap, 0.0) / bandwidth)))


def session_decay(times, opens, session, num_sessions, bandwidth):
    """``exp(-gap / bandwidth)`` per session, ``[B, num_sessions]``: the gap is the time from the
    previous session's last event to the session's first (1 for the first session)."""
    batch = times.size(0)
    times = times.to(torch.float64)
    # Scatter into num_sessions + 1 columns and drop the spare last one: positions of sessions
    # with index >= num_sessions (after the query's session, or a "session" opened by padding
    # after the target) go there, not clamped into column num_sessions - 1 over its values.
    spare = torch.full_like(session, num_sessions)
    inside = session < num_sessions
    last = times.new_full((batch, num_sessions + 1), float("-inf")).scatter_reduce(
        1, torch.where(inside, session, spare), times, reduce="amax")[:, :num_sessions]
    # Only the position that opens a session writes its first time: one writer per (row,
    # session), so no write order matters (on CUDA it is undefined). Every other position
    # goes to the spare column.
    starts = opens.clone()
    starts[:, 0] = True
    first = times.new_zeros(batch, num_sessions + 1).scatter(
        1, torch.where(starts & inside, session, spare), times)[:, :num_sessions]
    gap = (first[:, 1:] - last[:, :-1]).clamp(min=0.0)
    gap = torch.nan_to_num(gap, nan=0.0, posinf=0.0)
    decay = torch.ones(batch, num_sessions, dtype=times.dtype, device=times.device)
    decay[:, 1:] = torch.exp(-gap / bandwidth)
    return decay.float()
