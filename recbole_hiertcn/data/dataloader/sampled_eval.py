"""RecBole's sampled evaluation (``mode: uni100`` / ``pop100``) over the session dataset.

RecBole's ``NegSampleEvalDataLoader`` groups the rows of each user by walking
``dataset.inter_feat``. A view of :class:`~recbole_hiertcn.data.dataset.SessionDataset` keeps
the whole log there and builds its rows from target positions, so the walk would group the
log, not the rows. Here the groups come from the rows' own users (``row_users``); any other
dataset is grouped as RecBole groups it.
"""

import numpy as np
from recbole.data.dataloader import NegSampleEvalDataLoader


class SampledEvalDataLoader(NegSampleEvalDataLoader):
    """``NegSampleEvalDataLoader`` that reads a session-dataset view's rows by user."""

    def _init_batch_size_and_step(self):
        row_users = getattr(self._dataset, "row_users", lambda: None)()
        if row_users is not None and hasattr(self, "uid2index"):
            self._group_rows_by_user(row_users.numpy())
        super()._init_batch_size_and_step()

    def _group_rows_by_user(self, users):
        """``uid_list``, ``uid2index`` (a slice of row numbers per user), ``uid2items_num`` and
        ``sample_size`` of rows already in user order."""
        if users.size and np.any(np.diff(users) < 0):
            raise ValueError("sampled evaluation needs the rows in user order")
        starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if users.size else users
        ends = np.r_[starts[1:], users.size]
        self.uid_list = users[starts]
        self.uid2index = np.array([None] * self._dataset.user_num)
        self.uid2items_num = np.zeros(self._dataset.user_num, dtype=np.int64)
        for uid, start, end in zip(self.uid_list, starts, ends):
            self.uid2index[uid] = slice(int(start), int(end))
            self.uid2items_num[uid] = end - start
        self.sample_size = len(self.uid_list)
