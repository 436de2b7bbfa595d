"""A comparison plan: reading and checking it, and what it says about each run.

A plan (``benchmarks/<dataset>.yaml``) names the dataset, the protocols, the seeds, the models
(each label a RecBole model plus its own overrides), the settings every run shares, optionally
an equal-budget ``tuning`` grid and a ``focus`` model whose labels the report sets against the
rest.
"""

import itertools
import json
import os

import yaml

from recbole_hiertcn.data.protocols import PROTOCOLS, eval_args  # noqa: F401  (the runs')

PLAN_ONLY_KEYS = ("tuned_as", "seeds")  # a model entry's keys that are the plan's, not RecBole's
REQUIRED_KEYS = ("dataset", "models", "seeds", "protocols")


def results_folder(plan, override=None):
    """Where a plan's results go: ``override`` (``--out``), else its ``out``, else
    ``results/<dataset>``."""
    return override or plan.get("out") or os.path.join("results", plan["dataset"])


def load_plan(path):
    """The plan at ``path``, checked (a ``SystemExit`` naming the file and the key otherwise)."""
    with open(path, encoding="utf-8") as handle:
        plan = yaml.safe_load(handle)
    check_plan(plan, path)
    return plan


def check_plan(plan, path="the plan"):
    if not isinstance(plan, dict):
        raise SystemExit(f"{path}: not a plan (a mapping of dataset, models, seeds, protocols)")
    for key in REQUIRED_KEYS:
        if key not in plan:
            raise SystemExit(f"{path}: missing key {key!r}")
    for protocol in plan["protocols"]:
        if protocol not in PROTOCOLS:
            raise SystemExit(f"{path}: unknown protocol {protocol!r}; use {list(PROTOCOLS)}")
    trials = grid_trials(plan, path)
    for label in plan["models"]:
        source = entry_of(plan, label).get("tuned_as")
        if source is not None and source not in trials:
            raise SystemExit(f"{path}: models: {label}: tuned_as {source!r} is not a tuned model")
        extra = set(model_seeds(plan, label)) - set(plan["seeds"])
        if extra:
            raise SystemExit(f"{path}: models: {label}: seeds {sorted(extra)} are not among "
                             f"the plan's seeds {plan['seeds']}")
    focus = plan.get("focus")
    if focus is not None and not focus_labels(plan):
        models = sorted({model_name(plan, label) for label in plan["models"]})
        raise SystemExit(f"{path}: focus {focus!r} is not the model of any entry; the plan's "
                         f"models are {models}")


def entry_of(plan, label):
    """The plan's entry of ``label`` (an empty entry may be written as nothing)."""
    return plan["models"][label] or {}


def model_name(plan, label):
    """The RecBole model ``label`` trains: its entry's ``model``, else the label itself."""
    return entry_of(plan, label).get("model", label)


def focus_labels(plan):
    """The labels that train the plan's ``focus`` model (it and its variants), in plan order;
    none without a ``focus``."""
    focus = plan.get("focus")
    if focus is None:
        return []
    return [label for label in plan["models"] if model_name(plan, label) == focus]


def grid_trials(plan, path="the plan"):
    """{model label: [setting, ...]}: every combination of each tuned model's knobs, in the
    grid's order. Refuses models the plan does not list and unequal budgets."""
    tuning = plan.get("tuning") or {}
    grid = tuning.get("grid") or {}
    if grid and "seed" not in tuning:
        raise SystemExit(f"{path}: tuning: needs a seed")
    trials = {}
    for label, knobs in grid.items():
        if label not in plan["models"]:
            raise SystemExit(f"{path}: tuning: {label!r} is not one of the plan's models")
        names = list(knobs)
        trials[label] = [dict(zip(names, values))
                         for values in itertools.product(*(knobs[name] for name in names))]
    budgets = {label: len(settings) for label, settings in trials.items()}
    if len(set(budgets.values())) > 1:
        raise SystemExit(f"{path}: tuning: every model gets the same number of trials, got "
                         + ", ".join(f"{label} {n}" for label, n in budgets.items()))
    return trials


def model_seeds(plan, label):
    """The seeds ``label`` runs with: its entry's ``seeds`` (a subset of the plan's, e.g. one
    for a deterministic model or a costly check), else the plan's."""
    return entry_of(plan, label).get("seeds", plan["seeds"])


def tuned_as(plan, label):
    """The label whose chosen setting ``label`` runs at: its ``tuned_as`` entry, else itself
    (a variant such as HierTCN with the target's session signal withheld)."""
    return entry_of(plan, label).get("tuned_as", label)


def setting_key(setting):
    """How a setting is written in the csv files ('' for a model that is not tuned)."""
    return json.dumps(setting, sort_keys=True) if setting else ""


def setting_text(setting):
    return ", ".join(f"{name} {value}" for name, value in (setting or {}).items()) or "plan settings"


def valid_metric(plan):
    return (plan.get("shared") or {}).get("valid_metric", "MRR@10")


def choose(trials, tuning_rows, protocol):
    """{label: setting with the best validation score} for the models whose trials under
    ``protocol`` are all done (ties: the first in grid order)."""
    chosen = {}
    for label, settings in trials.items():
        scores = {r["setting"]: float(r["valid_score"]) for r in tuning_rows
                  if r["model"] == label and r["protocol"] == protocol and r["status"] == "ok"}
        keys = [setting_key(setting) for setting in settings]
        if all(key in scores for key in keys):
            best = max(range(len(keys)), key=lambda i: (scores[keys[i]], -i))
            chosen[label] = settings[best]
    return chosen


def chosen_settings(plan, tuning_rows):
    """{(label, protocol): chosen setting} from the rows of ``tuning.csv``."""
    trials = grid_trials(plan)
    return {(label, protocol): setting for protocol in plan["protocols"]
            for label, setting in choose(trials, tuning_rows, protocol).items()}


def run_settings(plan, label, setting=None):
    """The settings one run of ``label`` trains with: the plan's ``shared`` ones, overridden by
    its entry's (less ``model`` and the plan's own keys), overridden by the trial's
    ``setting``. The one rule for the child process, the epoch-cap check and the estimates; a
    label the plan no longer holds (a row of an old run) gets the shared settings."""
    entry = (plan.get("models") or {}).get(label) or {}
    own = {key: value for key, value in entry.items()
           if key != "model" and key not in PLAN_ONLY_KEYS}
    return {**(plan.get("shared") or {}), **own, **(setting or {})}


def job_spec(plan, label, protocol, seed, setting=None):
    """What the child process of one (model label, protocol, seed[, setting]) run receives."""
    spec = {"model": model_name(plan, label), "dataset": plan["dataset"], "protocol": protocol,
            "seed": seed, "settings": run_settings(plan, label, setting)}
    if plan.get("data_path"):
        spec["settings"]["data_path"] = plan["data_path"]
    return spec
