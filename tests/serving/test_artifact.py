"""Export and load: the artifact rebuilds the same model without the dataset or RecBole's
Config, refuses files that are not its own, and is never half written."""

import json
import os
import pickle
import threading

import numpy as np
import pytest
import torch

from recbole_hiertcn.serving import ArtifactError, StreamingHierTCN, load_artifact
from recbole_hiertcn.serving.__main__ import build_stream
from recbole_hiertcn.serving.__main__ import main as serving_main
from recbole_hiertcn.serving.artifact import (MAX_STATE_POSITIONS, description_version,
                                              write_artifact)
from tests.conftest import small_config
from tests.serving.helpers import served_model


def export(model, folder, **options):
    return write_artifact(model.core, model.item_tokens, model.user_tokens, model.session_rule,
                          str(folder), dataset_name="tiny", **options)


def rehash(folder, change=lambda description: None):
    """What anyone can do to an export: edit files, then recompute every size and hash in
    model.json and the version (a plain SHA-256), after ``change(description)``."""
    import hashlib

    path = folder / "model.json"
    description = json.loads(path.read_text())
    change(description)
    for name, entry in description["files"].items():
        data = (folder / name).read_bytes()
        entry.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    description["version"] = description_version(description)
    path.write_text(json.dumps(description))
    return description["version"]


@pytest.mark.parametrize("settings", [dict(), dict(pretrained_item_field="vec", gap_decay=9.0),
                                      dict(scoring="tied", session_rule="session_id")])
def test_round_trip_gives_the_same_model(tmp_path, settings):
    model = served_model(**settings)
    version = export(model, tmp_path / "out")
    loaded = load_artifact(tmp_path / "out")
    assert loaded.version == version and loaded.session_rule == model.session_rule
    assert loaded.settings == model.settings
    assert loaded.item_tokens == model.item_tokens and loaded.user_tokens == model.user_tokens
    original, reloaded = model.core.state_dict(), loaded.core.state_dict()
    assert original.keys() == reloaded.keys()
    assert all(torch.equal(original[key], reloaded[key]) for key in original)
    assert not loaded.core.training


def test_output_folder_is_never_overwritten_or_half_written(tmp_path, monkeypatch):
    model = served_model()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        export(model, tmp_path / "taken")
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"

    def fail(*_args, **_kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "rename", fail)  # every file written, the last step fails
    with pytest.raises(OSError, match="disk full"):
        export(model, tmp_path / "new")
    assert sorted(os.listdir(tmp_path)) == ["taken"]  # no target, no staging folder left


def test_weights_that_do_not_match_the_description_are_refused(tmp_path):
    model = served_model()
    export(model, tmp_path / "a")
    export(served_model(seed=1), tmp_path / "b")
    os.replace(tmp_path / "b" / "weights.pt", tmp_path / "a" / "weights.pt")
    with pytest.raises(ArtifactError, match="weights.pt: does not match its hash"):
        load_artifact(tmp_path / "a")


@pytest.mark.parametrize("name", ["items.json", "users.json"])
def test_rotated_tokens_are_refused_and_a_rehashed_rotation_is_another_version(tmp_path, name):
    """Two tokens swapped would serve other items' ids under the same version: every file is
    covered by the version, so the edit is refused; recomputing every hash makes another
    model version (never mixed with the genuine one's user states)."""
    version = export(served_model(), tmp_path / "out")
    path = tmp_path / "out" / name
    tokens = json.loads(path.read_text())
    tokens[1], tokens[2] = tokens[2], tokens[1]
    path.write_text(json.dumps(tokens))
    with pytest.raises(ArtifactError, match=f"{name}: does not match its hash"):
        load_artifact(tmp_path / "out")
    assert rehash(tmp_path / "out") != version
    assert load_artifact(tmp_path / "out").version != version


