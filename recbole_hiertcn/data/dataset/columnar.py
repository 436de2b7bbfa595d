"""RecBole's dataset loading with a columnar reader: same fields, same ids, O(N) and fast.

:class:`ColumnarLoadMixin` replaces the steps of RecBole 1.2.1's ``Dataset`` that touch token
values before they become ids:

* ``_load_feat`` reads the file with :mod:`recbole_hiertcn.data.atomic_file`; token fields
  arrive as ``int32`` codes (-1: missing) into one dictionary per field, shared by every file
  that has the field (``.inter`` and ``.user`` codes of one user are equal), so filters compare
  codes exactly as RecBole compares the strings;
* the missing-id, value and interaction-count filters work on those codes (vectorised;
  RecBole's k-core loop counts with ``Counter``);
* ``_remap`` gives every token the id RecBole's ``pd.factorize`` of the strings gives it - in
  order of first appearance over the same concatenation - because a code stands for exactly one
  token. ``field2id_token`` is RecBole's array; ``field2token_id`` a mapping built on first use.

Everything between and after (duplicates, ``filter_inter_by_user_or_item``, NaN filling,
normalisation, discretisation, conversion to ``Interaction``) is RecBole's own code.
"""

import time
from collections import Counter
from collections.abc import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from recbole.data.dataset import Dataset
from recbole.utils import FeatureSource, FeatureType

from recbole_hiertcn.data.atomic_file import AtomicFormat, read_atomic_file, read_header


class TokenIds(Mapping):
    """``field2token_id[field]``: token -> id, from RecBole's ``field2id_token`` array. The
    dictionary is built on first use (millions of session ids need it rarely, and it would
    cost hundreds of MB)."""

    def __init__(self, id_token):
        self._id_token = id_token
        self._ids = None

    def _lookup(self):
        if self._ids is None:
            self._ids = {token: index for index, token in enumerate(self._id_token)}
        return self._ids

    def __getitem__(self, token):
        return self._lookup()[token]

    def __iter__(self):
        return iter(self._lookup())

    def __len__(self):
        return len(self._id_token)

    def __contains__(self, token):
        return token in self._lookup()

    def __setitem__(self, token, index):  # RecBole's KG datasets add reverse relations
        self._lookup()[token] = index

    def __getstate__(self):
        return {"_id_token": self._id_token, "_ids": None}

    def __repr__(self):
        return f"TokenIds({len(self)} tokens)"


