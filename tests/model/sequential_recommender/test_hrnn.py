"""HRNN: equal to a step-by-step reference of the paper's equations, causal, session semantics,
padding and batching, both training modes, config checks, a reload, and learning a sequence."""

import pytest
import torch


from tests.conftest import assert_reload_reproduces, build_model, small_config
from tests.model.sequential_recommender.test_hiertcn import (
    GAP,
    assert_a_batch_equals_each_user_alone,
    assert_causal,
    assert_padding_is_never_read,
    assert_row_path_matches_the_full_layout,
    encode_all,
    popularity_recall,
    sessions_to_layout,
    write_cycle_dataset,
)


def build(data_root, dataset="tiny_time", **overrides):
    return build_model("HRNN", data_root, dataset, **{"user_hidden_size": 12, **overrides})


@pytest.fixture(scope="module", params=[("all", "session_state"), ("init", "session_state"),
                                        ("all", "item_mean")])
def model(request, data_root):
    variant, user_input = request.param
    return build(data_root, hrnn_variant=variant, user_input=user_input)[1]


def reference_states(model, sessions):
    """The paper's equations, one GRU step at a time: the state that predicts each item."""
    cell = torch.nn.GRUCell(model.session_gru.input_size, model.hidden_size)
    cell.load_state_dict({name.replace("_l0", ""): value
                          for name, value in model.session_gru.state_dict().items()})
    user = torch.zeros(1, model.user_hidden_size)
    out = []
    with torch.no_grad():
        for session in sessions:
            state = torch.tanh(model.init_layer(user))
            for item in session:
                out.append(state[0])
                x = model.item_embedding(torch.tensor([item]))
                if model.variant == "all":
                    x = torch.cat([x, user], dim=-1)
                state = cell(x, state)
            summary = (state if model.user_input == "session_state"
                       else model.item_embedding(torch.tensor(session)).mean(dim=0, keepdim=True))
            user = model.user_gru(summary, user)
    return torch.stack(out)


# ----------------------------------------------------------------------------- equations
def test_equals_a_step_by_step_reference_of_the_equations(model):
    sessions = [[3, 4, 5], [6, 7], [8], [9, 10, 11, 12]]
    items, times = sessions_to_layout(sessions)
    assert torch.allclose(encode_all(model, items, times)[0], reference_states(model, sessions),
                          atol=1e-5)


def test_the_init_variant_reads_the_user_state_only_at_session_starts(data_root):
    all_model = build(data_root, hrnn_variant="all")[1]
    init_model = build(data_root, hrnn_variant="init")[1]
    assert all_model.session_gru.input_size == 16 + 12
    assert init_model.session_gru.input_size == 16


def test_a_config_from_before_user_input_existed_builds_the_papers_model(data_root):
    from recbole_hiertcn.model.sequential_recommender.hrnn import HRNN

    config, model, train, _ = build(data_root)
    del config.final_config_dict["user_input"]  # as in a checkpoint saved before the key
    rebuilt = HRNN(config, train._dataset)
    assert rebuilt.user_input == "session_state"
    assert rebuilt.user_gru.input_size == model.hidden_size


# ----------------------------------------------------------------------------- causality
def test_outputs_never_depend_on_the_target_or_later_interactions(model):
    assert_causal(model)


def test_row_path_matches_the_full_layout_at_every_target(model):
    assert_row_path_matches_the_full_layout(model)


def test_target_time_decides_whether_it_opens_a_session(model):
    items, times = sessions_to_layout([[3, 4], [6, 7, 8]])
    last = float(times[0, 4])
    with torch.no_grad():
        inside = model.forward(items, torch.tensor([5]), times, torch.tensor([last + 60]))
        opens = model.forward(items, torch.tensor([5]), times, torch.tensor([last + GAP]))
    expected = reference_states(model, [[3, 4], [6, 7, 8], [1]])
    assert torch.allclose(opens[0], expected[5], atol=1e-5)
    assert not torch.allclose(inside, opens)


