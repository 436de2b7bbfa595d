"""Training loader for ``train_mode: sequence``: batches of users' sessions, loss at every position.

Each sample is a chunk of one user's training targets (see ``SessionDataset._sequence_view``).
Every epoch the chunks are shuffled with a seeded generator, grouped into pools, sorted inside a
pool by target count (the TCN's width, so little padding) and packed into batches of about
``train_batch_size`` targets; the batches are shuffled again. A batch is cut from the flat log
by one gather per field. Every training target is in exactly one batch per epoch.

Under DDP (``single_spec`` False) every rank plans the same global batches of about
``train_batch_size`` targets - the plan generator is seeded alike on every rank and draws
nothing else - and takes its share of each: the chunks of a batch are split across the ranks
with nearly equal target counts, so every rank has the same number of batches (RecBole's
convention: ``train_batch_size`` is the global batch). Each batch carries the weight
``targets of this rank x world size / targets of the global batch`` (:data:`SEQ_RANK_WEIGHT`):
the trainer scales the rank's mean loss by it, and the averaged gradient is that of the global
batch's mean. Negatives come from a stream of its own per rank and epoch.
"""

import torch

from recbole.data.interaction import Interaction

from recbole_hiertcn import distributed
from recbole_hiertcn.core.receptive_field import receptive_field
from recbole_hiertcn.data.dataset.session_dataset import SEQ_PREFIX, SEQ_TARGET_MASK

SEQ_RANK_WEIGHT = SEQ_PREFIX + "rank_weight"  # see the module docstring

POOL_BATCHES = 50  # batches per length-sorting pool
MAX_PADDING = 1.5  # padded TCN cells per useful cell a batch may carry
REDRAW_ROUNDS = 4  # popularity redraws of a negative equal to its target before an exact draw


def receptive_reach(config):
    """Positions before a row's first target that the TCN also runs over (receptive field - 1;
    12 for HierTCN's defaults), to estimate a batch's padded width."""
    kernel, dilations = config["kernel_size"], config["dilations"]
    if not kernel or not dilations:
        return 0
    # models other than HierTCN (NextItNet has kernel_size and dilations) have no convs_per_block
    return receptive_field(int(kernel), dilations, int(config["convs_per_block"] or 1)) - 1


class EpochSampler:
    """What RecBole's trainer calls ``train_data.sampler.set_epoch(epoch)`` on under DDP."""

    def __init__(self):
        self.epoch = None

    def set_epoch(self, epoch):
        self.epoch = int(epoch)