class ColumnarLoadMixin:
    """Columnar loading for a RecBole ``Dataset`` subclass; see the module docstring."""

    def _get_preset(self):
        super()._get_preset()
        self._token_dictionaries = {}  # field -> pa.StringArray: code -> token

    # ------------------------------------------------------------------ reading
    def _load_feat(self, filepath, source):
        load_col, unload_col = self._get_load_and_unload_col(source)
        if load_col == set():
            return None
        fmt = AtomicFormat.from_config(self.config)
        header = read_header(filepath, fmt)
        wanted = [f for f in header
                  if (load_col is None or f.field in load_col)
                  and (unload_col is None or f.field not in unload_col)]
        for spec in wanted:
            self._set_loaded_field_property(spec.field, spec.ftype, source)
        if not wanted:
            self.logger.warning(f"No columns has been loaded from [{source}]")
            return None
        started = time.perf_counter()
        frame = {}
        for column in read_atomic_file(filepath, fmt, header, wanted):
            values = column.values
            if column.is_token_like:
                values = self._codes_of_field(column.field, values, column.tokens)
            if column.is_sequence:
                values = self._sequence_rows(column.field, values, column.lengths)
            frame[column.field] = values
        frame = pd.DataFrame(frame)
        self.logger.info(f"Read [{filepath}]: {len(frame):,} rows, {len(frame.columns)} fields "
                         f"in {time.perf_counter() - started:.1f} s")
        return frame

    def _set_loaded_field_property(self, field, ftype, source):
        """RecBole's bookkeeping for a loaded column (link files leave it to the KG dataset)."""
        if isinstance(source, FeatureSource) or source != "link":
            self.field2source[field] = source
            self.field2type[field] = ftype
            if not ftype.value.endswith("seq"):
                self.field2seqlen[field] = 1
            if "float" in ftype.value:
                self.field2bucketnum[field] = 2

    def _codes_of_field(self, field, codes, tokens):
        """Codes of one file's column as codes into the field's shared dictionary, which
        grows by the tokens it has not seen (in this file's order)."""
        known = self._token_dictionaries.get(field)
        if known is None:
            self._token_dictionaries[field] = tokens
            return codes
        position = pc.index_in(tokens, value_set=known)
        unseen = tokens.filter(pc.is_null(position))
        if len(unseen):
            known = pa.concat_arrays([known, unseen])
            self._token_dictionaries[field] = known
            position = pc.index_in(tokens, value_set=known)
        # index -1 (a missing value) reads the appended -1
        translate = np.append(position.to_numpy(zero_copy_only=False), -1).astype(np.int32)
        return translate[codes]

    def _sequence_rows(self, field, values, lengths):
        """One array per row, truncated to ``seq_len[field]`` as RecBole does."""
        rows = np.empty(len(lengths), dtype=object)
        for index, row in enumerate(np.split(values, np.cumsum(lengths)[:-1])
                                    if len(lengths) else []):
            rows[index] = row
        max_seq_len = int(lengths.max()) if len(lengths) else 0
        seq_len = self.config["seq_len"]
        if seq_len and field in seq_len:
            limit = seq_len[field]
            for index in np.flatnonzero(lengths > limit):
                rows[index] = rows[index][:limit]
            self.field2seqlen[field] = min(limit, max_seq_len)
        else:
            self.field2seqlen[field] = max_seq_len
        return rows

    # ------------------------------------------------------------------ filters on codes
    def _filter_nan_user_or_item(self):
        for field, name in zip([self.uid_field, self.iid_field], ["user", "item"]):
            feat = getattr(self, name + "_feat")
            if feat is not None:
                missing = feat.index[feat[field].to_numpy() < 0]
                if len(missing):
                    self.logger.warning(f"In {name}_feat, line {list(missing + 2)}, {field} do "
                                        "not exist, so they will be removed.")
                    feat.drop(missing, inplace=True)
            if field is not None:
                missing = self.inter_feat.index[self.inter_feat[field].to_numpy() < 0]
                if len(missing):
                    self.logger.warning(f"In inter_feat, line {list(missing + 2)}, {field} do "
                                        "not exist, so they will be removed.")
                    self.inter_feat.drop(missing, inplace=True)

    def _filter_inter_by_user_or_item(self):
        """RecBole's filter, without copying the interactions when it removes nothing."""
        if self.config["filter_inter_by_user_or_item"] is not True:
            return
        keep = np.ones(len(self.inter_feat), dtype=bool)
        for field, feat in ((self.uid_field, self.user_feat), (self.iid_field, self.item_feat)):
            if feat is not None:
                keep &= np.isin(self.inter_feat[field].to_numpy(), feat[field].to_numpy())
        if not keep.all():
            self.inter_feat.drop(self.inter_feat.index[~keep], inplace=True)

    def _filter_by_field_value(self):
        intervals = self.config["val_interval"] or {}
        for field, interval in intervals.items():
            if field not in self.field2type:
                raise ValueError(f"Field [{field}] not defined in dataset.")
            ftype = self.field2type[field]
            if ftype in (FeatureType.FLOAT, FeatureType.FLOAT_SEQ):
                bounds = self._parse_intervals_str(interval)
                for feat in self.field2feats(field):
                    inside = self._within_intervals(feat[field].values, bounds)
                    feat.drop(feat.index[~inside], inplace=True)
            elif ftype == FeatureType.TOKEN:
                # RecBole keeps rows whose token string is in the list; a non-string entry
                # matches no token (as in RecBole, where every token is a string)
                wanted = pa.array([v for v in interval if isinstance(v, str)], pa.string())
                allowed = pc.index_in(wanted, value_set=self._token_dictionaries[field])
                allowed = allowed.drop_null().to_numpy()
                for feat in self.field2feats(field):
                    keep = np.isin(feat[field].to_numpy(), allowed)
                    feat.drop(feat.index[~keep], inplace=True)
            else:
                raise ValueError(f"config key `val_interval`: [{field}] is a token_seq field; "
                                 "filter a token or float field")

    def _filter_by_inter_num(self):
        """RecBole's k-core loop, on code counts: drop users (items) whose count is outside
        the interval, and ``.user`` (``.item``) rows below its lower bound, until stable."""
        if self.uid_field is None or self.iid_field is None:
            return
        users = _InterCount(self, self.uid_field, self.user_feat, "user_inter_num_interval")
        items = _InterCount(self, self.iid_field, self.item_feat, "item_inter_num_interval")
        if users.interval is None and items.interval is None:
            return
        while True:
            banned_users, banned_items = users.banned(), items.banned()
            if not banned_users.any() and not banned_items.any():
                break
            users.drop_from_feat(banned_users)
            items.drop_from_feat(banned_items)
            user_codes = self.inter_feat[self.uid_field].to_numpy()
            item_codes = self.inter_feat[self.iid_field].to_numpy()
            dropped = banned_users[user_codes] | banned_items[item_codes]
            users.forget(user_codes[dropped])
            items.forget(item_codes[dropped])
            self.logger.debug(f"[{int(dropped.sum())}] dropped interactions.")
            self.inter_feat.drop(self.inter_feat.index[dropped], inplace=True)

    # ------------------------------------------------------------------ ids
    def _remap_ID_all(self):
        super()._remap_ID_all()
        self._token_dictionaries = {}  # every token column holds ids now; field2id_token has the text

    def _remap(self, remap_list):
        if len(remap_list) == 0:
            return
        fields = list(dict.fromkeys(field for _, field, _ in remap_list))
        tokens, translate = self._shared_token_space(fields)
        parts, lengths = [], []
        for feat, field, ftype in remap_list:
            if ftype == FeatureType.TOKEN:
                codes = feat[field].to_numpy()
                lengths.append(None)
            else:
                rows = feat[field].to_numpy()
                lengths.append(np.fromiter(map(len, rows), dtype=np.int64, count=len(rows)))
                codes = (np.concatenate(rows) if len(rows) else np.zeros(0)).astype(np.int32)
            parts.append(translate[field][codes] if translate else codes)
        codes = np.concatenate(parts) if len(parts) > 1 else parts[0]
        # ids in order of first appearance over the concatenation, as RecBole's factorize of the
        # token strings numbers them (a code stands for exactly one token); 0 is [PAD]
        missing = codes < 0
        if missing.any():
            first_seen, uniques = pd.factorize(codes[~missing])
            ids = np.zeros(len(codes), dtype=np.int64)
            ids[~missing] = first_seen + 1
        else:
            ids, uniques = pd.factorize(codes)
            ids += 1
        id_token = np.concatenate([np.array(["[PAD]"], dtype=object),
                                   tokens.take(pa.array(uniques)).to_numpy(zero_copy_only=False)]
                                  ).astype(str)
        token_ids = TokenIds(id_token)
        split = np.cumsum([len(p) for p in parts])[:-1]
        for (feat, field, ftype), new_ids, row_lengths in zip(remap_list, np.split(ids, split),
                                                              lengths):
            if field not in self.field2id_token:
                self.field2id_token[field] = id_token
                self.field2token_id[field] = token_ids
            if ftype == FeatureType.TOKEN:
                feat[field] = new_ids
            else:
                feat[field] = np.split(new_ids, np.cumsum(row_lengths)[:-1])

    def _shared_token_space(self, fields):
        """The token dictionary of fields remapped together, and per field the translation of
        its codes into it (None for one field: its codes are already the space's)."""
        if len(fields) == 1:
            return self._token_dictionaries[fields[0]], None
        dictionaries = [self._token_dictionaries[field] for field in fields]
        union = pc.dictionary_encode(pa.concat_arrays(dictionaries))
        indices = union.indices.to_numpy().astype(np.int32)
        starts = np.cumsum([0] + [len(d) for d in dictionaries])
        translate = {field: np.append(indices[starts[i]:starts[i + 1]], -1).astype(np.int32)
                     for i, field in enumerate(fields)}
        return union.dictionary, translate

    # ------------------------------------------------------------------ counts
    def counter(self, field):
        """RecBole's ``Counter`` of a token field of the interactions - same keys, counts and
        key order (first appearance) - counted without a Python loop over rows."""
        if field not in self.inter_feat:
            raise ValueError(f"Field [{field}] is not defined in ``inter_feat``.")
        if self.field2type[field] != FeatureType.TOKEN:
            raise ValueError(f"Field [{field}] is not a token field.")
        first_seen, uniques = pd.factorize(self._inter_values(field))
        counts = np.bincount(first_seen, minlength=len(uniques))
        return Counter(dict(zip(uniques, counts.tolist())))

    def _inter_values(self, field):
        """A field of the interactions as numpy, before (DataFrame) or after (Interaction)
        the conversion to tensors."""
        values = self.inter_feat[field]
        return values.values if isinstance(values, pd.Series) else values.numpy()

    def _mean_count(self, field):
        counts = np.bincount(pd.factorize(self._inter_values(field))[0])
        return np.mean(counts) if len(counts) else np.mean([])

    @property
    def avg_actions_of_users(self):
        return self._mean_count(self.uid_field)

    @property
    def avg_actions_of_items(self):
        return self._mean_count(self.iid_field)


