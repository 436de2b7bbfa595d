"""Train-and-test entry point used by ``run_recbole_hiertcn.py`` for any model.

It follows RecBole's ``run_recbole`` (same trainer, same full-sort evaluation, best checkpoint
reloaded for the test) without importing ``recbole.quick_start`` (which pulls in ray), and
adds the plugin's run defaults (``properties/overall.yaml``) and dataset presets so that
HierTCN and RecBole's built-in models are compared on identical data and settings. Every run
gets its own id: its log and checkpoint names carry it, and the test reloads only a checkpoint
this run wrote (:mod:`recbole_hiertcn.trainer`).
"""

import argparse
import contextlib
import dataclasses
import importlib
import os
import tempfile
from logging import getLogger

import recbole.data.dataset
import recbole.utils
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import ModelType, init_logger, init_seed

from recbole_hiertcn import distributed, registry
from recbole_hiertcn.checkpoint import load_checkpoint
from recbole_hiertcn.data.dataset import ColumnarDataset, SessionDataset
from recbole_hiertcn.trainer import run_trainer
from recbole_hiertcn.trainer.trainer import RUN_ID, new_run_id

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


# Model types for which RecBole's create_dataset builds a plain Dataset.
_PLAIN_DATASET_TYPES = (ModelType.GENERAL, ModelType.CONTEXT, ModelType.TRADITIONAL,
                        ModelType.DECISIONTREE)


def make_dataset(config):
    """The dataset of ``config``, loaded columnar where the plugin has the class: the O(N)
    :class:`SessionDataset` for every sequential model when ``use_session_dataset`` is set (the
    run defaults set it), :class:`ColumnarDataset` where RecBole would build a plain
    ``Dataset``; RecBole's ``create_dataset`` otherwise (knowledge-aware models, models with a
    dataset class of their own, ``use_session_dataset: False``)."""
    if config["MODEL_TYPE"] == ModelType.SEQUENTIAL and config["use_session_dataset"]:
        return SessionDataset(config)
    own_class = hasattr(recbole.data.dataset, config["model"] + "Dataset")
    if config["MODEL_TYPE"] in _PLAIN_DATASET_TYPES and not own_class:
        dataset = ColumnarDataset(config)
        if config["save_dataset"]:
            dataset.save()
        return dataset
    return create_dataset(config)


def _data_and_model(config, model_seed):
    """Logger, dataset, the three loaders and the model of ``config``, seeded as RecBole seeds
    them (``config["seed"]`` for the data, ``model_seed`` for the weights)."""
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(config)
    data = make_dataset(config)
    logger.info(data)
    train_data, valid_data, test_data = data_preparation(config, data)
    init_seed(model_seed, config["reproducibility"])
    # Looked up at call time: this module imports RecBole before the plugin has registered
    # (registration waits for it), so a name bound at import would be RecBole's own get_model,
    # which answers GRU4Rec, NextItNet and SASRec with RecBole's classes, not the plugin's.
    model_class = recbole.utils.get_model(config["model"])
    model = model_class(config, train_data._dataset).to(config["device"])
    return data, train_data, valid_data, test_data, model


@dataclasses.dataclass
class PreparedRun:
    """Everything a run trains and tests with, ready for ``trainer.fit``."""

    config: Config
    train_data: object
    valid_data: object
    test_data: object
    model: object
    trainer: object


def prepare_run(model="HierTCN", dataset="ml-100k", config_file_list=None, config_dict=None):
    """Config (with a new run id), logger, data, model and trainer of one run.

    With the config key ``resume_checkpoint`` (a checkpoint of an earlier run with the same
    settings), the trainer continues after that checkpoint's epoch with its random state.
    """
    config = build_config(model, dataset, config_file_list, config_dict)
    # before the logger (the log file name hashes the config); under DDP rank 0's, on every rank
    config[RUN_ID] = distributed.broadcast_from_first(new_run_id())
    check_dataset_files(config)
    _, train_data, valid_data, test_data, recommender = _data_and_model(
        config, model_seed=config["seed"] + config["local_rank"])
    getLogger().info(recommender)
    trainer = run_trainer(config["MODEL_TYPE"], config["model"])(config, recommender)
    if config["resume_checkpoint"]:
        trainer.resume_checkpoint(config["resume_checkpoint"])
    return PreparedRun(config, train_data, valid_data, test_data, recommender, trainer)