class SequenceTrainDataLoader:
    """Iterable of sequence batches, usable wherever RecBole's trainer expects ``train_data``.

    ``neg_sampler`` is RecBole's negative sampler the loader was built with (unused: the
    loader draws its own negatives); ``sampler`` is the :class:`EpochSampler`.
    """

    def __init__(self, config, dataset, sampler=None, shuffle=True):
        self.config, self._dataset, self.shuffle = config, dataset, shuffle
        self.neg_sampler, self.sampler = sampler, EpochSampler()
        self.rank, self.world = ((distributed.rank(), distributed.world_size())
                                 if distributed.is_distributed(config) else (0, 1))
        self.epochs_started = 0
        self.batch_targets = int(config["train_batch_size"])
        self.generator = torch.Generator().manual_seed(int(config["seed"] or 0))
        # one process: negatives continue the plan's stream (as before DDP existed); several:
        # a stream per rank and epoch (see _epoch_streams), so plans stay equal across ranks
        self.negative_generator = self.generator
        if not hasattr(dataset, "chunk_first"):
            raise ValueError("config key `train_mode`: 'sequence' trains on the plugin's session "
                             "dataset; set `use_session_dataset: True`")
        self.targets = dataset.chunk_end - dataset.chunk_first
        self.reach = receptive_reach(config)
        # positions before each chunk's first target that the model runs over: a window view's
        # own (RecBole's baselines), else the TCN's receptive field for every chunk
        chunk_reach = getattr(dataset, "chunk_reach", None)
        self.reaches = (chunk_reach.tolist() if chunk_reach is not None
                        else [self.reach] * len(self.targets))
        self.neg_item_field = SEQ_PREFIX + config["NEG_PREFIX"] + dataset.iid_field
        self.neg_args = dict(config["train_neg_sample_args"] or {})
        if config["output_mode"] == "embedding":  # HierTCN's hinge loss needs negatives
            self.neg_args["sample_num"] = int(config["negatives"])
            if self.neg_args.get("distribution") in (None, "none"):
                self.neg_args["distribution"] = "uniform"
        self._plan = None
        self._popularity = None

    @property
    def dataset(self):
        return self._dataset

    def _plan_epoch(self):
        """Lists of chunk indices, one per batch.

        A chunk's width is its targets plus the positions before them that the model runs over
        (the TCN's receptive field - 1, or a window's context). Chunks are sorted by width in a
        pool; a batch closes when the next chunk would exceed ``train_batch_size`` targets, or
        when it would make the padded width (rows x widest) more than :data:`MAX_PADDING` times
        the sum of the widths.
        """
        count = len(self.targets)
        order = (torch.randperm(count, generator=self.generator) if self.shuffle
                 else torch.arange(count))
        sizes = self.targets[order].tolist()
        order = order.tolist()
        widths = [size + self.reaches[chunk] for size, chunk in zip(sizes, order)]
        batches, step = [], self.pool_chunks(sizes)
        for begin in range(0, count, step):
            pool = sorted(zip(widths[begin:begin + step], order[begin:begin + step],
                              sizes[begin:begin + step]))
            current, filled, useful, widest = [], 0, 0, 0
            for width, chunk, size in pool:
                rows, wide = len(current) + 1, max(widest, width)
                if current and (filled + size > self.batch_targets
                                or rows * wide > MAX_PADDING * (useful + width)):
                    batches.append(current)
                    current, filled, useful, wide = [], 0, 0, width
                current.append(chunk)
                filled += size
                useful += width
                widest = wide
            if current:
                batches.append(current)
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=self.generator)]
        return [torch.tensor(b) for b in batches]

    def pool_chunks(self, sizes):
        """Chunks per length-sorting pool: about :data:`POOL_BATCHES` batches' worth."""
        mean = max(sum(sizes) / max(len(sizes), 1), 1.0)
        return max(int(POOL_BATCHES * self.batch_targets / mean), 1)

    def _rank_plan(self):
        """This rank's ``(chunks, weight)`` per batch of the epoch (weight None alone)."""
        plan = self._plan_epoch()
        if self.world == 1:
            return [(chunks, None) for chunks in plan]
        shares = []
        for chunks in _at_least(plan, self.world):
            sizes = self.targets[chunks].tolist()
            mine = distributed.split_balanced(sizes, self.world)[self.rank]
            weight = sum(sizes[i] for i in mine) * self.world / sum(sizes)
            shares.append((chunks[mine], weight))
        return shares

    def _epoch_streams(self):
        """Under DDP: the negatives' stream of this rank and epoch (the trainer's set_epoch, or
        the loader's own count of epochs)."""
        epoch = self.sampler.epoch if self.sampler.epoch is not None else self.epochs_started
        self.epochs_started += 1
        if self.world > 1:
            seed = (int(self.config["seed"] or 0) * 1_000_003 + epoch) * 1_009 + self.rank
            self.negative_generator = torch.Generator().manual_seed(seed)

    def __len__(self):
        if self._plan is None:
            self._plan = self._rank_plan()
        return len(self._plan)

    def __iter__(self):
        if self._plan is None:
            self._plan = self._rank_plan()
        plan, self._plan = self._plan, None  # the next epoch plans afresh
        self._epoch_streams()
        for chunks, weight in plan:
            batch = self._dataset[chunks]
            if self.neg_args.get("distribution") not in (None, "none"):
                batch.update(Interaction({self.neg_item_field: self._negatives(batch)}))
            if weight is not None:
                batch.update(Interaction({SEQ_RANK_WEIGHT: torch.full((len(chunks),), weight)}))
            yield batch

    def _negatives(self, batch):
        """``sample_num`` negatives per training target, never the target itself: impressions of
        the position's feed view when the dataset has them, sampled items otherwise. Context and
        padding positions get 0."""
        items = batch[SEQ_PREFIX + self._dataset.iid_field]
        mask = batch[SEQ_TARGET_MASK].unsqueeze(-1)
        count = int(self.neg_args.get("sample_num") or 1)
        shape = items.shape + (count,)
        negatives = self._draw_items(shape)
        shown = getattr(self._dataset, "impressions", None)
        if shown is not None:
            views = batch[SEQ_PREFIX + shown["field"]]
            impressions, found = self._dataset.sample_impressions(views, count,
                                                                  self.negative_generator)
            negatives = torch.where(found.unsqueeze(-1), impressions, negatives)
        targets = items.unsqueeze(-1).expand(shape)
        clash = (negatives == targets) & mask  # other positions are zeroed anyway
        if clash.any():
            negatives[clash] = self._draw_other_than(targets[clash])
        return negatives * mask

    def _draw_items(self, shape):
        n_items = self._dataset.item_num
        if self.neg_args.get("distribution") == "popularity":
            flat = torch.multinomial(self._popularity_weights(), int(torch.tensor(shape).prod()),
                                     replacement=True, generator=self.negative_generator)
            return flat.view(shape)
        return torch.randint(1, n_items, shape, generator=self.negative_generator)

    def _popularity_weights(self):
        """``count ** alpha`` of every item of the log, scaled so the largest is 1; 0 for the
        padding item and items never seen (as RecBole's sampler: ``0 ** 0`` would be 1)."""
        if self._popularity is None:
            counts = torch.bincount(self._dataset.inter_feat[self._dataset.iid_field],
                                    minlength=self._dataset.item_num).double()
            counts[0] = 0
            alpha = self.neg_args.get("alpha")
            alpha = 1.0 if alpha is None else float(alpha)
            seen = counts > 0
            weights = torch.zeros_like(counts)
            if seen.any():
                # In log space, less the largest: no overflow for a large |alpha|.
                log_weight = alpha * counts[seen].log()
                weights[seen] = torch.exp(log_weight - log_weight.max())
            self._popularity = weights
        return self._popularity

    def _draw_other_than(self, targets):
        """One item per entry of the 1-d ``targets``, from the sampling distribution without
        that target: what redrawing until the item differs gives, in bounded time."""
        if self.neg_args.get("distribution") == "popularity":
            return self._popular_other_than(targets)
        n_items = self._dataset.item_num  # real items are 1 .. n_items - 1
        if n_items < 3:
            raise self._no_negative(targets[0], "the catalogue has no other real item")
        # Uniform over the n_items - 2 real items other than t: draw from 1 .. n_items - 2 and
        # move draws >= t up by one, so 1 .. t - 1 stay and t .. n_items - 2 become
        # t + 1 .. n_items - 1.
        drawn = torch.randint(1, n_items - 1, targets.shape, generator=self.negative_generator)
        return drawn + (drawn >= targets).long()

    def _popular_other_than(self, targets):
        weights = self._popularity_weights()
        positive = weights > 0
        alone = positive.sum() - positive[targets].long() == 0
        if alone.any():
            raise self._no_negative(targets[alone][0], "no other item has a popularity weight "
                                    "above 0 (`alpha` and the item counts)")
        out, pending = targets.clone(), torch.arange(len(targets))
        # A redraw clashes again with the target's probability, small unless it is very
        # popular; the few left after some rounds get an exact draw without the target.
        for _ in range(REDRAW_ROUNDS):
            drawn = torch.multinomial(weights, len(pending), replacement=True,
                                      generator=self.negative_generator)
            out[pending] = drawn
            pending = pending[drawn == targets[pending]]
            if len(pending) == 0:
                return out
        for target in targets[pending].unique():
            rows = pending[targets[pending] == target]
            others = weights.clone()
            others[target] = 0
            out[rows] = torch.multinomial(others, len(rows), replacement=True,
                                          generator=self.negative_generator)
        return out

    def _no_negative(self, item, why):
        item = int(item)
        token = str(self._dataset.id2token(self._dataset.iid_field, item))
        return ValueError(
            f"config key `train_neg_sample_args`: no negative item for training target item "
            f"'{token}' (id {item}) under {self.neg_args.get('distribution')} sampling: {why}")


def _at_least(plan, count):
    """The plan's batches, each merged with the next until it has ``count`` chunks (a rank's
    share must not be empty: every rank runs the same number of steps); a short last batch
    joins the one before."""
    merged, pending = [], None
    for chunks in plan:
        pending = chunks if pending is None else torch.cat([pending, chunks])
        if len(pending) >= count:
            merged.append(pending)
            pending = None
    if pending is not None:
        if not merged:
            raise ValueError(f"the training data has {len(pending)} sequence chunks, fewer "
                             f"than the {count} processes: every process needs one")
        merged[-1] = torch.cat([merged[-1], pending])
    return merged
