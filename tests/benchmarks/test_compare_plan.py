"""benchmarks.compare.plan on its own: the checks of a plan and what it says of each run."""

import pytest
import yaml

from benchmarks.compare import plan as plans


def small_plan(**changes):
    plan = {"dataset": "d", "protocols": ["LS"], "seeds": [1, 2],
            "models": {"A": {"model": "HierTCN"}, "A-x": {"model": "HierTCN", "dropout": 0.3},
                       "B": {"model": "GRU4Rec"}, "Pop": None}}
    plan.update(changes)
    return plan


def write(tmp_path, plan):
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return str(path)


def test_a_good_plan_loads_as_written(tmp_path):
    plan = small_plan(focus="HierTCN")
    assert plans.load_plan(write(tmp_path, plan)) == plan


@pytest.mark.parametrize("changes, message", [
    ({"dataset": None}, "missing key 'dataset'"),
    ({"protocols": ["LS", "leave_two_out"]}, "unknown protocol 'leave_two_out'"),
    ({"focus": "SASRec"}, r"focus 'SASRec' is not the model of any entry; the plan's models "
                          r"are \['GRU4Rec', 'HierTCN', 'Pop'\]"),
    ({"tuning": {"grid": {"B": {"learning_rate": [0.1]}}}}, "tuning: needs a seed"),
    ({"tuning": {"seed": 1, "grid": {"C": {"learning_rate": [0.1]}}}},
     "tuning: 'C' is not one of the plan's models"),
    ({"tuning": {"seed": 1, "grid": {"A": {"learning_rate": [0.1, 0.2]},
                                     "B": {"learning_rate": [0.1], "dropout": [0.0, 0.1, 0.2]}}}},
     "same number of trials, got A 2, B 3"),
])
def test_a_faulty_plan_is_refused_naming_the_file_and_the_key(tmp_path, changes, message):
    plan = small_plan(**changes)
    plan = {key: value for key, value in plan.items() if value is not None}
    path = write(tmp_path, plan)
    with pytest.raises(SystemExit, match=message) as refused:
        plans.load_plan(path)
    assert str(refused.value).startswith(path + ": ")


def test_a_model_entrys_own_keys_are_checked(tmp_path):
    plan = small_plan(tuning={"seed": 1, "grid": {"B": {"learning_rate": [0.1]}}})
    plan["models"]["A-x"]["tuned_as"] = "A"
    with pytest.raises(SystemExit, match="A-x: tuned_as 'A' is not a tuned model"):
        plans.load_plan(write(tmp_path, plan))
    plan["models"]["A-x"] = {"model": "HierTCN", "seeds": [2, 7]}
    with pytest.raises(SystemExit, match=r"A-x: seeds \[7\] are not among the plan's seeds"):
        plans.load_plan(write(tmp_path, plan))


def test_the_focus_model_names_its_labels_in_plan_order():
    assert plans.focus_labels(small_plan(focus="HierTCN")) == ["A", "A-x"]
    assert plans.focus_labels(small_plan(focus="Pop")) == ["Pop"]  # the label is the model
    assert plans.focus_labels(small_plan()) == []  # no focus: nobody's variants


def test_grid_trials_are_every_combination_in_the_grids_order():
    plan = small_plan(tuning={"seed": 1, "grid": {"A": {"lr": [1, 2], "dropout": [0, 5]}}})
    assert plans.grid_trials(plan) == {"A": [{"lr": 1, "dropout": 0}, {"lr": 1, "dropout": 5},
                                             {"lr": 2, "dropout": 0}, {"lr": 2, "dropout": 5}]}
    assert plans.grid_trials(small_plan()) == {}


def test_seeds_tuned_as_and_settings():
    plan = small_plan()
    plan["models"]["B"] = {"model": "GRU4Rec", "seeds": [2], "tuned_as": "A"}
    assert plans.model_seeds(plan, "B") == [2] and plans.model_seeds(plan, "A") == [1, 2]
    assert plans.tuned_as(plan, "B") == "A" and plans.tuned_as(plan, "Pop") == "Pop"
    assert plans.setting_key({"b": 1, "a": 0.5}) == '{"a": 0.5, "b": 1}'
    assert plans.setting_key(None) == "" and plans.setting_text(None) == "plan settings"
    assert plans.setting_text({"lr": 0.1, "dropout": 0}) == "lr 0.1, dropout 0"
    assert plans.valid_metric(plan) == "MRR@10"
    assert plans.valid_metric({"shared": {"valid_metric": "Recall@20"}}) == "Recall@20"


def test_a_jobs_spec_is_recboles_settings_alone():
    plan = small_plan(shared={"epochs": 3, "dropout": 0.0}, data_path="dataset",
                      focus="HierTCN")
    plan["models"]["A-x"].update(seeds=[1], tuned_as="A")
    spec = plans.job_spec(plan, "A-x", "LS", 2, {"learning_rate": 0.01})
    assert spec == {"model": "HierTCN", "dataset": "d", "protocol": "LS", "seed": 2,
                    "settings": {"epochs": 3, "dropout": 0.3, "learning_rate": 0.01,
                                 "data_path": "dataset"}}
    assert plans.job_spec(plan, "Pop", "LS", 1)["model"] == "Pop"


def test_the_chosen_settings_are_keyed_by_label_and_protocol():
    plan = small_plan(protocols=["LS", "last_session"],
                      tuning={"seed": 1, "grid": {"B": {"lr": [1, 2]}}})
    rows = [{"model": "B", "protocol": protocol, "status": "ok", "valid_score": score,
             "setting": plans.setting_key({"lr": lr})}
            for protocol, lr, score in (("LS", 1, "0.3"), ("LS", 2, "0.2"),
                                        ("last_session", 1, "0.1"))]
    assert plans.chosen_settings(plan, rows) == {("B", "LS"): {"lr": 1}}
