"""Where a model's hits come from: test (or validation) metrics of trained checkpoints, split by
the kind of target.

    python -m benchmarks.breakdown CHECKPOINT [CHECKPOINT ...] [--split valid] [--k 10]

Every target falls in one group of each split:

* session: it opens a new session (its session id differs from the previous interaction's), or it
  continues the running one;
* history: the user had the item before (in the history rows the model reads, the last
  ``MAX_ITEM_LIST_LENGTH`` interactions), or it is new to the user;
* window: the row's history fills all ``MAX_ITEM_LIST_LENGTH`` places (a long history, cut),
  or it is shorter (a model with absolute positions, as SASRec, reads a full row's output at
  its last place).

Each checkpoint is rebuilt with its own data and settings
(:func:`recbole_hiertcn.quick_start.load_data_and_model`) and scored by its own trainer's
full-sort evaluation; Recall@k and MRR@k are computed from ``torch.topk`` of those scores as
RecBole's metrics compute them, so the ``all`` row equals the run's reported figures (checked:
the command stops if it does not). Needs a dataset with a session-id field (``session_id``).
"""

import argparse
import os
import sys

import torch

GROUPS = ("all", "opens a session", "continues a session", "bought before", "new to the user",
          "full window", "shorter history")


def target_groups(interaction, config):
    """{group: [B] bool} for a batch of evaluation rows (one target per row)."""
    item, items = config["ITEM_ID_FIELD"], config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]
    session = config["session_field"] or "session_id"
    if session not in interaction.columns:
        raise SystemExit(f"breakdown: the evaluation rows have no {session!r} field; load the "
                         "dataset's session ids (load_col) to split by session")
    length = interaction[config["ITEM_LIST_LENGTH_FIELD"]]
    last = (length - 1).clamp(min=0).unsqueeze(1)
    previous_session = interaction[session + config["LIST_SUFFIX"]].gather(1, last).squeeze(1)
    opens = (interaction[session] != previous_session) | (length == 0)
    within = torch.arange(interaction[items].size(1)) < length.unsqueeze(1)
    seen = ((interaction[items] == interaction[item].unsqueeze(1)) & within).any(dim=1)
    everything = torch.ones_like(opens)
    full = length >= config["MAX_ITEM_LIST_LENGTH"]
    return dict(zip(GROUPS, (everything, opens, ~opens, seen, ~seen, full, ~full)))


def hits_and_ranks(scores, targets, k, depth=None):
    """Hit (bool) and reciprocal rank within the top ``k`` (0 outside) of every row's target.
    ``depth``: the longest list the run's ``topk`` asked RecBole for; taken first, so equal
    scores keep the order RecBole's metrics saw."""
    top = torch.topk(scores, max(k, depth or k), dim=1).indices[:, :k]
    match = top == targets.unsqueeze(1)
    hit = match.any(dim=1)
    position = match.float().argmax(dim=1)
    return hit, torch.where(hit, 1.0 / (position + 1).float(), torch.zeros_like(hit, dtype=float))


def breakdown(model_file, split, k):
    """{group: (targets, Recall@k, MRR@k)} of one checkpoint on ``split``; also the run's own
    evaluation of the split, for the check."""
    import recbole_hiertcn  # noqa: F401  (registers the plugin's models)
    from recbole_hiertcn.quick_start import load_data_and_model
    from recbole_hiertcn.trainer.trainer import run_trainer

    config, model, _, _, valid_data, test_data = load_data_and_model(model_file)
    data = test_data if split == "test" else valid_data
    trainer = run_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    totals = {group: [0, 0.0, 0.0] for group in GROUPS}
    score_batch = trainer._full_sort_batch_eval

    def score_and_count(batched_data):
        interaction, scores, rows, targets = score_batch(batched_data)
        hit, reciprocal = hits_and_ranks(scores[rows], targets.to(scores.device), k,
                                         max(config["topk"]))
        for group, mask in target_groups(interaction.cpu(), config).items():
            mask = mask[rows.cpu()].to(hit.device)
            totals[group][0] += int(mask.sum())
            totals[group][1] += float(hit[mask].sum())
            totals[group][2] += float(reciprocal[mask].sum())
        return interaction, scores, rows, targets

    # One pass: the trainer's own evaluation scores every batch and the groups are counted on
    # the way (set on this trainer object only).
    trainer._full_sort_batch_eval = score_and_count
    reported = trainer.evaluate(data, load_best_model=False)
    return config["model"], {group: (n, hits / max(n, 1), rr / max(n, 1))
                             for group, (n, hits, rr) in totals.items()}, reported


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.breakdown",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="checkpoints of trained runs (.pth)")
    parser.add_argument("--split", choices=("test", "valid"), default="test")
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args(argv)
    for path in args.checkpoints:
        if not os.path.isfile(path):
            parser.error(f"no checkpoint at {path}")
    print(f"| checkpoint | model | targets | share | Recall@{args.k} | MRR@{args.k} |")
    print("|---|---|---|---|---|---|")
    for path in args.checkpoints:
        model, groups, reported = breakdown(path, args.split, args.k)
        for name, key in ((f"recall@{args.k}", 1), (f"mrr@{args.k}", 2)):
            if name in reported and abs(reported[name] - groups["all"][key]) > 1e-4:
                raise SystemExit(f"{path}: {name} {groups['all'][key]:.4f} is not the trainer's "
                                 f"{reported[name]:.4f}")
        total = groups["all"][0]
        for group, (count, recall, mrr) in groups.items():
            print(f"| {os.path.basename(path)} | {model} ({group}) | {count:,} | "
                  f"{count / max(total, 1):.1%} | {recall:.4f} | {mrr:.4f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
