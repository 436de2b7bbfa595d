"""Fit and full evaluation of the session-kNN models and floors, one thread, one process each.

    python -m benchmarks.knn_speed [--dataset online-retail] [--data_path dataset]
        [--protocol last_session] [--models SR SKNN VSKNN STAN VSTAN SessionPop Repeat]
        [--set exclude_running_items=True --set boost=True ...]

Every model runs in its own child process (``OMP_NUM_THREADS=1``, ``torch.set_num_threads(1)``)
through the plugin's pipeline - config with the run defaults and the dataset preset, the
session dataset, RecBole's data loaders, the model, the plugin's trainer (one validation, a
checkpoint, the best-model reload) and the full-sort test - and reports:

* ``load s``: config, dataset and data loaders (the same for every model);
* ``build s``: making the model (building its index from the training interactions);
* ``valid s``: ``trainer.fit`` (one full-sort validation and the checkpoint);
* ``test s``: the full-sort test, after reloading the checkpoint;
* ``fit+eval s``: build + valid + test, the cost of one setting (wall clock), and ``cpu s``
  the CPU time of the same (what a busy machine inflates less);
* ``peak MiB``: the child's peak resident memory (``ru_maxrss``);
* validation and test Recall@10 / MRR@10.

Online Retail is converted first when ``dataset/online-retail`` is missing (as the comparison
plans do).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import yaml

from benchmarks.measure import REPO, run_measured

MODELS = ("SR", "SKNN", "VSKNN", "STAN", "VSTAN", "SessionPop", "Repeat")
PROTOCOLS = ("LS", "last_session", "user_holdout")
RESULT = "KNN_SPEED_RESULT "
PREPARE = {"online-retail": [sys.executable, "-m", "dataset_converters.event_log", "--preset",
                             "online-retail", "--input",
                             "benchmarks/data/online-retail/online_retail_events.csv.gz",
                             "--output-dir", "dataset"]}


def child(model, dataset, data_path, protocol, settings):
    """One measured run; prints one ``RESULT`` line of JSON."""
    import torch

    torch.set_num_threads(1)
    import recbole_hiertcn  # noqa: F401  (registers the models)
    from recbole.data import data_preparation
    from recbole.utils import get_model, init_logger, init_seed

    from recbole_hiertcn.quick_start import build_config, make_dataset
    from recbole_hiertcn.trainer import run_trainer
    from recbole_hiertcn.trainer.trainer import RUN_ID, new_run_id

    start, cpu_start = time.perf_counter(), time.process_time()
    config = build_config(model, dataset, config_dict=dict(
        settings, data_path=data_path, show_progress=False, state="WARNING",
        eval_args={"split": {protocol: "valid_and_test"}, "order": "TO", "group_by": "user",
                   "mode": "full"}))
    config[RUN_ID] = new_run_id()
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    train, valid, test = data_preparation(config, make_dataset(config))
    loaded, cpu_loaded = time.perf_counter(), time.process_time()
    recommender = get_model(model)(config, train._dataset)
    built = time.perf_counter()
    trainer = run_trainer(config["MODEL_TYPE"], model)(config, recommender)
    _, valid_result = trainer.fit(train, valid, saved=True, show_progress=False)
    validated = time.perf_counter()
    test_result = trainer.evaluate(test, load_best_model=True, show_progress=False)
    tested, cpu_tested = time.perf_counter(), time.process_time()
    print(RESULT + json.dumps({
        "model": model, "load_s": loaded - start, "build_s": built - loaded,
        "valid_s": validated - built, "test_s": tested - validated,
        "load_cpu_s": cpu_loaded - cpu_start, "fit_eval_cpu_s": cpu_tested - cpu_loaded,
        "valid": {k: float(v) for k, v in valid_result.items()},
        "test": {k: float(v) for k, v in test_result.items()},
        "valid_rows": len(valid.dataset), "test_rows": len(test.dataset),
    }), flush=True)


def parse_settings(pairs):
    """``key=value`` (values read as YAML) -> dict."""
    settings = {}
    for pair in pairs or []:
        key, _, value = pair.partition("=")
        settings[key] = yaml.safe_load(value)
    return settings


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="online-retail")
    parser.add_argument("--data_path", default="dataset")
    parser.add_argument("--protocol", default="last_session", choices=PROTOCOLS)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config value for every model (YAML), e.g. boost=True")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    settings = parse_settings(args.set)
    if args.child:
        sys.argv = sys.argv[:1]  # RecBole's Config reads --key=value from sys.argv
        child(args.child, args.dataset, args.data_path, args.protocol, settings)
        return 0
    folder = os.path.join(args.data_path, args.dataset)
    if not os.path.isdir(folder) and args.dataset in PREPARE and args.data_path == "dataset":
        subprocess.run(PREPARE[args.dataset], check=True, cwd=REPO)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    data_path = os.path.abspath(args.data_path)
    work = tempfile.mkdtemp(prefix="knn-speed-")  # RecBole's log/ and saved/ go there
    header = (f"{'model':<11}{'load s':>8}{'build s':>9}{'valid s':>9}{'test s':>8}"
              f"{'fit+eval s':>12}{'cpu s':>7}{'peak MiB':>10}{'valid R@10':>12}{'MRR@10':>8}"
              f"{'test R@10':>11}{'MRR@10':>8}")
    print(f"{args.dataset}, {args.protocol}, 1 thread; settings {settings or 'defaults'}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(header)
    for model in args.models:
        command = [sys.executable, "-m", "benchmarks.knn_speed", "--child", model,
                   "--dataset", args.dataset, "--data_path", data_path,
                   "--protocol", args.protocol] + [f"--set={pair}" for pair in args.set]
        code, _, peak, out, err = run_measured(command, env=env, cwd=work)
        lines = [line for line in out.splitlines() if line.startswith(RESULT)]
        if code != 0 or not lines:
            print(f"{model:<11}failed (exit {code}):\n{err[-2000:]}")
            continue
        r = json.loads(lines[-1][len(RESULT):])
        total = r["build_s"] + r["valid_s"] + r["test_s"]
        print(f"{model:<11}{r['load_s']:>8.1f}{r['build_s']:>9.1f}{r['valid_s']:>9.1f}"
              f"{r['test_s']:>8.1f}{total:>12.1f}{r['fit_eval_cpu_s']:>7.1f}{peak:>10,.0f}"
              f"{r['valid']['recall@10']:>12.4f}{r['valid']['mrr@10']:>8.4f}"
              f"{r['test']['recall@10']:>11.4f}{r['test']['mrr@10']:>8.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