# ----------------------------------------------------------------------------- padding, batching
def test_a_batch_equals_each_user_alone_and_padding_is_never_read(data_root):
    _, model, _, test = build(data_root)
    assert_a_batch_equals_each_user_alone(model, test)
    assert_padding_is_never_read(model, test)


def test_session_ids_and_time_gaps_agree(data_root):
    _, by_session, _, test = build(data_root, "tiny_sess")
    _, by_time, _, _ = build(data_root, "tiny_sess", session_field=None)
    assert by_session.boundary.field == "session_id" and by_time.boundary.field == "timestamp"
    by_time.load_state_dict(by_session.state_dict())
    batch = next(iter(test))[0]
    with torch.no_grad():
        assert torch.allclose(by_session.full_sort_predict(batch),
                              by_time.full_sort_predict(batch), atol=1e-5)


# ----------------------------------------------------------------------------- training
@pytest.mark.parametrize("scoring, train_mode, seen_item_bias", [
    ("untied", "sequence", False), ("tied", "sequence", False), ("untied", "prefix", False),
    ("untied", "sequence", True), ("untied", "prefix", True)])
def test_every_parameter_receives_gradient(data_root, scoring, train_mode, seen_item_bias):
    _, model, train, _ = build(data_root, scoring=scoring, train_mode=train_mode,
                               dropout_prob=0.2, seen_item_bias=seen_item_bias)
    model.train()
    model.calculate_loss(next(iter(train))).backward()
    missing = [name for name, p in model.named_parameters()
               if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


def test_sequence_loss_is_the_mean_over_every_target_of_the_batch(data_root):
    _, model, train, _ = build(data_root)
    batch = next(iter(train))
    mask = batch["seq_target_mask"]
    with torch.no_grad():
        hidden = model.encode(batch["seq_item_id"], model.boundary.opens(batch["seq_timestamp"]))
        expected = torch.nn.functional.cross_entropy(model.score_all(hidden[mask]),
                                                     batch["seq_item_id"][mask])
        assert torch.allclose(model.calculate_loss(batch), expected)


@pytest.mark.parametrize("key, value", [("hidden_size", 0), ("user_hidden_size", -1),
                                        ("hrnn_variant", "last"), ("scoring", "cosine"),
                                        ("user_input", "last_item"),
                                        ("dropout_prob", 1.0), ("loss_type", "BPR"),
                                        ("session_gap", -5), ("seen_item_bias", "yes"),
                                        ("seen_item_counts", True)])
def test_invalid_settings_name_the_key(data_root, key, value):
    with pytest.raises(ValueError, match=f"HRNN: config key `{key}`"):
        build(data_root, **{key: value})


def test_without_the_seen_item_bias_the_model_is_the_papers(data_root):
    _, model, _, _ = build(data_root)
    assert model.seen_item_bias is None
    assert not any("seen_item_bias" in name for name in model.state_dict())


def test_learns_the_sequence_where_popularity_cannot_and_reloads(tmp_path, in_tmp_dir):
    """Every test target is the cycle step after the item before it: trained HRNN ranks it far
    above popularity; the saved checkpoint, reloaded, gives the reported test metrics."""
    from recbole_hiertcn.quick_start import run

    walks = write_cycle_dataset(str(tmp_path), "cycle")
    popularity = popularity_recall(walks)
    overrides = {"epochs": 5, "learning_rate": 0.05, "eval_batch_size": 4096,
                 "checkpoint_dir": str(in_tmp_dir / "saved"),
                 "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full"}}
    result = run(model="HRNN", dataset="cycle",
                 config_dict=small_config(tmp_path, "cycle", user_hidden_size=16, **overrides))
    recall = result["test_result"]["recall@10"]
    assert recall >= 0.8 and recall >= 4 * popularity, (recall, popularity)
    assert_reload_reproduces(result["test_result"], result["model_file"])