class _InterCount:
    """Interactions per code of the user (or item) field, for the k-core loop."""

    def __init__(self, dataset, field, feat, interval_key):
        self.dataset, self.field, self.feat = dataset, field, feat
        self.interval = dataset._parse_intervals_str(dataset.config[interval_key])
        size = len(dataset._token_dictionaries[field]) + 1  # spare slot: code -1
        codes = dataset.inter_feat[field].to_numpy()
        self.counts = (np.bincount(codes, minlength=size) if self.interval
                       else np.zeros(size, dtype=np.int64))

    def banned(self):
        """Codes to drop now: counted ones outside the interval, and ``.user``/``.item`` rows
        whose count is below the first interval's lower end (RecBole's rule)."""
        banned = np.zeros(len(self.counts), dtype=bool)
        if not self.interval:
            return banned
        counted = self.counts > 0
        banned[counted] = ~np.asarray(
            self.dataset._within_intervals(self.counts[counted], self.interval), dtype=bool)
        if self.feat is not None:
            codes = self.feat[self.field].to_numpy()
            banned[codes[self.counts[codes] < self.interval[0][1]]] = True
        return banned

    def drop_from_feat(self, banned):
        if self.feat is not None:
            rows = banned[self.feat[self.field].to_numpy()]
            self.feat.drop(self.feat.index[rows], inplace=True)

    def forget(self, codes):
        if self.interval:
            self.counts -= np.bincount(codes, minlength=len(self.counts))


class ColumnarDataset(ColumnarLoadMixin, Dataset):
    """RecBole's ``Dataset`` (general and context-aware models) with columnar loading."""