@pytest.mark.parametrize("name, content, message", [
    ("items.json", b"12", "items.json: must be a list of token strings"),
    ("users.json", b'{"a": 1}', "users.json: must be a list of token strings"),
    ("items.json", json.dumps(["[PAD]"] + [1] * 39).encode(), "items.json: must be a list"),
    ("items.json", json.dumps(["[PAD]"] + ["same"] * 39).encode(), "items.json: the tokens "
                                                                   "are not distinct"),
    ("items.json", b"[", "items.json: not valid JSON"),
    ("weights.pt", None, "weights.pt: refused, not a plain tensor file"),  # truncated
])
def test_a_rehashed_file_of_the_wrong_kind_is_an_artifact_error_naming_it(tmp_path, name,
                                                                         content, message):
    export(served_model(), tmp_path / "out")
    path = tmp_path / "out" / name
    path.write_bytes(path.read_bytes()[:-100] if content is None else content)
    rehash(tmp_path / "out")
    with pytest.raises(ArtifactError, match=message):
        load_artifact(tmp_path / "out")


def test_a_file_replaced_by_a_folder_a_device_or_a_fifo_is_refused_without_reading_it(
        tmp_path):
    export(served_model(), tmp_path / "out")
    weights = tmp_path / "out" / "weights.pt"
    os.remove(weights)
    weights.mkdir()
    with pytest.raises(ArtifactError, match="weights.pt: not a regular file"):
        load_artifact(tmp_path / "out")
    weights.rmdir()
    os.symlink("/dev/zero", weights)  # would read until memory runs out
    with pytest.raises(ArtifactError, match="weights.pt: not a regular file"):
        load_artifact(tmp_path / "out")
    os.remove(weights)
    os.mkfifo(weights)  # opening it for reading would wait for a writer forever
    outcome = []

    def load():
        try:
            load_artifact(tmp_path / "out")
        except ArtifactError as err:
            outcome.append(str(err))

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive() and "weights.pt: not a regular file" in outcome[0]


def test_a_file_of_another_size_than_listed_is_refused_before_it_is_read(tmp_path,
                                                                         monkeypatch):
    export(served_model(), tmp_path / "out")
    with open(tmp_path / "out" / "users.json", "ab") as handle:
        handle.write(b" " * 10)
    with pytest.raises(ArtifactError, match=r"users.json: \d+ bytes, model.json says"):
        load_artifact(tmp_path / "out")


def test_an_oversized_description_is_refused_before_parsing(tmp_path):
    export(served_model(), tmp_path / "out")
    (tmp_path / "out" / "model.json").write_bytes(b" " * (2 << 20))
    with pytest.raises(ArtifactError, match="model.json: .* more than the"):
        load_artifact(tmp_path / "out")


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_weights_that_would_run_code_are_refused_before_running_it(tmp_path):
    """Even with a description that matches the file (the attacker wrote both)."""
    model = served_model()
    export(model, tmp_path / "out")
    marker = tmp_path / "ran"
    payload = pickle.dumps({"x": _Payload(str(marker))})
    (tmp_path / "out" / "weights.pt").write_bytes(payload)
    rehash(tmp_path / "out")
    with pytest.raises(ArtifactError, match="weights.pt: refused"):
        load_artifact(tmp_path / "out")
    assert not marker.exists()


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(format_version=99), "format_version 99"),
    (lambda d: d.update(format="something"), "not a recbole-hiertcn-serving"),
    (lambda d: d["settings"].update(kernel_size=0), "kernel_size"),
    (lambda d: d.update(session_rule="weekly"), "session_rule"),
])
def test_a_bad_description_is_refused_naming_the_file(tmp_path, change, message):
    export(served_model(), tmp_path / "out")
    rehash(tmp_path / "out", change)
    with pytest.raises(ArtifactError, match=message) as error:
        load_artifact(tmp_path / "out")
    assert "model.json" in str(error.value)


def test_an_edited_setting_is_a_different_version_and_refused(tmp_path):
    export(served_model(), tmp_path / "out")
    path = tmp_path / "out" / "model.json"
    description = json.loads(path.read_text())
    description["settings"]["session_gap"] = 5
    path.write_text(json.dumps(description))
    with pytest.raises(ArtifactError, match="model.json: the version does not match"):
        load_artifact(tmp_path / "out")


