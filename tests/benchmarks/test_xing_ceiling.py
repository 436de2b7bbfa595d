"""The non-learned yardstick of the XING sample: same targets as the benchmark, sane rankings."""

import pytest

from benchmarks import xing_ceiling
from dataset_converters import xing, xing_sample


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    frame, items = xing_sample.generate(n_users=400, n_items=300, seed=5)
    raw = tmp_path_factory.mktemp("raw")
    xing_sample.write(frame, items, str(raw))
    out = tmp_path_factory.mktemp("dataset")
    xing.convert(str(raw / "interactions.csv"), str(out), echo=None)
    return out / "xing" / "xing.inter", raw / "items.csv"


def test_rule_scores_the_benchmarks_test_targets(converted):
    inter = xing_ceiling.load(*map(str, converted))
    # LS: one test target per user (every user of the preset has >= 10 interactions)
    result = xing_ceiling.evaluate(inter, "LS", 0.0)
    assert result["targets"] == inter["user_id"].nunique()
    # last_session: every event of the last session of each user with two sessions or more
    last = inter.groupby("user_id")["session_id"].transform("max")
    sessions = inter.groupby("user_id")["session_id"].nunique()
    expected = int(((inter["session_id"] == last)
                    & inter["user_id"].map(sessions).gt(1)).sum())
    assert xing_ceiling.evaluate(inter, "last_session", 0.0)["targets"] == expected


def test_knowing_the_session_beats_knowing_only_the_user(converted):
    inter = xing_ceiling.load(*map(str, converted))
    user_only = xing_ceiling.evaluate(inter, "last_session", 0.0)
    session_first = xing_ceiling.evaluate(inter, "last_session", 100.0)
    for metric in ("recall@10", "mrr@10", "ndcg@10"):
        assert 0.0 < user_only[metric] < session_first[metric] <= 1.0
    # far above random ranking over the catalogue
    assert user_only["recall@10"] > 5 * 10 / inter["item_id"].nunique()


def test_items_without_a_discipline_are_named(converted, tmp_path):
    inter_path, items_path = converted
    used = str(xing_ceiling.load(str(inter_path), str(items_path))["item_id"].iloc[0])
    lines = [line for line in items_path.read_text().splitlines()
             if line.split("\t")[0] != used]
    (tmp_path / "items.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"items\.csv: no discipline_id for 1 items"):
        xing_ceiling.load(str(inter_path), str(tmp_path / "items.csv"))
