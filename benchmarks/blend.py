"""How far two trained models are from each other's errors: the test metrics of a score blend
of two checkpoints, its one weight chosen on validation.

    python -m benchmarks.blend NEURAL_CHECKPOINT OTHER_CHECKPOINT [--k 10]

Each checkpoint is rebuilt with its own data and settings
(:func:`recbole_hiertcn.quick_start.load_data_and_model`) and scores every validation and test
row through its own trainer's full-sort evaluation (so masked items stay masked). The two
models must have the same evaluation rows (same users and targets in the same order: one
dataset, one protocol; the history length each reads may differ). The blend of a row is

    log_softmax(first scores) + weight * second scores / max(second scores of the row)

(the second model's scores - a kNN model's sums of similarities - scaled to [0, 1] per row; a
row where it scores nothing adds nothing; an item it masks, such as the running basket, stays
masked). The weight is chosen from a grid on validation
MRR@k; the first model alone (weight 0) and the second alone are printed beside it and equal
the runs' own figures. It answers whether an extra logit of the second model inside the first
could lift it, before anything is built: a blend that does not gain cannot be expected to.
"""

import argparse
import os
import sys

import torch

WEIGHTS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)


def split_scores(model_file):
    """``{split: (users [N], targets [N], scores [N, n_items])}`` of one checkpoint, the rows
    in evaluation order."""
    import recbole_hiertcn  # noqa: F401  (registers the plugin's models)
    from recbole_hiertcn.quick_start import load_data_and_model
    from recbole_hiertcn.trainer.trainer import run_trainer

    config, model, _, _, valid_data, test_data = load_data_and_model(model_file)
    trainer = run_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    user_field = config["USER_ID_FIELD"]
    out = {}
    for split, data in (("valid", valid_data), ("test", test_data)):
        users, targets, scores = [], [], []
        score_batch = trainer._full_sort_batch_eval

        def keep(batched_data):
            interaction, batch_scores, rows, batch_targets = score_batch(batched_data)
            users.append(interaction[user_field][rows].cpu())
            targets.append(batch_targets.cpu())
            scores.append(batch_scores[rows].cpu())  # its own dtype: no new ties
            return interaction, batch_scores, rows, batch_targets

        trainer._full_sort_batch_eval = keep  # on this trainer object only
        trainer.evaluate(data, load_best_model=False)
        trainer._full_sort_batch_eval = score_batch
        out[split] = (torch.cat(users), torch.cat(targets), torch.cat(scores))
    return config["model"], max(config["topk"]), out


def recall_and_mrr(scores, targets, k, depth):
    """Recall@k and MRR@k of ``scores`` ``[N, n_items]`` (one target per row); ``depth``: the
    largest k of the runs' ``topk``, the list RecBole takes (equal scores keep its order)."""
    top = torch.topk(scores, max(k, depth), dim=1).indices[:, :k]
    match = top == targets.unsqueeze(1)
    hit = match.any(dim=1)
    rank = match.float().argmax(dim=1) + 1
    return float(hit.float().mean()), float(torch.where(hit, 1.0 / rank, 0.0).mean())


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
    first_name, depth, first = split_scores(args.first)
    second_name, second_depth, second = split_scores(args.second)
    for split in ("valid", "test"):
        for what, a, b in (("users", first[split][0], second[split][0]),
                           ("targets", first[split][1], second[split][1])):
            if not torch.equal(a, b):
                raise SystemExit(f"{split}: the two checkpoints' evaluation rows differ "
                                 f"({what}); blend models of one dataset and protocol")
    k = args.k
    rows = []
    for weight in (0.0,) + WEIGHTS + (float("inf"),):
        figures = {}
        for split in ("valid", "test"):
            scores = blended(first[split][2], second[split][2], weight)
            figures[split] = recall_and_mrr(scores, first[split][1], k,
                                            depth if weight < float("inf") else second_depth)
        rows.append((weight, figures))
    chosen = max((row for row in rows if 0 < row[0] < float("inf")),
                 key=lambda row: row[1]["valid"][1])
    print(f"first: {first_name} ({args.first}); second: {second_name} ({args.second})")
    print(f"| weight | valid MRR@{k} | test Recall@{k} | test MRR@{k} | |")
    print("|---:|---:|---:|---:|---|")
    for weight, figures in rows:
        label = ("first alone" if weight == 0 else "second alone" if weight == float("inf")
                 else "chosen on validation" if weight == chosen[0] else "")
        print(f"| {weight:g} | {figures['valid'][1]:.4f} | {figures['test'][0]:.4f} | "
              f"{figures['test'][1]:.4f} | {label} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
