"""Where sessions start, for the session-aware RecBole models: from a session-id field when the
dataset has one, otherwise from idle gaps in the time field. This module chooses the field from
the RecBole config and dataset; the rule itself is :class:`~recbole_hiertcn.core.session_rule.
SessionRule`."""

import torch

from recbole.utils import FeatureType

from recbole_hiertcn.core.config_values import config_error, flag, seconds
from recbole_hiertcn.core.seen_items import seen_items
from recbole_hiertcn.core.session_rule import SessionRule


class SessionBoundary:
    """Chooses the field that marks session starts and finds the starts in a batch.

    Attributes: ``field`` (session ids or times), ``list_field`` (its history list),
    ``by_time`` (True for times), ``time_field`` (the time field, loaded or not), ``gap``,
    ``rule`` (the :class:`SessionRule`), ``target_known`` (``target_session_known``: whether a
    target's own value is read).
    """

    def __init__(self, model, config, dataset):
        self.gap = seconds(model, config, "session_gap")
        self.target_known = flag(model, config, "target_session_known")
        session_field = config["session_field"]
        time_field = config["time_field"] or config["TIME_FIELD"]
        fields = dataset.field2type
        suffix = config["LIST_SUFFIX"]
        if session_field and session_field in fields and session_field + suffix in fields:
            self.field, self.by_time = session_field, False
        elif time_field and time_field in fields and time_field + suffix in fields:
            if fields[time_field] != FeatureType.FLOAT:
                raise config_error(model, "time_field", f"[{time_field}] must be a float field")
            normalized = config["normalize_field"] or []
            if config["normalize_all"] or time_field in normalized:
                key = "normalize_all" if config["normalize_all"] else "normalize_field"
                raise config_error(
                    model, key,
                    f"normalizes [{time_field}], but `session_gap` is in seconds; "
                    f"leave the time field unnormalized",
                )
            self.field, self.by_time = time_field, True
        else:
            raise config_error(
                model, "session_field",
                f"[{session_field}] is not in the dataset, and neither is the time field "
                f"[{time_field}] (`time_field` / `TIME_FIELD`); {model} needs one of them to "
                f"find session boundaries",
            )
        self.rule = SessionRule(self.by_time, self.gap)
        self.list_field = self.field + suffix
        self.time_field = time_field
        self.has_times = time_field in fields and time_field + suffix in fields

    def row_values(self, interaction, lengths):
        """``(history values, target values)`` of RecBole rows. With the target's session
        withheld, the target continues its history's last session."""
        history = interaction[self.list_field]
        if self.target_known:
            return history, interaction[self.field]
        return history, continue_running_session(history, lengths)

    def row_opens(self, interaction, lengths):
        """``[B, L + 1]`` session starts of RecBole rows with each target's slot after its
        history (the target's own signal, or a continuation when it is withheld)."""
        history, target = self.row_values(interaction, lengths)
        return self.opens(append_target(history, lengths, target))

    def row_seen(self, item_seq, lengths, interaction):
        """:class:`~recbole_hiertcn.core.seen_items.SeenHistory` of RecBole rows (``[B, L]``
        history items, ``[B]`` lengths), queried at each target's slot."""
        rows = torch.arange(item_seq.size(0), device=item_seq.device)
        return seen_items(append_target(item_seq, lengths, None),
                          self.row_opens(interaction, lengths), rows, lengths)

    def sequence_targets(self, items, opens, times, mask):
        """The :class:`SequenceTargets` a model trains on: the batch as it is, or with the
        targets' session signal withheld."""
        layout = SequenceTargets.known if self.target_known else SequenceTargets.withheld
        return layout(items, opens, times, mask)

    def opens(self, values):
        """``[B, T]`` boundary values (times or session ids) -> True where a session opens."""
        return self.rule.opens_rows(values)


def append_target(values, lengths, last):
    """``[B, L]`` -> ``[B, L + 1]`` with ``last`` (or 0) written at each row's ``lengths``: a
    RecBole history row with its target's slot after the history."""
    out = torch.cat([values, values.new_zeros(values.size(0), 1)], dim=1)
    if last is None:
        return out
    return out.scatter(1, lengths.unsqueeze(1), last.to(out.dtype).unsqueeze(1))


def continue_running_session(boundary_seq, lengths):
    """Target boundary values that make every target continue its history's last session:
    the last history value (a time gap of 0, or the same session id)."""
    return boundary_seq.gather(1, (lengths - 1).clamp(min=0).unsqueeze(1)).squeeze(1)


class SequenceTargets:
    """A sequence batch as a model trains on it: ``items`` (inputs; 0 is never read),
    ``opens``, ``times`` (or None), ``mask`` (training targets), ``targets`` (the item each
    position predicts) and ``source`` (the batch position each position takes its target and
    negatives from; -1 for none), all ``[B, T']``.

    :meth:`known` is the batch as it is: a target's own session id or time says whether it
    opens a session. :meth:`withheld` predicts a target that opens a session as the next step
    of the running session instead: a continuation slot is inserted after every session that
    another follows, and it takes over that next session's first target.
    """

    def __init__(self, items, opens, times, mask, targets, source):
        self.items, self.opens, self.times = items, opens, times
        self.mask, self.targets, self.source = mask, targets, source
        self.moved = targets is not items  # positions no longer those of the batch

    @classmethod
    def known(cls, items, opens, times, mask):
        source = torch.arange(items.size(1), device=items.device).expand_as(items)
        return cls(items, opens, times, mask, items, source)

    @classmethod
    def withheld(cls, items, opens, times, mask):
        batch, length = items.shape
        opens = opens.clone()
        opens[:, 0] = True
        index = torch.arange(length, device=items.device).expand(batch, -1)
        session = torch.cumsum(opens.long(), dim=1) - 1
        # every session after the first moves right by one slot per session before it
        place = index + session
        width = length + int(session[:, -1].max())
        rows = torch.arange(batch, device=items.device).unsqueeze(1).expand(-1, length)
        source = torch.full((batch, width), -1, dtype=torch.long, device=items.device)
        source[rows, place] = index
        starts = opens & (index > 0)
        slot = torch.zeros(batch, width, dtype=torch.bool, device=items.device)
        slot[rows[starts], place[starts] - 1] = True  # the slot right before each later start
        source[rows[starts], place[starts] - 1] = index[starts]
        real = source >= 0
        at = source.clamp(min=0)
        targets = items.gather(1, at).masked_fill(~real, 0)
        new_items = targets.masked_fill(slot, 0)  # a slot reads the item before it, adds none
        new_opens = opens.gather(1, at) & ~slot | ~real
        # a slot keeps the time of the session it continues (no effect on gaps or decay)
        new_times = None if times is None else times.gather(1, (at - slot.long()).clamp(min=0))
        # the start of a later session is no target: its slot predicts it
        new_mask = mask.gather(1, at) & real & ~(new_opens & ~slot & (at > 0))
        return cls(new_items, new_opens, new_times, new_mask, targets, source)

    def select(self, values):
        """``[B, T, ...]`` per-position values of the batch (negatives) at ``source``."""
        if not self.moved:
            return values
        at = self.source.clamp(min=0)
        shape = at.shape + values.shape[2:]
        return values.gather(1, at.view(*at.shape, *([1] * (values.dim() - 2))).expand(shape))
