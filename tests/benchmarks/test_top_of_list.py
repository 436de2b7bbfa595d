"""benchmarks.top_of_list counts what a model ranks first against each test row's history."""

import csv
import json
import os

import torch
import yaml

from benchmarks import top_of_list as top_of_list_module
from benchmarks.compare.plan import results_folder
from benchmarks.top_of_list import top_of_list
from tests.benchmarks.test_compare import tiny_plan
from tests.conftest import build_model


def test_a_model_that_ranks_the_last_item_first_is_counted_on_every_row(data_root):
    _, model, _, test = build_model("HierTCN", data_root, "tiny_time")

    def last_item_first(interaction):
        history, lengths = interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN]
        scores = torch.zeros(len(history), model.n_items)
        scores[torch.arange(len(history)), history[torch.arange(len(history)), lengths - 1]] = 1
        return scores

    model.full_sort_predict = last_item_first
    shares = top_of_list(model, test)
    assert shares["rows"] > 0
    assert shares["top1_last_item"] == 1.0 and shares["top1_in_history"] == 1.0
    targets = torch.cat([batch[0][model.ITEM_ID] for batch in test])
    lasts = torch.cat([b[0][model.ITEM_SEQ].gather(1, (b[0][model.ITEM_SEQ_LEN] - 1)
                                                  .unsqueeze(1)).squeeze(1) for b in test])
    assert shares["recall@1"] == int((targets == lasts).sum()) / len(targets)

    def target_first(interaction):
        scores = torch.zeros(len(interaction), model.n_items)
        scores[torch.arange(len(interaction)), interaction[model.ITEM_ID]] = 1
        return scores

    model.full_sort_predict = target_first
    assert top_of_list(model, test)["recall@1"] == 1.0


def test_a_plan_without_an_out_folder_reads_its_tuning_from_the_default_one(
        data_root, tmp_path, monkeypatch, capsys):
    """The plans of the real logs name no ``out``: the tuning is read where the comparison
    wrote it, ``results/<dataset>`` (the command stopped with a KeyError before)."""
    monkeypatch.chdir(tmp_path)
    plan = yaml.safe_load(tiny_plan(data_root, tmp_path).read_text())
    assert "out" not in plan
    plan["shared"]["epochs"] = 1
    plan["tuning"] = {"seed": 1, "grid": {"GRU4Rec": {"learning_rate": [0.001, 0.05]}}}
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    assert results_folder(plan) == os.path.join("results", "tiny_sess")
    assert results_folder(plan, "elsewhere") == "elsewhere"
    os.makedirs("results/tiny_sess")
    with open("results/tiny_sess/tuning.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["model", "protocol", "seed", "status",
                                                    "valid_score", "setting"])
        writer.writeheader()
        for rate, score in ((0.001, "0.1"), (0.05, "0.3")):
            writer.writerow({"model": "GRU4Rec", "protocol": "LS", "seed": 1, "status": "ok",
                             "valid_score": score, "setting": json.dumps({"learning_rate": rate})})
    chosen = []
    real_job_spec = top_of_list_module.job_spec

    def recording(plan, label, protocol, seed, setting=None):
        chosen.append(setting)
        return real_job_spec(plan, label, protocol, seed, setting)

    monkeypatch.setattr(top_of_list_module, "job_spec", recording)
    top_of_list_module.main([str(path), "--models", "GRU4Rec", "--protocol", "LS"])
    assert chosen == [{"learning_rate": 0.05}]
    assert "GRU4Rec" in capsys.readouterr().out
