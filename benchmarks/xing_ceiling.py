"""How much is there to learn on the synthetic XING sample? A non-learned rule as a yardstick.

    python -m benchmarks.xing_ceiling [--dataset dataset/xing/xing.inter] [--items raw/xing/items.csv]

The sample's generator (``dataset_converters.xing_sample``) gives every session one job
discipline, drawn from the user's lasting interests, and draws the session's items independently
by popularity inside that discipline. There is no order inside a session to learn, so the best
any model can do is to guess the session's discipline and rank that discipline's popular items
first. This script scores exactly that rule on the same test targets as the benchmark (the
plugin's ``LS`` and ``last_session`` splits, session ids from the converter):

    score(item) = P(discipline of item | context) * P(item | its discipline)

with ``P(item | discipline)`` the item's training count inside its discipline and
``P(discipline | context)`` the user's discipline counts before the target, plus
``session_weight`` times the counts inside the current session. The rule reads the items'
``discipline_id`` from ``items.csv``, which the models never see. When learned models score about
what this rule scores, they are at the sample's ceiling and a lift between them cannot show.
"""

import argparse

import numpy as np
import pandas as pd

from recbole_hiertcn.core.session_rule import SessionRule
from recbole_hiertcn.data import protocols

SESSION_WEIGHTS = (0.0, 100.0)  # user history only; current session first


def load(inter_path, items_path):
    """The converted log sorted by (user, time) as the plugin sorts it, with item disciplines."""
    inter = pd.read_csv(inter_path, sep="\t")
    inter.columns = [column.split(":")[0] for column in inter.columns]
    inter = inter.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)
    items = pd.read_csv(items_path, sep="\t", usecols=["id", "discipline_id"])
    discipline = dict(zip(items["id"], items["discipline_id"]))
    missing = set(inter["item_id"]) - set(discipline)
    if missing:
        raise ValueError(f"{items_path}: no discipline_id for {len(missing)} items of "
                         f"{inter_path}, e.g. {sorted(missing)[:5]}")
    inter["discipline"] = inter["item_id"].map(discipline).astype(np.int64)
    return inter


def evaluate(inter, protocol, session_weight, k=10):
    """Recall@k, MRR@k and NDCG@k of the rule on the protocol's test targets."""
    starts, lengths = protocols.user_layout(inter["user_id"].to_numpy())
    opens = SessionRule(by_time=False).opens(inter["session_id"].to_numpy(), starts)
    train_end, _, test = protocols.split(starts, lengths, protocol, opens=opens)
    in_training = np.zeros(len(inter), dtype=bool)
    in_training[protocols.ranges(starts, train_end)] = True

    catalogue = np.sort(inter["item_id"].unique())
    item_discipline = (inter.drop_duplicates("item_id").set_index("item_id")
                       .loc[catalogue, "discipline"].to_numpy())
    disciplines = int(item_discipline.max()) + 1
    counts = (inter.loc[in_training].groupby("item_id").size()
              .reindex(catalogue).fillna(0).to_numpy() + 0.5)
    within = counts / np.bincount(item_discipline, weights=counts, minlength=disciplines)[
        item_discipline]

    user_of = np.repeat(np.arange(len(starts)), lengths)
    session_of = np.cumsum(opens)
    history = inter["discipline"].to_numpy()
    target_index = np.searchsorted(catalogue, inter["item_id"].to_numpy())
    ranks = np.empty(len(test))
    for row, position in enumerate(test):
        start = starts[user_of[position]]
        before = history[start:position]
        current = before[session_of[start:position] == session_of[position]]
        weights = (np.bincount(before, minlength=disciplines) + 0.1
                   + session_weight * np.bincount(current, minlength=disciplines))
        score = weights[item_discipline] * within
        own = score[target_index[position]]
        ranks[row] = 1 + (score > own).sum() + ((score == own).sum() - 1) / 2  # expected on ties
    hit = ranks <= k
    return {"targets": len(test), f"recall@{k}": hit.mean(),
            f"mrr@{k}": np.where(hit, 1 / ranks, 0).mean(),
            f"ndcg@{k}": np.where(hit, 1 / np.log2(ranks + 1), 0).mean()}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.xing_ceiling",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="dataset/xing/xing.inter")
    parser.add_argument("--items", default="raw/xing/items.csv")
    args = parser.parse_args(argv)
    inter = load(args.dataset, args.items)
    print("| protocol | rule | test targets | Recall@10 | MRR@10 | NDCG@10 |")
    print("|---|---|---|---|---|---|")
    results = {}
    for protocol in protocols.PROTOCOLS:
        for weight in SESSION_WEIGHTS:
            result = evaluate(inter, protocol, weight)
            results[protocol, weight] = result
            rule = "current session first" if weight else "user history only"
            print(f"| {protocol} | {rule} | {result['targets']:,} | {result['recall@10']:.4f} | "
                  f"{result['mrr@10']:.4f} | {result['ndcg@10']:.4f} |")
    return results


if __name__ == "__main__":
    main()
