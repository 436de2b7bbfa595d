"""Retrieval: exact top-k is the model's own ranking; a FAISS index gives the same items with
the head's bias as an extra dimension, and high recall against exact on a larger catalogue."""

import pytest
import torch

from recbole_hiertcn.core.network import HierTCNCore
from recbole_hiertcn.core.settings import HierTCNSettings
from recbole_hiertcn.serving import ExactRetrieval, FaissRetrieval, StreamingHierTCN
from recbole_hiertcn.serving.artifact import ServedModel
from tests.serving.helpers import SMALL, served_model

pytest.importorskip("faiss")

HEADS = {"untied": dict(), "tied": dict(scoring="tied"),
         "embedding": dict(pretrained_item_field="vec")}


def queries(model, count=20, seed=0):
    generator = torch.Generator().manual_seed(seed)
    width = model.settings.tcn_channels[-1]
    with torch.no_grad():
        return [model.core.retrieval_query(torch.randn(width, generator=generator))
                for _ in range(count)]


@pytest.mark.parametrize("head", list(HEADS))
def test_exact_top_k_is_the_ranking_of_the_models_scores(head):
    model = served_model(**HEADS[head])
    exact = ExactRetrieval(model)
    generator = torch.Generator().manual_seed(1)
    for _ in range(10):
        hidden = torch.randn(model.settings.tcn_channels[-1], generator=generator)
        with torch.no_grad():
            scores = model.core.score_all(hidden)
            ids, values = exact.top_k(model.core.retrieval_query(hidden), 10)
        scores[0] = float("-inf")
        assert ids == torch.topk(scores, 10).indices.tolist()
        assert torch.allclose(torch.tensor(values), torch.topk(scores, 10).values, atol=1e-5)


@pytest.mark.parametrize("head", list(HEADS))
def test_a_flat_faiss_index_returns_the_exact_items(head):
    model = served_model(**HEADS[head])
    exact, flat = ExactRetrieval(model), FaissRetrieval(model, index="Flat")
    for query in queries(model):
        assert flat.top_k(query, 10)[0] == exact.top_k(query, 10)[0]
        excluded = exact.top_k(query, 3)[0]
        assert flat.top_k(query, 10, excluded)[0] == exact.top_k(query, 10, excluded)[0]


def test_the_untied_heads_bias_goes_into_the_index():
    model = served_model()
    with torch.no_grad():
        model.core.output_layer.bias[17] = 1e3  # item 17 wins every query through its bias
    index = FaissRetrieval(model, index="Flat")
    assert all(index.top_k(query, 1)[0] == [17] for query in queries(model))


def test_hnsw_recall_against_exact_on_a_larger_catalogue():
    settings = HierTCNSettings.from_mapping(dict(SMALL, embedding_size=32, tcn_channels=[32],
                                                 dilations=[1]))
    torch.manual_seed(0)
    core = HierTCNCore(settings, 5_000)
    model = ServedModel(core, "big", "time_gap", ["[PAD]"] + [str(n) for n in range(1, 5_000)],
                        ["[PAD]"])
    exact, hnsw = ExactRetrieval(model), FaissRetrieval(model)
    found = total = 0
    for query in queries(model, count=50):
        truth = set(exact.top_k(query, 10)[0])
        found += len(truth & set(hnsw.top_k(query, 10)[0]))
        total += 10
    assert found / total >= 0.9


def test_streaming_with_faiss_recommends_like_exact():
    model = served_model()
    exact = StreamingHierTCN(model)
    approximate = StreamingHierTCN(model, retrieval=FaissRetrieval(model, index="Flat"))
    for n, item in enumerate([3, 4, 5, 9]):
        exact.observe("u", f"i{item}", 1_000_000.0 + n)
        approximate.observe("u", f"i{item}", 1_000_000.0 + n)
    assert ([i for i, _ in approximate.recommend("u", k=8, exclude_seen=True)]
            == [i for i, _ in exact.recommend("u", k=8, exclude_seen=True)])


def test_a_flat_faiss_index_with_offsets_returns_the_exact_items():
    """Offsets that lift items from the bottom into the top and push top items out: the index
    asked for more results plus the offset items scored exactly gives exact's ranking."""
    model = served_model()
    exact, flat = ExactRetrieval(model), FaissRetrieval(model, index="Flat")
    for query in queries(model):
        order = exact.top_k(query, model.core.n_items)[0]
        offsets = (torch.tensor(order[-3:] + order[:2]),
                   torch.tensor([50.0, 40.0, 30.0, -50.0, -0.01]))
        expected = exact.top_k(query, 10, offsets=offsets)
        assert expected[0][:3] == order[-3:] and order[0] not in expected[0]
        got = flat.top_k(query, 10, offsets=offsets)
        assert got[0] == expected[0]
        assert torch.allclose(torch.tensor(got[1]), torch.tensor(expected[1]), atol=1e-4)
        excluded = [order[-1], order[2]]
        assert (flat.top_k(query, 10, excluded, offsets)[0]
                == exact.top_k(query, 10, excluded, offsets)[0])
