"""benchmarks.baseline_speed on a tiny plan: both modes of a baseline, side by side."""

import yaml

from benchmarks import baseline_speed


def test_prefix_and_sequence_epochs_are_printed_side_by_side(data_root, tmp_path, monkeypatch,
                                                             capsys):
    monkeypatch.chdir(tmp_path)
    plan = {"dataset": "tiny_time", "data_path": str(data_root),
            "shared": {"load_col": {"inter": ["user_id", "item_id", "timestamp"]},
                       "embedding_size": 8, "hidden_size": 8, "MAX_ITEM_LIST_LENGTH": 6,
                       "train_batch_size": 32}}
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    assert baseline_speed.main(["--plan", str(path), "--models", "GRU4Rec",
                                "--prefix-batches", "2"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith("GRU4Rec")]
    assert [row[1] for row in rows] == ["prefix", "sequence"]
    assert rows[0][2] == rows[1][2]  # the same training targets
    assert rows[0][4].startswith("~") and not rows[1][4].startswith("~")
    assert rows[1][-1].endswith("x")
