"""The synthetic XING generator: exact format and the structure it promises."""

import numpy as np
import pytest

from dataset_converters import xing_sample


@pytest.fixture(scope="module")
def generated():
    return xing_sample.generate(n_users=600, n_items=800, seed=11)


def test_same_seed_same_log(generated):
    again, items = xing_sample.generate(n_users=600, n_items=800, seed=11)
    assert again.equals(generated[0]) and items.equals(generated[1])


def test_files_have_the_challenge_headers(tmp_path, generated):
    frame, items = generated
    xing_sample.write(frame, items, str(tmp_path / "y16"), year=2016)
    xing_sample.write(frame, items, str(tmp_path / "y17"), year=2017)
    assert (tmp_path / "y16" / "interactions.csv").read_text().splitlines()[0].split("\t") == [
        "user_id", "item_id", "interaction_type", "created_at"]
    assert (tmp_path / "y17" / "interactions.csv").read_text().splitlines()[0].split("\t") == [
        "interactions.user_id", "interactions.item_id", "interactions.created_at",
        "interactions.interaction_type"]
    header = (tmp_path / "y16" / "items.csv").read_text().splitlines()[0].split("\t")
    assert header == ["id", "title", "career_level", "discipline_id", "industry_id", "country",
                      "region", "latitude", "longitude", "employment", "tags", "created_at",
                      "active_during_test"]


def test_log_is_in_time_order_with_clicks_dominating(generated):
    frame, _ = generated
    assert np.all(np.diff(frame.created_at.to_numpy()) >= 0)
    shares = frame.interaction_type.value_counts(normalize=True)
    assert shares[1] > 0.75 and 0.01 < shares[2] < 0.1 and 0.01 < shares[3] < 0.1
    assert 0.03 < shares[4] < 0.15


def test_popularity_is_skewed(generated):
    frame, _ = generated
    counts = np.sort(frame.item_id.value_counts().to_numpy())[::-1]
    assert counts[: len(counts) // 10].sum() > 0.3 * counts.sum()


def test_gaps_fall_on_both_sides_of_the_30_minute_rule(generated):
    frame, _ = generated
    gaps = frame.sort_values(["user_id", "created_at"], kind="stable").groupby(
        "user_id").created_at.diff().dropna()
    assert ((gaps >= 1500) & (gaps < 1800)).sum() > 50
    assert ((gaps >= 1800) & (gaps < 2400)).sum() > 50
    assert (gaps == 0).sum() > 0  # ties in the same second


def test_users_keep_lasting_interests(generated):
    frame, items = generated
    discipline = dict(zip(items.id, items.discipline_id))
    clicks = frame[frame.interaction_type == 1]
    top_share = clicks.assign(d=clicks.item_id.map(discipline)).groupby("user_id").d.agg(
        lambda d: d.value_counts(normalize=True).iloc[0])
    # uniform interests over 24 disciplines would give about 1/24 per user
    assert top_share[clicks.groupby("user_id").size() >= 20].median() > 0.4
