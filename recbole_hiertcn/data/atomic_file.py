"""Reading RecBole atomic files (``.inter``, ``.user``, ``.item``, ...) column by column, in Arrow.

RecBole 1.2.1 reads atomic files with pandas' Python parser: one Python string per field of every
row, 4.6 GB and over a minute for 8.5 million interactions. This reader parses the file with
Arrow's multi-threaded CSV reader and hands back numeric columns:

* ``float`` fields as ``float64`` (NaN where empty), as RecBole's reader gives them;
* ``token`` fields as ``int32`` codes into a dictionary of the column's distinct tokens (``-1``
  where empty) - RecBole's strings, without a Python object per row;
* ``token_seq`` and ``float_seq`` fields as one array per row (codes, or ``float64``), split at
  ``seq_separator`` with empty pieces left out, as RecBole splits them.

What counts as empty is pandas' list (``''``, ``NA``, ``null``, ``nan``, ...), so a row RecBole
reads as missing is missing here too. Only the file format lives here; what the fields mean to
a dataset is :mod:`recbole_hiertcn.data.dataset.columnar`'s business.
"""

import csv
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from pandas._libs.parsers import STR_NA_VALUES
from recbole.utils import FeatureType

# What pandas' read_csv (and so RecBole) reads as a missing value.
NULL_VALUES = sorted(STR_NA_VALUES)
_TOKEN_CODES = pa.dictionary(pa.int32(), pa.string())


@dataclass(frozen=True)
class AtomicFormat:
    """How an atomic file is written: RecBole's ``field_separator``, ``seq_separator`` and
    ``encoding``."""

    separator: str = "\t"
    seq_separator: str = " "
    encoding: str = "utf-8"

    @classmethod
    def from_config(cls, config):
        fmt = cls(config["field_separator"] or "\t", config["seq_separator"] or " ",
                  config["encoding"] or "utf-8")
        if len(fmt.separator) != 1:
            raise ValueError(
                f"config key `field_separator`: the columnar reader needs one character, got "
                f"{fmt.separator!r} (RecBole's own reader takes more: `use_session_dataset: "
                "False` for sequential models, RecBole's create_dataset for others)")
        if not fmt.seq_separator:
            raise ValueError("config key `seq_separator` must not be empty")
        return fmt


@dataclass(frozen=True)
class HeaderField:
    """One ``name:type`` column of an atomic file's header."""

    column: str  # as written, e.g. "item_id:token"
    field: str
    ftype: FeatureType


@dataclass
class AtomicColumn:
    """One field of an atomic file, read. ``values``: ``float64`` (float fields) or ``int32``
    codes into ``tokens``, -1 for missing (token fields); for seq fields the rows' values one
    after another, ``lengths`` giving how many each row has."""

    field: str
    ftype: FeatureType
    values: np.ndarray
    tokens: pa.Array = None
    lengths: np.ndarray = None

    @property
    def is_token_like(self):
        return self.ftype in (FeatureType.TOKEN, FeatureType.TOKEN_SEQ)

    @property
    def is_sequence(self):
        return self.lengths is not None


def read_header(path, fmt):
    """The header's fields, in file order; a ``ValueError`` naming the file for a bad one."""
    encoding = "utf-8-sig" if fmt.encoding.lower().replace("_", "-") in ("utf-8", "utf8") \
        else fmt.encoding  # a byte-order mark is not part of the first name
    with open(path, encoding=encoding, newline="") as handle:
        line = handle.readline().rstrip("\r\n")
    fields = []
    for column in line.split(fmt.separator) if line else []:
        name, colon, kind = column.partition(":")
        try:
            if not colon or ":" in kind:
                raise ValueError
            ftype = FeatureType(kind)
        except ValueError:
            kinds = ", ".join(t.value for t in FeatureType)
            raise ValueError(f"{path}: line 1: column {column!r} is not name:type with type one "
                             f"of {kinds}") from None
        fields.append(HeaderField(column, name, ftype))
    if not fields:
        raise ValueError(f"{path}: line 1: no header")
    return fields


def read_atomic_file(path, fmt, header, wanted):
    """The ``wanted`` header fields of the file at ``path`` as :class:`AtomicColumn`, in header
    order. A ``ValueError`` names the file, line and column of a row that cannot be read."""
    names = [f.column for f in header]
    types = {f.column: _arrow_type(f.ftype) for f in wanted}
    table = _read_table(path, fmt, names, types)
    columns = []
    for spec in wanted:
        data = table.column(spec.column)
        if spec.ftype == FeatureType.FLOAT and data.type != pa.float64():
            values = _python_floats(path, fmt, spec, data)
            columns.append(AtomicColumn(spec.field, spec.ftype, values))
        elif spec.ftype == FeatureType.FLOAT:
            columns.append(AtomicColumn(spec.field, spec.ftype,
                                        data.to_numpy().astype(np.float64, copy=False)))
        elif spec.ftype == FeatureType.TOKEN:
            codes, tokens = _token_codes(data)
            columns.append(AtomicColumn(spec.field, spec.ftype, codes, tokens))
        else:
            columns.append(_sequence_column(path, fmt, spec, data))
        table = table.drop_columns([spec.column])  # free each column once converted
    del table
    # Arrow's allocator keeps freed pages for reuse; the rest of loading allocates with numpy
    pa.default_memory_pool().release_unused()
    return columns


