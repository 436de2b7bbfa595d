"""The settings of HierTCN and HRNN, read and checked once, with every default written once.

A key missing from the mapping given (a RecBole ``Config``, a plain dict, an exported artifact's
``settings.json``) takes the default of its field here. ``properties/model/HierTCN.yaml`` and
``HRNN.yaml`` repeat these defaults for RecBole (a test holds them equal). Nothing here imports
RecBole, so a served model reads its settings the same way the trained one did.
"""

import dataclasses

from recbole_hiertcn.core.config_values import (
    choice,
    config_error,
    flag,
    number,
    optional_name,
    optional_positive_seconds,
    positive_int,
    positive_int_list,
    probability,
    seconds,
)
from recbole_hiertcn.core.receptive_field import receptive_field
from recbole_hiertcn.core.session_rule import DEFAULT_SESSION_GAP

MODEL = "HierTCN"
SCORINGS = ("untied", "tied")
OUTPUT_MODES = ("scores", "embedding")
HIGH_LEVELS = ("gru", "none")  # none: the "TCN over the current session only" ablation
LOW_LEVELS = ("tcn", "gru")  # gru: the reference's "HierGRU" ablation
TCN_NORMS = ("none", "layer")  # recbole_hiertcn.core.layers.NORMS
LOSSES = ("CE", "BPR")
ITEM_INITS = ("random", "ppmi")  # ppmi: recbole_hiertcn.model.item_init


# Options taken out because their ablations were neutral (docs/config.md, "Removed options"):
# {key: the one value still accepted, which is what the model does now}. Checkpoints and exports
# saved before the removal carry the key; with that value they load as before.
REMOVED_KEYS = {"session_summary": "mean"}


def forget_removed_keys(values):
    """Refuse a removed option set to anything but the behaviour kept (naming the key);
    the kept value itself is accepted and ignored."""
    for key, kept in REMOVED_KEYS.items():
        if key in values and values[key] is not None and values[key] != kept:
            raise config_error(MODEL, key, f"was removed (docs/config.md, \"Removed options\"); "
                               f"only {kept!r}, what the model always does now, is accepted, "
                               f"got {values[key]!r}")


class _Settings:
    """What both settings classes share: their keys, and a mapping read with their defaults."""

    @classmethod
    def keys(cls):
        return tuple(field.name for field in dataclasses.fields(cls))

    @classmethod
    def _with_defaults(cls, values):
        """``{key: values[key], or the field's default when values lacks it}``."""
        return {field.name: values[field.name] if field.name in values else field.default
                for field in dataclasses.fields(cls)}


