"""The sequence loader's negative sampler: never the target, bounded time, the distribution."""

import contextlib
import signal

import pytest
import torch

from recbole.config import Config
from recbole.data.interaction import Interaction

from recbole_hiertcn.data.dataloader import SequenceTrainDataLoader
from recbole_hiertcn.data.dataset import SessionDataset
from tests.conftest import small_config, write_session_dataset


@contextlib.contextmanager
def time_limit(seconds):
    """Fail with TimeoutError instead of hanging if the sampler loops (main thread, Unix)."""
    def stop(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s: the negative sampler loops")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


class Settings(dict):
    """The config keys the loader reads; None for any other, as RecBole's Config."""

    def __getitem__(self, key):
        return self.get(key)


class Chunks:
    """Stand-in for SessionDataset's sequence view: chunk ``i`` is row ``i`` of ``items`` (its
    training targets where ``mask``), and the log has ``counts[i]`` interactions of item ``i``."""

    iid_field = "item_id"
    impressions = None

    def __init__(self, item_num, items, mask, counts=None):
        self.item_num, self.items, self.mask = item_num, items, mask
        counts = torch.tensor(counts if counts is not None else [0] + [1] * (item_num - 1))
        self.inter_feat = {"item_id": torch.repeat_interleave(torch.arange(len(counts)), counts)}
        self.chunk_first = torch.zeros(len(items), dtype=torch.long)
        self.chunk_end = mask.sum(1)

    def id2token(self, field, item):
        return f"pin{item}"

    def __getitem__(self, chunks):
        return Interaction({"seq_item_id": self.items[chunks],
                            "seq_target_mask": self.mask[chunks]})


def loader_for(chunks, seed=0, **sampling):
    settings = Settings(train_batch_size=10**6, seed=seed, NEG_PREFIX="neg_",
                        train_neg_sample_args={"sample_num": 5, **sampling})
    return SequenceTrainDataLoader(settings, chunks, shuffle=False)


def one_batch(loader):
    """The single batch of an epoch (all chunks fit in it)."""
    batches = list(loader)
    assert len(batches) == 1
    return batches[0]


def only(target, rows=4, width=6):
    """Rows whose every position is a training target ``target``."""
    return torch.full((rows, width), target), torch.ones(rows, width, dtype=torch.bool)


# ----------------------------------------------------------------------------- no negative
@pytest.mark.parametrize("distribution", ["uniform", "popularity"])
def test_a_one_item_catalogue_raises_instead_of_looping(tmp_path, distribution):
    write_session_dataset(str(tmp_path), "one_item", n_users=6, n_items=1)
    settings = small_config(tmp_path, "one_item", loss_type="BPR", train_neg_sample_args={
        "distribution": distribution, "sample_num": 1})
    config = Config(model="HierTCN", dataset="one_item", config_dict=settings)
    train, _, _ = SessionDataset(config).build()
    assert train.item_num == 2  # padding and the one real item
    loader = SequenceTrainDataLoader(config, train)
    with time_limit(10), pytest.raises(ValueError, match=r"`train_neg_sample_args`.*item '1'"):
        next(iter(loader))


@pytest.mark.parametrize("counts, alpha, target", [
    ([0, 5, 0, 0], 1.0, 1),  # items 2 and 3 never occur: weight 0
    ([0, 5, 0, 0], 0.0, 1),  # 0 ** 0 is 1, but unseen items (and padding) still get nothing
    ([0, 1, 1000], 200.0, 2),  # (1 / 1000) ** 200 is 0 in floating point
])
def test_popularity_with_no_other_weighted_item_raises(counts, alpha, target):
    items, mask = only(target)
    loader = loader_for(Chunks(len(counts), items, mask, counts), distribution="popularity",
                        alpha=alpha)
    with time_limit(10), pytest.raises(ValueError,
                                       match=rf"`train_neg_sample_args`.*'pin{target}'"):
        one_batch(loader)


# ----------------------------------------------------------------------------- the negatives
@pytest.mark.parametrize("sampling", [
    {"distribution": "uniform"},
    # item 1 is drawn ~98% of the time: most of its clashes get to the exact draw
    {"distribution": "popularity", "alpha": 1.0},
])
def test_negatives_are_never_the_target_and_zero_off_target(sampling):
    generator = torch.Generator().manual_seed(0)
    items = torch.randint(1, 4, (30, 12), generator=generator)
    mask = torch.ones_like(items, dtype=torch.bool)
    mask[:, :3] = False  # context before the first target
    for row, length in enumerate(torch.randint(4, 13, (30,), generator=generator).tolist()):
        items[row, length:], mask[row, length:] = 0, False  # padding
    items[:, 3] = 1  # always some targets of the popular item
    chunks = Chunks(4, items, mask, counts=[0, 1000, 10, 10])
    with time_limit(10):
        batches = list(loader_for(chunks, **sampling))  # several: rows differ in length
    chosen, targets = [], []
    for batch in batches:
        negatives, items, mask = (batch["seq_neg_item_id"], batch["seq_item_id"],
                                  batch["seq_target_mask"])
        assert negatives.shape == items.shape + (5,)
        assert torch.all(negatives[~mask] == 0)
        chosen.append(negatives[mask])
        targets.append(items[mask].unsqueeze(-1))
    chosen, targets = torch.cat(chosen), torch.cat(targets)
    assert len(chosen) == int(chunks.mask.sum())
    assert torch.all((chosen >= 1) & (chosen <= 3))
    assert not torch.any(chosen == targets)
    assert set(chosen[targets[:, 0] == 1].unique().tolist()) == {2, 3}


def frequencies(loader):
    negatives = one_batch(loader)["seq_neg_item_id"].flatten()
    return torch.bincount(negatives, minlength=loader.dataset.item_num).double()


@pytest.mark.parametrize("sampling, counts, expected", [
    # uniform over the real items other than the target 2
    ({"distribution": "uniform"}, None, [0, 1, 0, 1, 1, 1]),
    # count ** 0.5 over the seen items other than the target 2 (item 5 is never seen); the
    # target takes ~97% of the weight, so most draws go through the exact draw
    ({"distribution": "popularity", "alpha": 0.5}, [0, 1, 10_000, 4, 9, 0], [0, 1, 0, 2, 3, 0]),
    # alpha 0: every seen item alike, never the padding item or an unseen one
    ({"distribution": "popularity", "alpha": 0.0}, [0, 1, 7, 4, 0, 9], [0, 1, 0, 1, 0, 1]),
])
def test_negatives_follow_the_distribution_without_the_target(sampling, counts, expected):
    items, mask = only(2, rows=200, width=40)  # 40,000 negatives
    observed = frequencies(loader_for(Chunks(6, items, mask, counts), **sampling))
    expected = torch.tensor(expected, dtype=torch.double)
    expected = expected / expected.sum() * observed.sum()
    drawn = expected > 0
    assert torch.all(observed[~drawn] == 0)
    chi_square = float(((observed[drawn] - expected[drawn]) ** 2 / expected[drawn]).sum())
    assert chi_square < 25.0  # 3 degrees of freedom at most: p < 1e-4 for a right sampler


@pytest.mark.parametrize("distribution", ["uniform", "popularity"])
def test_negatives_depend_only_on_the_loaders_seed(distribution):
    items, mask = only(1, rows=8, width=10)
    chunks = Chunks(5, items, mask, counts=[0, 50, 3, 2, 1])

    def two_epochs(seed, global_seed):
        torch.manual_seed(global_seed)  # the global generator must not matter
        loader = loader_for(chunks, seed=seed, distribution=distribution)
        return [one_batch(loader)["seq_neg_item_id"] for _ in range(2)]

    first, again = two_epochs(3, 0), two_epochs(3, 99)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], first[1])  # the next epoch draws afresh
    assert not torch.equal(first[0], two_epochs(4, 0)[0])
