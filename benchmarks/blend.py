"""How far two trained models are from each other's errors: the test metrics of a score blend
of two checkpoints, its one weight chosen on validation.

    python -m benchmarks.blend NEURAL_CHECKPOINT OTHER_CHECKPOINT [--k 10]

Each checkpoint is rebuilt with its own data and settings
(:func:`recbole_hiertcn.quick_start.load_data_and_model`) and scores the validation and test
rows through its own trainer's full-sort batch evaluation (so masked items stay masked), the
two models side by side: only a batch of scores of each is held, whatever the catalogue. The
two models must have the same evaluation rows (same users and targets in the same order: one
dataset, one protocol; the history length each reads may differ). The blend of a row is

    log_softmax(first scores) + weight * second scores / max(second scores of the row)

(the second model's scores - a kNN model's sums of similarities - scaled to [0, 1] per row; a
row where it scores nothing adds nothing; an item it masks, such as the running basket, stays
masked). The weight is chosen from a grid on validation MRR@k; the first model alone (weight 0) and the second alone are printed beside it and equal
the runs' own figures. It answers whether an extra logit of the second model inside the first
could lift it, before anything is built: a blend that does not gain cannot be expected to.
"""

import argparse
import os
import sys

import torch

from benchmarks.breakdown import hits_and_ranks

WEIGHTS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)


def load(model_file):
    """``(model name, largest topk, trainer, {split: loader})`` of one checkpoint."""
    import recbole_hiertcn  # noqa: F401  (registers the plugin's models)
    from recbole_hiertcn.quick_start import load_data_and_model
    from recbole_hiertcn.trainer.trainer import run_trainer

    config, model, _, _, valid_data, test_data = load_data_and_model(model_file)
    trainer = run_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    return config["model"], max(config["topk"]), trainer, {"valid": valid_data,
                                                            "test": test_data}


def scored_rows(trainer, data):
    """``(users, targets, scores)`` of every full-sort evaluation batch of ``data``, in order,
    scored by the trainer's own batch evaluation (set up as its ``evaluate`` sets it up)."""
    trainer.model.eval()
    if trainer.item_tensor is None:
        trainer.item_tensor = data._dataset.get_item_feature().to(trainer.device)
    trainer.tot_item_num = data._dataset.item_num
    user_field = trainer.config["USER_ID_FIELD"]
    for batched_data in data:
        # no_grad around the call only: a generator suspended inside it would leave gradients
        # off for its caller
        with torch.no_grad():
            interaction, scores, rows, targets = trainer._full_sort_batch_eval(batched_data)
        # each model's own dtype: a cast could make equal scores of distinct ones
        yield interaction[user_field][rows].cpu(), targets.cpu(), scores[rows].cpu()


def aligned(first, second):
    """Equal-length blocks of rows of two row streams, in order (their batches may differ in
    size); only a block of each is held at a time."""
    streams, pending = (iter(first), iter(second)), [None, None]
    while True:
        for side in (0, 1):
            if pending[side] is None or not len(pending[side][0]):
                pending[side] = next(streams[side], None)
        if pending[0] is None or pending[1] is None:
            if pending[0] is not None or pending[1] is not None:
                raise SystemExit("the two checkpoints' evaluation rows differ (one has more "
                                 "rows); blend models of one dataset and protocol")
            return
        n = min(len(pending[0][0]), len(pending[1][0]))
        yield tuple(t[:n] for t in pending[0]), tuple(t[:n] for t in pending[1])
        pending = [tuple(t[n:] for t in block) for block in pending]


def blended(first, second, weight):
    """The blend of the module docstring (``weight`` 0: the first model alone, inf: the
    second alone)."""
    if weight == 0:
        return first
    if weight == float("inf"):
        return second
    scale = second.clamp(min=0).amax(dim=1, keepdim=True)
    relative = torch.where(scale > 0, second.clamp(min=0) / scale.clamp(min=1e-12), 0.0)
    # an item the second model masks (-inf: the running basket) stays masked
    masked = torch.isneginf(second)
    return torch.where(masked, float("-inf"),
                       torch.log_softmax(first, dim=1) + weight * relative)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.blend",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("first", help="checkpoint whose scores are log-softmaxed (neural)")
    parser.add_argument("second", help="checkpoint whose scores are added (e.g. a kNN model)")
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args(argv)
    for path in (args.first, args.second):
        if not os.path.isfile(path):
            parser.error(f"no checkpoint at {path}")
    first_name, depth, first_trainer, first_data = load(args.first)
    second_name, second_depth, second_trainer, second_data = load(args.second)
    k, weights = args.k, (0.0,) + WEIGHTS + (float("inf"),)
    figures = {weight: {} for weight in weights}
    for split in ("valid", "test"):
        sums = {weight: [0.0, 0.0] for weight in weights}
        n_rows = 0
        for (users, targets, first), (other_users, other_targets, second) in aligned(
                scored_rows(first_trainer, first_data[split]),
                scored_rows(second_trainer, second_data[split])):
            if not (torch.equal(users, other_users) and torch.equal(targets, other_targets)):
                raise SystemExit(f"{split}: the two checkpoints' evaluation rows differ; blend "
                                 "models of one dataset and protocol")
            n_rows += len(targets)
            for weight in weights:
                hit, reciprocal = hits_and_ranks(
                    blended(first, second, weight), targets, k,
                    depth if weight < float("inf") else second_depth)
                sums[weight][0] += float(hit.sum())
                sums[weight][1] += float(reciprocal.sum())
        if n_rows == 0:
            raise SystemExit(f"{split}: the checkpoints' dataset has no {split} rows to blend")
        for weight in weights:
            figures[weight][split] = (sums[weight][0] / n_rows, sums[weight][1] / n_rows)
    rows = list(figures.items())
    chosen = max((row for row in rows if 0 < row[0] < float("inf")),
                 key=lambda row: row[1]["valid"][1])
    print(f"first: {first_name} ({args.first}); second: {second_name} ({args.second})")
    print(f"| weight | valid MRR@{k} | test Recall@{k} | test MRR@{k} | |")
    print("|---:|---:|---:|---:|---|")
    for weight, split_figures in rows:
        label = ("first alone" if weight == 0 else "second alone" if weight == float("inf")
                 else "chosen on validation" if weight == chosen[0] else "")
        print(f"| {weight:g} | {split_figures['valid'][1]:.4f} | "
              f"{split_figures['test'][0]:.4f} | {split_figures['test'][1]:.4f} | {label} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