@dataclasses.dataclass(frozen=True)
class HierTCNSettings(_Settings):
    """The model's own keys and their defaults (one-line documentation of each in
    ``properties/model/HierTCN.yaml``)."""

    embedding_size: int = 128
    hidden_size: int = 128
    num_layers: int = 2
    tcn_channels: tuple = (128, 128)
    kernel_size: int = 5
    dilations: tuple = (1, 2)
    convs_per_block: int = 1
    tcn_norm: str = "none"
    dropout_prob: float = 0.0
    embedding_dropout: float = 0.0
    output_dropout: float = 0.0
    session_gap: float = DEFAULT_SESSION_GAP
    session_field: object = "session_id"  # str or None
    target_session_known: bool = True
    time_field: object = None  # str or None (None: the dataset's TIME_FIELD)
    high_level: str = "gru"
    low_level: str = "tcn"
    scoring: str = "untied"
    loss_type: str = "CE"
    pretrained_item_field: object = None  # str or None
    freeze_pretrained: bool = True
    output_mode: str = "scores"
    hinge_margin: float = 0.1
    gap_decay: object = None  # float seconds or None
    seen_item_bias: bool = False
    seen_item_counts: bool = False
    seen_item_cooccurrence: bool = False
    seen_item_gate: bool = False
    item_init: str = "random"
    cooccurrence_neighbours: int = 100
    cooccurrence_leave_session_out: bool = False

    @classmethod
    def from_mapping(cls, values):
        """Settings from ``values`` (anything with ``in`` and ``[]``), the default for each key
        it lacks. Raises ValueError naming the key of a bad value."""
        forget_removed_keys(values)
        merged = cls._with_defaults(values)
        settings = cls(
            embedding_size=positive_int(MODEL, merged, "embedding_size"),
            hidden_size=positive_int(MODEL, merged, "hidden_size"),
            num_layers=positive_int(MODEL, merged, "num_layers"),
            tcn_channels=tuple(positive_int_list(MODEL, merged, "tcn_channels")),
            kernel_size=positive_int(MODEL, merged, "kernel_size"),
            dilations=tuple(positive_int_list(MODEL, merged, "dilations")),
            convs_per_block=positive_int(MODEL, merged, "convs_per_block"),
            tcn_norm=choice(MODEL, merged, "tcn_norm", TCN_NORMS),
            dropout_prob=probability(MODEL, merged, "dropout_prob"),
            embedding_dropout=probability(MODEL, merged, "embedding_dropout"),
            output_dropout=probability(MODEL, merged, "output_dropout"),
            session_gap=seconds(MODEL, merged, "session_gap"),
            session_field=optional_name(MODEL, merged, "session_field"),
            target_session_known=flag(MODEL, merged, "target_session_known"),
            time_field=optional_name(MODEL, merged, "time_field"),
            high_level=choice(MODEL, merged, "high_level", HIGH_LEVELS),
            low_level=choice(MODEL, merged, "low_level", LOW_LEVELS),
            scoring=choice(MODEL, merged, "scoring", SCORINGS),
            loss_type=choice(MODEL, merged, "loss_type", LOSSES),
            pretrained_item_field=optional_name(MODEL, merged, "pretrained_item_field"),
            freeze_pretrained=flag(MODEL, merged, "freeze_pretrained"),
            output_mode=choice(MODEL, merged, "output_mode", OUTPUT_MODES),
            hinge_margin=number(MODEL, merged, "hinge_margin"),
            gap_decay=optional_positive_seconds(MODEL, merged, "gap_decay"),
            seen_item_bias=flag(MODEL, merged, "seen_item_bias"),
            seen_item_counts=flag(MODEL, merged, "seen_item_counts"),
            seen_item_cooccurrence=flag(MODEL, merged, "seen_item_cooccurrence"),
            seen_item_gate=flag(MODEL, merged, "seen_item_gate"),
            item_init=choice(MODEL, merged, "item_init", ITEM_INITS),
            cooccurrence_neighbours=positive_int(MODEL, merged, "cooccurrence_neighbours"),
            cooccurrence_leave_session_out=flag(MODEL, merged, "cooccurrence_leave_session_out"),
        )
        settings._check_together()
        return settings

    def _check_together(self):
        if len(self.dilations) != len(self.tcn_channels):
            raise config_error(
                MODEL, "dilations",
                f"needs one entry per TCN block ({len(self.tcn_channels)} in `tcn_channels`), "
                f"got {list(self.dilations)}",
            )
        if self.tcn_norm != "none" and self.low_level != "tcn":
            raise config_error(MODEL, "tcn_norm", "normalises the low-level TCN's blocks: it "
                               "needs `low_level: tcn`")
        if self.seen_item_bias and self.output_mode != "scores":
            raise config_error(MODEL, "seen_item_bias", "offsets item scores: it needs "
                               "`output_mode: scores`")
        _check_seen_item_options(MODEL, self)
        if self.output_mode == "embedding" and not self.pretrained_item_field:
            raise config_error(MODEL, "output_mode", "'embedding' regresses into the pretrained "
                               "item space: set `pretrained_item_field`")

    def to_dict(self):
        """Plain JSON-ready values (lists for the tuples); :meth:`from_mapping` reads it back."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in dataclasses.asdict(self).items()}

    @property
    def receptive_field(self):
        """Positions (itself included) one TCN output sees; None for a GRU low level."""
        if self.low_level != "tcn":
            return None
        return receptive_field(self.kernel_size, self.dilations, self.convs_per_block)


HRNN = "HRNN"
HRNN_VARIANTS = ("all", "init")
HRNN_USER_INPUTS = ("session_state", "item_mean")


@dataclasses.dataclass(frozen=True)
class HRNNSettings(_Settings):
    """HRNN's own keys and their defaults (one-line documentation of each in
    ``properties/model/HRNN.yaml``); its session keys are read with the session boundary."""

    embedding_size: int = 128
    hidden_size: int = 128
    user_hidden_size: int = 128
    hrnn_variant: str = "all"
    # session_state: the paper's input, also for a config saved before the key existed
    user_input: str = "session_state"
    scoring: str = "untied"
    loss_type: str = "CE"
    dropout_prob: float = 0.0
    seen_item_bias: bool = False
    seen_item_counts: bool = False
    seen_item_cooccurrence: bool = False
    seen_item_gate: bool = False
    item_init: str = "random"
    cooccurrence_neighbours: int = 100
    cooccurrence_leave_session_out: bool = False

    @classmethod
    def from_mapping(cls, values):
        """Settings from ``values`` (anything with ``in`` and ``[]``), the default for each key
        it lacks. Raises ValueError naming the key of a bad value."""
        merged = cls._with_defaults(values)
        settings = cls(
            embedding_size=positive_int(HRNN, merged, "embedding_size"),
            hidden_size=positive_int(HRNN, merged, "hidden_size"),
            user_hidden_size=positive_int(HRNN, merged, "user_hidden_size"),
            hrnn_variant=choice(HRNN, merged, "hrnn_variant", HRNN_VARIANTS),
            user_input=choice(HRNN, merged, "user_input", HRNN_USER_INPUTS),
            scoring=choice(HRNN, merged, "scoring", SCORINGS),
            loss_type=choice(HRNN, merged, "loss_type", ("CE",)),
            dropout_prob=probability(HRNN, merged, "dropout_prob"),
            seen_item_bias=flag(HRNN, merged, "seen_item_bias"),
            seen_item_counts=flag(HRNN, merged, "seen_item_counts"),
            seen_item_cooccurrence=flag(HRNN, merged, "seen_item_cooccurrence"),
            seen_item_gate=flag(HRNN, merged, "seen_item_gate"),
            item_init=choice(HRNN, merged, "item_init", ITEM_INITS),
            cooccurrence_neighbours=positive_int(HRNN, merged, "cooccurrence_neighbours"),
            cooccurrence_leave_session_out=flag(HRNN, merged, "cooccurrence_leave_session_out"),
        )
        _check_seen_item_options(HRNN, settings)
        return settings


def _check_seen_item_options(model, settings):
    if settings.seen_item_counts and not settings.seen_item_bias:
        raise config_error(model, "seen_item_counts", "extends the seen-item offsets: it needs "
                           "`seen_item_bias: True`")
    if settings.cooccurrence_leave_session_out and not settings.seen_item_cooccurrence:
        raise config_error(model, "cooccurrence_leave_session_out", "changes the co-occurrence "
                           "logits: it needs `seen_item_cooccurrence: True`")
    for key in ("seen_item_cooccurrence", "seen_item_gate"):
        if getattr(settings, key) and not settings.seen_item_bias:
            raise config_error(model, key, "extends the seen-item offsets: it needs "
                               "`seen_item_bias: True`")
