"""Reading an atomic ``.impression`` file into integer arrays, columnar, in DuckDB.

The file can hold millions of rows (every item shown to every user); its tokens are joined
against the dataset's token tables inside DuckDB and come back as ``int64`` arrays, never as a
Python object per row.
"""

import re

import duckdb
import numpy as np
import pandas as pd


def read_impression_ids(path, separator, item_field, item_tokens, view_field, view_tokens):
    """Item and feed-view ids of the rows of an atomic ``.impression`` file, by feed view id,
    file order within one; rows whose item or view token has no id are left out.

    ``*_tokens`` are RecBole's ``field2id_token`` arrays (the id is the position). Columnar, in
    DuckDB: the tokens are joined against those tables, never turned into Python objects per
    row. Raises ``ValueError`` naming the file (and line) for a missing column or a bad row.
    """
    names = _impression_header(path, separator)
    item_column, view_column = _columns_of(path, names, (item_field, view_field))
    con = duckdb.connect()  # in memory, private to this read
    try:
        con.register("item_ids", _token_table(item_tokens))
        con.register("view_ids", _token_table(view_tokens))
        con.execute(
            f"CREATE TABLE shown AS SELECT {_sql_ident(item_column)} AS item, "
            f"{_sql_ident(view_column)} AS view FROM {_impression_reader(path, separator, names)}")
        found = con.execute(
            "SELECT item_ids.id AS item, view_ids.id AS view FROM shown "
            "JOIN item_ids ON shown.item = item_ids.token "
            "JOIN view_ids ON shown.view = view_ids.token "
            "ORDER BY view_ids.id, shown.rowid").fetchnumpy()  # rowid: file order
    except duckdb.Error as err:
        raise _impression_read_error(path, err) from None
    finally:
        con.close()
    return (np.ascontiguousarray(found["item"], dtype=np.int64),
            np.ascontiguousarray(found["view"], dtype=np.int64))


def _impression_header(path, separator):
    """Column names (``field:type``) of the header line."""
    # utf-8-sig: a byte-order mark is not part of the first name (DuckDB skips it too)
    with open(path, encoding="utf-8-sig", newline="") as handle:
        header = handle.readline().rstrip("\r\n")
    return header.split(separator) if header else []


def _columns_of(path, names, fields):
    """The header column of each of ``fields``; a ``ValueError`` if one is missing."""
    columns = {name.split(":")[0]: name for name in names}
    if any(field not in columns for field in fields):
        raise ValueError(f"{path}: line 1: needs the columns {' and '.join(fields)}; the "
                         f"header has {', '.join(names) or 'nothing'}")
    return [columns[field] for field in fields]


def _impression_reader(path, separator, names):
    """``read_csv`` with every column as text and no guessing: RecBole's quoting (a field may
    be in double quotes), and a row with too few or too many fields is an error."""
    spec = ", ".join(f"{_sql_string(name)}: 'VARCHAR'" for name in names)
    return (f"read_csv({_sql_string(path)}, delim = {_sql_string(separator)}, header = true, "
            f"auto_detect = false, quote = '\"', escape = '\"', columns = {{{spec}}})")


def _token_table(tokens):
    """``token -> id`` of a ``field2id_token`` array, for DuckDB to join against."""
    return pd.DataFrame({"token": np.asarray(tokens, dtype=object),
                         "id": np.arange(len(tokens), dtype=np.int64)})


def _impression_read_error(path, err):
    text = str(err)
    line = re.search(r"CSV Error on Line: (\d+)", text)
    fields = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", text)
    where = f"{path}: line {line.group(1)}" if line else str(path)
    if fields:
        return ValueError(f"{where}: expected {fields.group(1)} fields, found {fields.group(2)}")
    first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    return ValueError(f"{where}: cannot read the impressions ({first})")


def _sql_string(text):
    return "'" + str(text).replace("'", "''") + "'"


def _sql_ident(name):
    return '"' + str(name).replace('"', '""') + '"'