@pytest.mark.parametrize("change, weights, message", [
    # an attacker who recomputes the version: sizes are checked against the weights before
    # anything is allocated, and weights must fit the settings
    (lambda d: d.update(n_items=10 ** 13), None, "do not match the weights' item table"),
    (lambda d: d.pop("table_dim"), None, "table_dim must be a positive integer"),
    (lambda d: None, {"x": torch.ones(2)}, "no item table"),
    (lambda d: d["settings"].update(hidden_size=7), None, "does not fit the settings"),
    (lambda d: d["settings"].update(hidden_size=200_000), None,
     "hidden_size 200000 does not fit"),
    (lambda d: d["settings"].update(tcn_channels=[8] * 20_000, dilations=[1] * 20_000), None,
     "tcn_channels 20000 does not fit"),
    (lambda d: d["settings"].update(dilations=[1, 10 ** 6]), None,
     f"more than the {MAX_STATE_POSITIONS}"),
])
def test_a_consistent_but_wrong_export_is_refused_before_allocating(tmp_path, change, weights,
                                                                    message):
    import io

    export(served_model(), tmp_path / "out")
    folder = tmp_path / "out"
    if weights is not None:
        buffer = io.BytesIO()
        torch.save(weights, buffer)
        (folder / "weights.pt").write_bytes(buffer.getvalue())
    rehash(folder, change)
    with pytest.raises(ArtifactError, match=message):
        load_artifact(folder)


def test_a_signed_export_loads_only_unchanged_and_under_its_key(tmp_path):
    """The version is a plain SHA-256 anyone can recompute; the signature is not."""
    export(served_model(), tmp_path / "out", signing_key=b"operator secret")
    assert load_artifact(tmp_path / "out", signing_key=b"operator secret").version
    with pytest.raises(ArtifactError, match="model.json.sig: the signature does not match"):
        load_artifact(tmp_path / "out", signing_key=b"another key")
    tokens = json.loads((tmp_path / "out" / "items.json").read_text())
    tokens[1], tokens[2] = tokens[2], tokens[1]
    (tmp_path / "out" / "items.json").write_text(json.dumps(tokens))
    rehash(tmp_path / "out")
    load_artifact(tmp_path / "out")  # without a key: the forger's rehash is consistent
    with pytest.raises(ArtifactError, match="model.json.sig: the signature does not match"):
        load_artifact(tmp_path / "out", signing_key=b"operator secret")
    export(served_model(), tmp_path / "unsigned")
    with pytest.raises(ArtifactError, match="model.json.sig: missing.*must be signed"):
        load_artifact(tmp_path / "unsigned", signing_key=b"operator secret")


def test_the_export_is_readable_by_other_users(tmp_path):
    old = os.umask(0o022)
    try:
        export(served_model(), tmp_path / "out")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "out").st_mode & 0o777 == 0o755


def test_missing_file_is_named(tmp_path):
    export(served_model(), tmp_path / "out")
    os.remove(tmp_path / "out" / "items.json")
    with pytest.raises(ArtifactError, match="items.json: missing"):
        load_artifact(tmp_path / "out")


@pytest.mark.parametrize("dataset, seen_item_bias", [("tiny_sess", False), ("tiny_time", False),
                                                    ("tiny_sess", True)])