def _arrow_type(ftype):
    if ftype == FeatureType.TOKEN:
        return _TOKEN_CODES
    if ftype == FeatureType.FLOAT:
        return pa.float64()
    return pa.string()


def _read_table(path, fmt, names, types):
    # Arrow's default 1 MB blocks: larger ones hold more of the file as text at once.
    read = pa_csv.ReadOptions(column_names=names, skip_rows=1, encoding=fmt.encoding)
    parse = pa_csv.ParseOptions(delimiter=fmt.separator, quote_char='"', double_quote=True,
                                ignore_empty_lines=True)

    def convert(column_types):
        return pa_csv.ConvertOptions(column_types=column_types, include_columns=list(column_types),
                                     null_values=NULL_VALUES, strings_can_be_null=True,
                                     quoted_strings_can_be_null=True)
    try:
        return pa_csv.read_csv(path, read, parse, convert(types))
    except pa.ArrowInvalid as err:
        if "conversion error to double" not in str(err):
            raise _parse_error(path, fmt, len(names), err) from None
    # A float Arrow does not parse ("1_000", " 12 "): read float columns as text and convert
    # them as Python (and so pandas and RecBole) does.
    as_text = {name: (pa.string() if kind == pa.float64() else kind)
               for name, kind in types.items()}
    try:
        return pa_csv.read_csv(path, read, parse, convert(as_text))
    except pa.ArrowInvalid as err:
        raise _parse_error(path, fmt, len(names), err) from None


def _parse_error(path, fmt, width, err):
    """A row with the wrong number of fields, found by line; else Arrow's message."""
    with open(path, encoding=fmt.encoding, newline="") as handle:
        rows = csv.reader(handle, delimiter=fmt.separator, quotechar='"')
        for number, row in enumerate(rows, start=1):
            if row and len(row) != width:
                return ValueError(f"{path}: line {number}: expected {width} fields "
                                  f"(the header's), found {len(row)}")
    first = str(err).strip().splitlines()[0]
    return ValueError(f"{path}: cannot read the file ({first})")


def _python_floats(path, fmt, spec, data, rows=None):
    """``float64`` of text values as Python's ``float`` (and so RecBole) reads them; missing
    stays NaN. ``rows``: the data row of each value (seq fields), for the error's line."""
    text = np.asarray(data.to_numpy(zero_copy_only=False), dtype=object)
    values = np.full(len(text), np.nan)
    for index in np.flatnonzero(text != None):  # noqa: E711 - elementwise test for missing
        try:
            values[index] = float(text[index])
        except ValueError:
            row = int(index if rows is None else rows[index])
            raise ValueError(f"{path}: line {_line_of_row(path, fmt, row)}: column "
                             f"{spec.column}: {text[index]!r} is not a number") from None
    return values


def _line_of_row(path, fmt, row):
    """File line of data row ``row`` (0-based, blank lines skipped as the reader does)."""
    with open(path, encoding=fmt.encoding, newline="") as handle:
        reader = csv.reader(handle, delimiter=fmt.separator, quotechar='"')
        next(reader, None)
        seen = -1
        for fields in reader:
            if fields:
                seen += 1
            if seen == row:
                return reader.line_num
    return "?"


def _token_codes(data):
    """``int32`` codes (-1: missing) and the dictionary of a dictionary-encoded column."""
    if data.num_chunks == 0:
        return np.zeros(0, dtype=np.int32), pa.array([], pa.string())
    data = pa.table({"c": data}).unify_dictionaries().column("c")  # one dictionary, all chunks
    tokens = data.chunk(0).dictionary
    codes = np.concatenate([chunk.indices.fill_null(-1).to_numpy() for chunk in data.chunks])
    return codes.astype(np.int32, copy=False), tokens


def _sequence_column(path, fmt, spec, data):
    """A ``token_seq`` / ``float_seq`` column, each row split as RecBole splits it:
    ``filter(None, text.split(seq_separator))``."""
    text = pc.fill_null(data.combine_chunks() if data.num_chunks else pa.array([], pa.string()),
                        "")
    pieces = pc.split_pattern(text, pattern=fmt.seq_separator)
    flat = pc.list_flatten(pieces)
    owner = pc.list_parent_indices(pieces).to_numpy()
    keep = pc.not_equal(flat, "").to_numpy(zero_copy_only=False)
    flat, owner = flat.filter(pa.array(keep)), owner[keep]
    lengths = np.bincount(owner, minlength=len(text))
    tokens = None
    if spec.ftype == FeatureType.TOKEN_SEQ:
        encoded = pc.dictionary_encode(flat)
        values, tokens = encoded.indices.to_numpy().astype(np.int32), encoded.dictionary
    else:
        try:
            # a writable copy: torch warns on (and may share) Arrow's read-only buffers
            values = np.array(pc.cast(flat, pa.float64()).to_numpy(), dtype=np.float64)
        except pa.ArrowInvalid:
            values = _python_floats(path, fmt, spec, flat, owner)  # rare
    return AtomicColumn(spec.field, spec.ftype, values, tokens, lengths)
