"""Small served models and long generated histories for the serving tests."""

import numpy as np
import torch

from recbole_hiertcn.core.network import HierTCNCore
from recbole_hiertcn.core.settings import HierTCNSettings
from recbole_hiertcn.serving.artifact import ServedModel

N_ITEMS = 40
GAP = 1800.0

SMALL = dict(embedding_size=8, hidden_size=6, num_layers=2, tcn_channels=[8, 8], kernel_size=3,
             dilations=[1, 2], session_gap=GAP)


def served_model(session_rule="time_gap", seed=0, history_window=None, **settings):
    """A ServedModel of random weights (biases and the decay made to matter); with
    ``seen_item_bias`` its offsets read the last ``history_window`` (default 12) items."""
    values = dict(SMALL, **settings)
    if values.get("pretrained_item_field"):
        values.setdefault("output_mode", "embedding")
    torch.manual_seed(seed)
    pretrained = None
    if values.get("pretrained_item_field"):
        pretrained = torch.randn(N_ITEMS, 5)
    core = HierTCNCore(HierTCNSettings.from_mapping(values), N_ITEMS, pretrained)
    with torch.no_grad():
        for parameter in core.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    tokens = ["[PAD]"] + [f"i{n}" for n in range(1, N_ITEMS)]
    if values.get("seen_item_bias") and history_window is None:
        history_window = 12
    return ServedModel(core, f"test{seed}", session_rule, tokens, ["[PAD]", "u1", "u2"],
                       history_window=history_window)


def history(n_sessions, seed=0, start=1_000_000):
    """Item ids, integer times and session ids of one user: sessions of 1-6 events (every
    seventh of 14-30, longer than the receptive field), 30-600 s apart inside a session and
    1 hour to 3 days between sessions."""
    rng = np.random.default_rng(seed)
    items, times, sessions, now = [], [], [], start
    for session in range(n_sessions):
        length = rng.integers(14, 31) if session % 7 == 3 else rng.integers(1, 7)
        for _ in range(length):
            items.append(int(rng.integers(1, N_ITEMS)))
            times.append(now)
            sessions.append(session)
            now += int(rng.integers(30, 600))
        now += int(rng.integers(3_600, 3 * 86_400))
    return items, times, sessions