def run(model="HierTCN", dataset="ml-100k", config_file_list=None, config_dict=None, saved=True,
        nproc=1, world_size=-1, ip="localhost", port="5678", group_offset=0):
    """Train ``model`` with early stopping, reload the best checkpoint and test it.

    With ``nproc`` > 1 (or a ``world_size``), as RecBole's ``run``: ``nproc`` processes on this
    machine (ranks ``group_offset`` .. ``group_offset + nproc - 1`` of ``world_size``, meeting
    at ``ip``:``port``) train one model with DDP (backend: the ``backend`` key; gloo on the
    CPU). Every process imports this module, so the plugin is registered in each.

    Returns:
        dict: ``best_valid_score``, ``best_valid_result``, ``test_result``, ``model_file``
        (the checkpoint, or None when ``saved`` is False), ``config`` and ``model`` (with the
        tested weights; None after a multi-process run, whose processes have ended).
    """
    if nproc > 1 or world_size > 0:
        return _run_processes(model, dataset, config_file_list, config_dict, saved, nproc,
                              world_size, ip, port, group_offset)
    return fit_and_test(prepare_run(model, dataset, config_file_list, config_dict), saved)


def fit_and_test(prepared, saved=True):
    """Train a :class:`PreparedRun` with early stopping, reload its best checkpoint (when
    ``saved``) and test it; returns what :func:`run` returns."""
    config, trainer = prepared.config, prepared.trainer
    best_valid_score, best_valid_result = trainer.fit(
        prepared.train_data, prepared.valid_data, saved=saved,
        show_progress=config["show_progress"])
    test_result = trainer.evaluate(prepared.test_data, load_best_model=saved,
                                   show_progress=config["show_progress"])
    logger = getLogger()
    logger.info(f"best valid : {best_valid_result}")
    logger.info(f"test result: {test_result}")
    return {
        "best_valid_score": best_valid_score,
        "best_valid_result": best_valid_result,
        "test_result": test_result,
        "model_file": trainer.saved_model_file if saved else None,
        "config": config,
        "model": prepared.model,
    }


def _run_processes(model, dataset, config_file_list, config_dict, saved, nproc, world_size, ip,
                   port, group_offset):
    import torch.multiprocessing as mp

    world_size = nproc if world_size <= 0 else world_size
    config_dict = dict(config_dict or {}, world_size=world_size, ip=ip, port=port, nproc=nproc,
                       offset=group_offset)
    queue = mp.get_context("spawn").SimpleQueue()
    processes = mp.spawn(_run_rank, nprocs=nproc, join=False,
                         args=(model, dataset, config_file_list, config_dict, saved, queue))
    result = None
    # read while the processes run: a result larger than the pipe's buffer would otherwise
    # block rank 0 in put() while this process waits for it to end
    while not processes.join(timeout=0.2):
        if result is None and not queue.empty():
            result = queue.get()
    if result is None and not queue.empty():
        result = queue.get()
    return result


def _run_rank(local_rank, model, dataset, config_file_list, config_dict, saved, queue):
    """One process of a multi-process run (the target of ``mp.spawn``)."""
    distributed.report_crashes()
    result = run(model, dataset, config_file_list, dict(config_dict, local_rank=local_rank),
                 saved=saved)
    result["model"] = None  # this process's model goes with it
    if local_rank == 0:
        queue.put(result)
    del result
    distributed.end_process()


def recbole_rank(rank, *args):
    """RecBole's ``run_recboles`` (what ``recbole.quick_start.run(..., nproc=N)`` spawns), kept
    here so that every spawned process imports the plugin - and registers its models - before
    it runs RecBole's ``run_recbole``."""
    from recbole.quick_start.quick_start import run_recbole

    kwargs = dict(args[-1])
    kwargs["config_dict"] = dict(kwargs.get("config_dict") or {}, local_rank=rank)
    distributed.report_crashes()
    run_recbole(*args[:3], **kwargs)  # destroys the process group itself
    distributed.end_process()