def test_a_trained_checkpoint_exports_and_serves_what_the_recbole_model_computes(
        data_root, in_tmp_dir, dataset, seen_item_bias):
    """Train with RecBole, export from the checkpoint (CLI), stream one user's whole history
    through the served model: its embedding and top items are the RecBole model's (with
    ``seen_item_bias``: every item's score, the offsets included)."""
    from recbole_hiertcn.quick_start import load_data_and_model, run

    config = small_config(data_root, dataset, dataset == "tiny_sess", epochs=2,
                          gap_decay=86_400.0 if dataset == "tiny_time" else None,
                          seen_item_bias=seen_item_bias, max_history=12)
    result = run(model="HierTCN", dataset=dataset, config_dict=config)
    checkpoint = result["model_file"]
    assert serving_main(["export", checkpoint, "--output", "served", "--with-states"]) == 0
    served = load_artifact("served")
    assert served.session_rule == ("session_id" if dataset == "tiny_sess" else "time_gap")
    _, model, data, *_ = load_data_and_model(checkpoint)
    model.eval()
    inter = data.inter_feat
    user = 3
    rows = torch.nonzero(inter[data.uid_field] == user).flatten()
    rows = rows[torch.argsort(inter["timestamp"][rows], stable=True)]
    items = inter[data.iid_field][rows]
    times = inter["timestamp"][rows]
    boundary = inter[model.boundary.field][rows]
    with torch.no_grad():
        # one more position after the history, in the same session, for the next event
        next_items = torch.cat([items, items.new_zeros(1)]).unsqueeze(0)
        next_boundary = torch.cat([boundary, boundary[-1:]]).unsqueeze(0)
        next_times = torch.cat([times, times[-1:] + 1]).unsqueeze(0)
        expected = model.encode(next_items, model.session_opens(next_boundary),
                                times=next_times)[0, -1]
    stream = StreamingHierTCN(served)  # replays the history itself
    user_token = data.field2id_token[data.uid_field][user]
    session_tokens = (data.field2id_token["session_id"][boundary] if dataset == "tiny_sess"
                      else [None] * len(items))
    for item, time, session in zip(items.tolist(), times.tolist(), session_tokens):
        stream.observe(user_token, data.field2id_token[data.iid_field][item], time,
                       None if session is None else str(session))
    got = stream.embedding(user_token, time=float(times[-1]) + 1,
                           session=None if session_tokens[-1] is None else str(session_tokens[-1]))
    assert torch.allclose(got, expected, atol=1e-5)
    scores = model.score_all(expected)
    if seen_item_bias:  # the RecBole row of the next event: its last max_history items
        assert served.history_window == model.history_window == 12
        offsets = model.core.seen_item_bias.all(model._row_seen({
            "item_id_list": items[-12:].unsqueeze(0), "item_length": torch.tensor([12]),
            "session_id_list": boundary[-12:].unsqueeze(0), "session_id": boundary[-1:]}))[0]
        assert len(set(offsets.tolist())) == 3  # trained: 0, and one offset per kind of item
        scores = scores + offsets.detach()
        served_scores = dict(stream.recommend(user_token, k=data.item_num - 1,
                                              time=float(times[-1]) + 1,
                                              session=str(session_tokens[-1])))
        tokens = data.field2id_token[data.iid_field]
        assert torch.allclose(torch.tensor([served_scores[tokens[i]]
                                            for i in range(1, data.item_num)]),
                              scores[1:], atol=1e-5)
    scores[0] = float("-inf")
    top = [data.field2id_token[data.iid_field][i] for i in torch.topk(scores, 5).indices]
    assert [item for item, _ in stream.recommend(user_token, k=5)] == top
    # the exported states: every training user served from their history at once, as `serve`
    # starts; identical to the replay above
    exported = build_stream("served")
    assert len(exported.store) == data.user_num - 1
    replayed, streamed = exported.state(user_token), stream.state(user_token)
    assert (replayed.events, replayed.session_count, replayed.last_session) == (
        streamed.events, streamed.session_count, streamed.last_session)
    assert (replayed.recent == streamed.recent).all()
    # the export steps many users' GRUs in one batch: equal up to rounding
    assert np.allclose(replayed.long_term, streamed.long_term, atol=1e-6)
    assert [item for item, _ in exported.recommend(user_token, k=5)] == top


def test_exported_states_must_match_their_hash_and_never_replace_live_states(tmp_path):
    from recbole_hiertcn.serving.state import encode_states

    model = served_model()
    live = StreamingHierTCN(model)
    live.observe("u1", "i3", 1_000_000.0)
    live.observe("u2", "i4", 1_000_000.0)
    states = encode_states([("u1", live.state("u1")), ("u2", live.state("u2"))])
    write_artifact(model.core, model.item_tokens, model.user_tokens, model.session_rule,
                   str(tmp_path / "out"), states=states)
    loaded = load_artifact(tmp_path / "out")
    stream = StreamingHierTCN(loaded)
    stream.observe("u2", "i5", 1_000_100.0)  # a live state the export must not overwrite
    assert stream.load_exported_states() == 1
    assert stream.state("u1").to_bytes() == live.state("u1").to_bytes()
    assert stream.state("u2").events == 1 and stream.state("u2").recent[-1] == 5
    (tmp_path / "out" / "states.bin").write_bytes(states[:-1] + b"x")
    with pytest.raises(ArtifactError, match="states.bin: does not match"):
        StreamingHierTCN(load_artifact(tmp_path / "out")).load_exported_states()
