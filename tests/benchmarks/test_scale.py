"""benchmarks/scale.py end to end on a small log (a smoke test of the whole path, plus the
figures it must agree on)."""

import re

from benchmarks import scale


def test_scale_benchmark_smoke_runs_every_step_and_agrees_with_recboles_reader(tmp_path, capsys):
    assert scale.main(["--rows", "30000", "--ce-batches", "2", "--eval-batch-size", "512",
                       "--work-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = {line.split(" | ")[0].lstrip("| "): line for line in out.splitlines()
            if line.startswith("| ") and not line.startswith("| step")}
    for step in ("generate raw log", "convert (hiertcn preset)", "create dataset (columnar)",
                 "create dataset (RecBole's reader)", "HierTCN full-sort test, LS",
                 "HierTCN full-sort test, last_session",
                 "GRU4Rec train (CE, softmax over all items), 1 epoch, LS"):
        assert step in rows, step
    ours = re.search(r"([\d,]+) interactions,", rows["create dataset (columnar)"]).group(1)
    assert f"same {ours} interactions" in rows["create dataset (RecBole's reader)"]
    assert len(re.findall(r"^  (met |MISSED) ", out, flags=re.M)) == 7  # 3 memory/time, 3 rates, eval
    assert "bytes per interaction in the dataset's tensors" in out