# Config keys naming files that RecBole reads outside the dataset's atomic files - a saved
# dataset and saved split loaders, which it unpickles, and the folder where it looks for both
# under default names - with the value each gets when a checkpoint is loaded: a checkpoint is
# data, and none of its paths (nor a file planted in the working folder) may reach pickle.
CHECKPOINT_PATH_KEYS = {
    "dataset_save_path": None,
    "dataloaders_save_path": None,
    "save_dataset": False,
    "save_dataloaders": False,
    "checkpoint_dir": "saved",  # RecBole's default; only written to after the load
}


def drop_saved_file_paths(config):
    """Set the :data:`CHECKPOINT_PATH_KEYS` of a checkpoint's ``config`` to their load values."""
    for key, value in CHECKPOINT_PATH_KEYS.items():
        config[key] = value


@contextlib.contextmanager
def no_saved_files(config):
    """While the block runs, RecBole's ``create_dataset`` and ``data_preparation`` find no
    saved dataset or split loaders to unpickle: both paths name a file in a new, empty folder
    (without a path, they would look for a default name in ``checkpoint_dir``)."""
    with tempfile.TemporaryDirectory(prefix="recbole-hiertcn-no-saved-") as empty:
        for key in ("dataset_save_path", "dataloaders_save_path"):
            config[key] = os.path.join(empty, "absent")
        try:
            yield
        finally:
            for key in ("dataset_save_path", "dataloaders_save_path"):
                config[key] = None


def load_data_and_model(model_file):
    """RecBole's ``load_data_and_model``, reading the checkpoint with the safe loader.

    Rebuilds the data from the dataset's atomic files the way the run built them (the session
    dataset when the run used it) and returns ``config, model, dataset, train_data,
    valid_data, test_data`` like RecBole. Unlike RecBole's, it never reads a saved dataset or
    saved split loaders (plain pickles): the checkpoint's paths to them are dropped
    (:data:`CHECKPOINT_PATH_KEYS`) and files under their default names are ignored. This
    function also stands in for ``recbole.quick_start.load_data_and_model``.
    """
    checkpoint = load_checkpoint(model_file)
    config = checkpoint["config"]
    # An unpickled Config skips __init__, which sets the numpy aliases RecBole's metrics read
    # (np.float, ...); in a fresh process nothing else has set them.
    config.compatibility_settings()
    drop_saved_file_paths(config)
    distributed.as_one_process(config)  # a checkpoint of a multi-process run
    with no_saved_files(config):
        data, train_data, valid_data, test_data, model = _data_and_model(
            config, model_seed=config["seed"])
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    return config, model, data, train_data, valid_data, test_data


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
    # RecBole's multi-process options (see `run`)
    parser.add_argument("--nproc", type=int, default=1, help="processes on this machine")
    parser.add_argument("--world_size", type=int, default=-1,
                        help="processes on all machines (default: nproc)")
    parser.add_argument("--ip", default="localhost", help="address of the machine of rank 0")
    parser.add_argument("--port", default="5678", help="free port on the machine of rank 0")
    parser.add_argument("--group_offset", type=int, default=0,
                        help="rank of this machine's first process")
    args, _overrides = parser.parse_known_args(argv)  # RecBole reads them from sys.argv
    return args


def main(argv=None):
    """Command-line entry point: train, reload the best checkpoint, test, print metrics;
    returns the exit status. (``run`` returns the results.) The ``recbole-hiertcn`` command
    is :func:`recbole_hiertcn.cli.main`, which also dispatches ``export``, ``serve`` and
    ``convert``."""
    args = parse_args(argv)
    files = args.config_files.split() if args.config_files else None
    try:
        result = run(model=args.model, dataset=args.dataset, config_file_list=files,
                     nproc=args.nproc, world_size=args.world_size, ip=args.ip, port=args.port,
                     group_offset=args.group_offset)
    except DatasetMissing as err:
        raise SystemExit(f"error: {err}") from None
    print(f"\n{args.model} on {args.dataset} (best validation epoch, then test):")
    print(format_metrics(result))
    return 0  # the exit status (the console script passes it to sys.exit)
