"""Tune HierTCN (or any model) with RecBole's HyperTuning, through the plugin.

    python run_hyper.py --config_files=benchmarks/hyper_ml-100k.yaml --params_file=properties/hyper/HierTCN.hyper

``--config_files`` must name the model and the dataset (and any fixed settings); the search space
file uses RecBole's format (``name choice [..]``, ``name uniform low,high``, ``loguniform``,
``quniform``). Each trial trains through ``recbole_hiertcn.quick_start.objective``: the plugin's
run defaults and dataset presets, RecBole's trainer, the best checkpoint reloaded for the test.
Results go to ``--output_file`` as RecBole writes them (by default a new file named after the
time and a random suffix, so two tunings started together never write one file); the file
appears only when complete. Every trial has its own checkpoint and log (see
``recbole_hiertcn.trainer``).
"""

import argparse
import os
import uuid

import recbole_hiertcn  # noqa: F401  (registers HierTCN before RecBole sees a config)
from recbole.trainer import HyperTuning
from recbole.utils import get_local_time

from recbole_hiertcn import registry
from recbole_hiertcn.quick_start import objective


def default_output_file():
    """``hyper_result-<time>-<random>.txt``: a name no other tuning takes."""
    return f"hyper_result-{get_local_time()}-{uuid.uuid4().hex[:8]}.txt"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config_files", required=True, help="space-separated yaml files")
    parser.add_argument("--params_file", default=None,
                        help="search space (default: properties/hyper/HierTCN.hyper)")
    parser.add_argument("--algo", default="exhaustive", choices=("exhaustive", "random", "bayes"))
    parser.add_argument("--max_evals", type=int, default=100)
    parser.add_argument("--early_stop", type=int, default=10)
    parser.add_argument("--output_file", default=None,
                        help="results file (default: hyper_result-<time>-<random>.txt)")
    args, _ = parser.parse_known_args(argv)
    params = args.params_file or f"{registry.properties_dir()}/hyper/HierTCN.hyper"
    tuner = HyperTuning(objective, algo=args.algo, early_stop=args.early_stop,
                        max_evals=args.max_evals, params_file=params,
                        fixed_config_file_list=args.config_files.split())
    tuner.run()
    output = args.output_file or default_output_file()
    partial = f"{output}.{uuid.uuid4().hex[:8]}.tmp"
    tuner.export_result(output_file=partial)
    os.replace(partial, output)
    print("results:", output)
    print("best params:", tuner.best_params)
    print("best result:", tuner.params2result[tuner.params2str(tuner.best_params)])
    return tuner


if __name__ == "__main__":
    main()
