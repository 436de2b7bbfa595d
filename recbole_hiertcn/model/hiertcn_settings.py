"""HierTCN's settings, read and checked once.

The only defaults are those of ``properties/model/HierTCN.yaml``: a key missing from the mapping
given (a RecBole ``Config``, a plain dict, an exported artifact's ``settings.json``) takes its
value from that file, never from code. Nothing here imports RecBole, so a served model reads its
settings the same way the trained one did.
"""

import dataclasses
import functools

import yaml

from recbole_hiertcn.model.config_values import (
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
from recbole_hiertcn.property_files import model_yaml

MODEL = "HierTCN"
SCORINGS = ("untied", "tied")
OUTPUT_MODES = ("scores", "embedding")
HIGH_LEVELS = ("gru", "none")  # none: the "TCN over the current session only" ablation
LOW_LEVELS = ("tcn", "gru")  # gru: the reference's "HierGRU" ablation
SESSION_SUMMARIES = ("mean", "tcn")  # recbole_hiertcn.model.session_summary
TCN_NORMS = ("none", "layer")  # recbole_hiertcn.model.layers.NORMS
LOSSES = ("CE", "BPR")


@functools.lru_cache(maxsize=1)
def yaml_defaults():
    """Every key of ``properties/model/HierTCN.yaml`` with its value."""
    with open(model_yaml(MODEL), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@dataclasses.dataclass(frozen=True)
class HierTCNSettings:
    """The model's own keys (one-line documentation of each in the yaml file)."""

    embedding_size: int
    hidden_size: int
    num_layers: int
    tcn_channels: tuple
    kernel_size: int
    dilations: tuple
    convs_per_block: int
    tcn_norm: str
    dropout_prob: float
    embedding_dropout: float
    output_dropout: float
    session_gap: float
    session_field: object  # str or None
    target_session_known: bool
    time_field: object  # str or None (None: the dataset's TIME_FIELD)
    high_level: str
    low_level: str
    session_summary: str
    scoring: str
    loss_type: str
    pretrained_item_field: object  # str or None
    freeze_pretrained: bool
    output_mode: str
    hinge_margin: float
    gap_decay: object  # float seconds or None
    seen_item_bias: bool

    @classmethod
    def keys(cls):
        return tuple(field.name for field in dataclasses.fields(cls))

    @classmethod
    def from_mapping(cls, values):
        """Settings from ``values`` (anything with ``in`` and ``[]``), the yaml's value for
        each key it lacks. Raises ValueError naming the key of a bad value."""
        merged = {key: values[key] if key in values else yaml_defaults()[key]
                  for key in cls.keys()}
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
            session_summary=choice(MODEL, merged, "session_summary", SESSION_SUMMARIES),
            scoring=choice(MODEL, merged, "scoring", SCORINGS),
            loss_type=choice(MODEL, merged, "loss_type", LOSSES),
            pretrained_item_field=optional_name(MODEL, merged, "pretrained_item_field"),
            freeze_pretrained=flag(MODEL, merged, "freeze_pretrained"),
            output_mode=choice(MODEL, merged, "output_mode", OUTPUT_MODES),
            hinge_margin=number(MODEL, merged, "hinge_margin"),
            gap_decay=optional_positive_seconds(MODEL, merged, "gap_decay"),
            seen_item_bias=flag(MODEL, merged, "seen_item_bias"),
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
        if self.session_summary == "tcn" and self.low_level != "tcn":
            raise config_error(MODEL, "session_summary", "'tcn' reads sessions with the low-level "
                               "TCN: it needs `low_level: tcn`")
        if self.seen_item_bias and self.output_mode != "scores":
            raise config_error(MODEL, "seen_item_bias", "offsets item scores: it needs "
                               "`output_mode: scores`")
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
        return 1 + self.convs_per_block * (self.kernel_size - 1) * sum(self.dilations)
