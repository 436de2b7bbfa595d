"""Top-k items for a user embedding: exact by default, a FAISS index for large catalogues.

Both score an item as ``<query, item vector> + bias`` with the vectors of
:meth:`~recbole_hiertcn.core.network.HierTCNCore.retrieval_items` (the untied head's
rows and bias; the item embeddings for tied scoring; the raw pretrained vectors for the
embedding output). Padding (id 0) is never returned.
"""

import numpy as np
import torch


def _item_matrix(model):
    with torch.no_grad():
        vectors, bias = model.core.retrieval_items()
        vectors = vectors.detach().float().cpu()
        bias = None if bias is None else bias.detach().float().cpu()
    return vectors, bias


class ExactRetrieval:
    """Every item scored, then ``torch.topk``."""

    name = "exact"

    def __init__(self, model):
        self.vectors, self.bias = _item_matrix(model)

    def scores(self, query):
        scores = self.vectors @ query.float()
        return scores if self.bias is None else scores + self.bias

    def top_k(self, query, k, exclude=None, offsets=None):
        """``(ids, scores)`` of the ``k`` best items (fewer if the catalogue is smaller);
        ``offsets``: ``(item ids, values)`` added to those items' scores first."""
        scores = self.scores(query)
        if offsets is not None:
            scores[offsets[0]] += offsets[1]
        scores[0] = float("-inf")
        if exclude is not None and len(exclude):
            scores[torch.as_tensor(exclude, dtype=torch.long)] = float("-inf")
        allowed = int(torch.isfinite(scores).sum())
        values, ids = torch.topk(scores, min(k, allowed))
        return ids.tolist(), values.tolist()


class FaissRetrieval:
    """An inner-product FAISS index over the items (``index`` is a ``faiss.index_factory``
    string; HNSW by default). The bias, when the head has one, is one more dimension: items
    ``[v ; b]``, queries ``[q ; 1]``."""

    name = "faiss"

    def __init__(self, model, index="HNSW32", ef_search=128):
        try:
            import faiss
        except ImportError:
            raise ImportError("FAISS retrieval needs faiss-cpu: pip install faiss-cpu") from None
        vectors, bias = _item_matrix(model)
        self.with_bias = bias is not None
        if self.with_bias:
            vectors = torch.cat([vectors, bias.unsqueeze(1)], dim=1)
        self.vectors = vectors  # exact scores of the items that get an offset
        matrix = np.ascontiguousarray(vectors[1:].numpy(), dtype=np.float32)  # no padding row
        self.index = faiss.index_factory(matrix.shape[1], index, faiss.METRIC_INNER_PRODUCT)
        if not self.index.is_trained:
            self.index.train(matrix)
        self.index.add(matrix)
        if hasattr(self.index, "hnsw"):
            self.index.hnsw.efSearch = ef_search
        self.n_items = matrix.shape[0]

    def top_k(self, query, k, exclude=None, offsets=None):
        """As :meth:`ExactRetrieval.top_k`. Items with an offset are scored exactly and
        merged with the index's results; asking the index for as many more results as there
        are such items keeps every item without one that belongs in the top ``k``."""
        query = query.detach().float().cpu()
        if self.with_bias:
            query = torch.cat([query, query.new_ones(1)])
        excluded = set() if exclude is None else {int(i) for i in exclude}
        boosted = {} if offsets is None else dict(zip(offsets[0].tolist(), offsets[1].tolist()))
        boosted = {item: value for item, value in boosted.items()
                   if item > 0 and item not in excluded}
        wanted = min(k + len(excluded) + len(boosted), self.n_items)
        scores, rows = self.index.search(np.ascontiguousarray(query.numpy()[None]), wanted)
        found = {}
        for row, score in zip(rows[0].tolist(), scores[0].tolist()):
            item = row + 1  # row 0 of the index is item 1 (padding is not in it)
            if row >= 0 and item not in excluded and item not in boosted:  # row < 0: no result
                found[item] = score
        if boosted:
            items = torch.tensor(list(boosted))
            exact = (self.vectors[items] @ query).tolist()
            found.update({item: score + boosted[item] for item, score in zip(boosted, exact)})
        best = sorted(found.items(), key=lambda pair: -pair[1])[:k]
        return [item for item, _ in best], [score for _, score in best]
