"""Train-and-test entry point used by ``run_recbole_hiertcn.py`` for any model.

It follows RecBole's ``run_recbole`` (same trainer, same full-sort evaluation, best checkpoint
reloaded for the test) without importing ``recbole.quick_start`` (which pulls in ray), and
adds the plugin's run defaults (``properties/overall.yaml``) and dataset presets so that
HierTCN and RecBole's built-in models are compared on identical data and settings.
"""

import argparse
import importlib
import os
from logging import getLogger

from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import ModelType, get_model, get_trainer, init_logger, init_seed

from recbole_hiertcn import registry
from recbole_hiertcn.data.dataset import SessionDataset

REPORTED_METRICS = ("recall", "mrr", "ndcg")
_BPR_SAMPLING = {"distribution": "uniform", "sample_num": 1, "alpha": 1.0, "dynamic": False,
                 "candidate_num": 0}


def run_defaults_file():
    """The plugin's run defaults (metrics, cut-offs, early stopping)."""
    return os.path.join(registry.properties_dir(), "overall.yaml")


def build_config(model="HierTCN", dataset="ml-100k", config_file_list=None, config_dict=None):
    """RecBole ``Config`` with the run defaults and the plugin's dataset preset underneath.

    Precedence, lowest first: RecBole's and the plugin's yaml defaults, the run defaults, the
    plugin's preset for ``dataset``, ``config_file_list``, ``config_dict``, the command line.
    With ``loss_type: BPR`` and no negative sampling configured, one uniform negative is drawn.
    """
    files = [run_defaults_file()]
    preset = registry.dataset_yaml(dataset)
    if preset:
        files.append(preset)
    files += list(config_file_list or [])
    config_dict = dict(config_dict or {})
    config = Config(model=model, dataset=dataset, config_file_list=files, config_dict=config_dict)
    sampling = config["train_neg_sample_args"] or {}
    if config["loss_type"] == "BPR" and sampling.get("distribution") in (None, "none"):
        config_dict["train_neg_sample_args"] = dict(_BPR_SAMPLING)
        config = Config(model=model, dataset=dataset, config_file_list=files,
                        config_dict=config_dict)
    return config


class DatasetMissing(FileNotFoundError):
    """A converted dataset's atomic files are not where the config points."""


# Datasets whose raw data the user must convert first: module with a HOW_TO_GET_DATA text.
CONVERTED_DATASETS = {"xing": "dataset_converters.xing", "pinterest": "dataset_converters.pinterest"}


def check_dataset_files(config):
    """Stop early, with instructions, when a converted dataset's files are not there."""
    dataset = config["dataset"]
    if config["benchmark_filename"] or dataset not in CONVERTED_DATASETS:
        return
    inter = os.path.join(config["data_path"], f"{dataset}.inter")
    if not os.path.isfile(inter):
        how = importlib.import_module(CONVERTED_DATASETS[dataset]).HOW_TO_GET_DATA
        raise DatasetMissing(f"No {dataset} data at {inter}.\n{how}")


def make_dataset(config):
    """The O(N) :class:`SessionDataset` for every sequential model (unless
    ``use_session_dataset: False``), RecBole's ``create_dataset`` otherwise."""
    if config["MODEL_TYPE"] == ModelType.SEQUENTIAL and config["use_session_dataset"] is not False:
        return SessionDataset(config)
    return create_dataset(config)


def run(model="HierTCN", dataset="ml-100k", config_file_list=None, config_dict=None, saved=True):
    """Train ``model`` with early stopping, reload the best checkpoint and test it.

    Returns:
        dict: ``best_valid_score``, ``best_valid_result``, ``test_result``, ``model_file``
        (the checkpoint, or None when ``saved`` is False) and ``config``.
    """
    config = build_config(model, dataset, config_file_list, config_dict)
    init_seed(config["seed"], config["reproducibility"])
    check_dataset_files(config)
    init_logger(config)
    logger = getLogger()
    logger.info(config)

    data = make_dataset(config)
    logger.info(data)
    train_data, valid_data, test_data = data_preparation(config, data)

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model_class = get_model(config["model"])
    recommender = model_class(config, train_data._dataset).to(config["device"])
    logger.info(recommender)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, recommender)

    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=config["show_progress"]
    )
    test_result = trainer.evaluate(test_data, load_best_model=saved,
                                   show_progress=config["show_progress"])
    logger.info(f"best valid : {best_valid_result}")
    logger.info(f"test result: {test_result}")
    return {
        "best_valid_score": best_valid_score,
        "best_valid_result": best_valid_result,
        "test_result": test_result,
        "model_file": trainer.saved_model_file if saved else None,
        "config": config,
    }


def objective(config_dict=None, config_file_list=None, saved=True):
    """Objective for RecBole's ``HyperTuning``: one :func:`run` with the plugin's defaults.

    ``model`` and ``dataset`` come from the config files or dict, as for RecBole's own
    ``objective_function``. Being a function of this module, it is pickled by reference, so a
    trial in another process (spawned, or a Ray worker) imports ``recbole_hiertcn`` - and with it
    the registration - before it runs.
    """
    config_dict = dict(config_dict or {})
    probe = Config(config_dict=config_dict, config_file_list=config_file_list)
    result = run(model=probe["model"], dataset=probe["dataset"],
                 config_file_list=config_file_list, config_dict=config_dict, saved=saved)
    return {
        "model": result["config"]["model"],
        "best_valid_score": result["best_valid_score"],
        "valid_score_bigger": result["config"]["valid_metric_bigger"],
        "best_valid_result": result["best_valid_result"],
        "test_result": result["test_result"],
    }


def format_metrics(result, topk=(5, 10, 20)):
    """A small text table of Recall, MRR and NDCG at each cut-off for valid and test."""
    lines = [f"{'':6}" + "".join(f"{m.upper() + '@' + str(k):>11}" for m in REPORTED_METRICS
                                 for k in topk)]
    for split, key in (("valid", "best_valid_result"), ("test", "test_result")):
        values = result[key] or {}
        lines.append(f"{split:6}" + "".join(
            f"{values.get(f'{m}@{k}', float('nan')):>11.4f}" for m in REPORTED_METRICS
            for k in topk))
    return "\n".join(lines)


def parse_args(argv=None):
    """``--model``, ``--dataset`` and ``--config_files``; other ``--key=value`` go to RecBole."""
    parser = argparse.ArgumentParser(
        description="Train and test HierTCN or any RecBole model, RecBole style.",
        epilog="Any other --key=value is a RecBole config override, e.g. --learning_rate=0.002.",
    )
    parser.add_argument("--model", "-m", default="HierTCN", help="HierTCN or any RecBole model")
    parser.add_argument("--dataset", "-d", default="ml-100k", help="dataset name")
    parser.add_argument("--config_files", default=None,
                        help="space-separated yaml files, applied in order")
    args, _overrides = parser.parse_known_args(argv)  # RecBole reads them from sys.argv
    return args


def main(argv=None):
    """Command-line entry point: train, reload the best checkpoint, test, print metrics."""
    args = parse_args(argv)
    files = args.config_files.split() if args.config_files else None
    try:
        result = run(model=args.model, dataset=args.dataset, config_file_list=files)
    except DatasetMissing as err:
        raise SystemExit(f"error: {err}") from None
    print(f"\n{args.model} on {args.dataset} (best validation epoch, then test):")
    print(format_metrics(result))
    return result
