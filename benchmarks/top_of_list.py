"""What a model puts at the top of its list: how often its first item is the last item of the
row's history, any item of the history, or the target.

    python -m benchmarks.top_of_list benchmarks/online-retail.yaml --models SASRec GRU4Rec
        [--seed 2020] [--protocol last_session] [--out-dir DIR]

Each model trains as one run of the plan would (the plan's shared settings, its entry, the
setting its tuning chose in ``<out>/tuning.csv``), in this process, one thread, its checkpoints
in a temporary folder (or ``--out-dir``); then the test rows are scored in full. On a basket log
where a basket never holds an item twice, a model that ranks the item just bought first loses
its top rank on almost every row: that is what the first column shows.
"""

import argparse
import os
import tempfile

import torch

from benchmarks.compare.plan import (chosen_settings, eval_args, job_spec, load_plan,
                                     results_folder)
from benchmarks.compare.runner import prepare_data
from benchmarks.compare.store import read_runs


def top_of_list(model, test_data):
    """Shares of test rows whose top-1 item is the history's last item, is in the history, and
    is the target (Recall@1)."""
    model.eval()
    rows = last = in_history = hits = 0
    with torch.no_grad():
        for batch in test_data:
            interaction = batch[0]
            scores = model.full_sort_predict(interaction).view(len(interaction), -1)
            scores[:, 0] = -torch.inf  # padding
            top = scores.argmax(dim=1)
            history = interaction[model.ITEM_SEQ]
            lengths = interaction[model.ITEM_SEQ_LEN]
            # a row's history is left-aligned: its last item sits at length - 1
            last_item = history.gather(1, (lengths - 1).clamp(min=0).unsqueeze(1)).squeeze(1)
            last += int(((last_item == top) & (lengths > 0)).sum())
            in_history += int((history == top.unsqueeze(1)).any(dim=1).sum())
            hits += int((interaction[model.ITEM_ID] == top).sum())
            rows += len(top)
    return {"rows": rows, "top1_last_item": last / rows, "top1_in_history": in_history / rows,
            "recall@1": hits / rows}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("plan")
    parser.add_argument("--models", nargs="+", required=True, help="labels of the plan")
    parser.add_argument("--seed", type=int, default=None, help="default: the plan's first")
    parser.add_argument("--protocol", default=None, help="default: the plan's first")
    parser.add_argument("--out-dir", default=None, help="checkpoints (default: a temp folder)")
    args = parser.parse_args(argv)
    plan = load_plan(args.plan)
    seed = plan["seeds"][0] if args.seed is None else args.seed
    protocol = plan["protocols"][0] if args.protocol is None else args.protocol
    unknown = [label for label in args.models if label not in plan["models"]]
    if unknown:
        raise SystemExit(f"{args.plan}: no model {unknown} (the plan's: {list(plan['models'])})")
    tuning = os.path.join(results_folder(plan), "tuning.csv")
    chosen = chosen_settings(plan, read_runs(tuning)) if os.path.isfile(tuning) else {}
    prepare_data(plan)
    torch.set_num_threads(1)
    import recbole_hiertcn  # noqa: F401  (registers the plugin's models)
    from recbole_hiertcn.quick_start import fit_and_test, prepare_run

    out_dir = args.out_dir or tempfile.mkdtemp(prefix="top-of-list-")
    print(f"{plan['dataset']}, {protocol}, seed {seed}")
    print(f"{'model':<28}{'test rows':>10}{'top-1 = last item':>19}{'top-1 in history':>18}"
          f"{'Recall@1':>10}{'MRR@10':>9}")
    for label in args.models:
        spec = job_spec(plan, label, protocol, seed, chosen.get((label, protocol)))
        settings = dict(spec["settings"], seed=seed, checkpoint_dir=out_dir,
                        eval_args=eval_args(protocol))
        prepared = prepare_run(spec["model"], spec["dataset"], config_dict=settings)
        result = fit_and_test(prepared)
        shares = top_of_list(prepared.trainer.model, prepared.test_data)
        print(f"{label:<28}{shares['rows']:>10,}{shares['top1_last_item']:>19.3f}"
              f"{shares['top1_in_history']:>18.3f}{shares['recall@1']:>10.4f}"
              f"{result['test_result']['mrr@10']:>9.4f}", flush=True)


if __name__ == "__main__":
    main()
