"""Pinterest-style engagement logs and pretrained pin vectors -> RecBole atomic files.

    python -m dataset_converters.pinterest --input 'logs/*.parquet' --item-embeddings pins.parquet --output-dir dataset

Input: one or more files, folders or globs of shards in CSV, TSV, Parquet or JSON lines (gzip
accepted), mixed formats allowed. Columns ``user_id, pin_id, timestamp, action`` and optionally
``board_id, surface, feedview_id`` (each can be renamed with ``--user-col`` etc.). Timestamps are
seconds, milliseconds or microseconds since the epoch (detected per file from their median, or
``--time-unit``) or ISO-8601 text; the output is in seconds. A time that is negative, NaN,
infinite or in the year 3000 or later (after that conversion) stops the conversion with its file
and line, or with ``--bad-timestamps drop`` such rows are dropped and counted. CSV/TSV shards
and CSV vector tables may start with a UTF-8 byte-order mark (spreadsheet exports).

Actions are routed: engagements (default ``closeup, click, repin, save``) become interactions
in ``<name>.inter`` (``user_id:token item_id:token timestamp:float session_id:token action:token``
plus ``board_id``, ``surface``, ``feedview_id`` where the input has them); impressions (default
``impression``) go to ``<name>.impression`` (user, item, time, feed view) as shown-but-not-engaged
candidates - an impression of a pin the user engaged with in the same feed view is left out;
``hide`` is dropped. Any other action is an error unless ``--unknown-actions drop``.

``--item-embeddings`` (Parquet with an id and a list column, ``.npy`` plus ``--embedding-ids``,
or CSV) becomes ``<name>.item`` with ``item_id:token item_emb:float_seq``. Every engaged pin
needs a vector of the common dimension; otherwise it is an error, or with
``--missing-embeddings drop`` the pin is dropped and counted. Impressions of pins without a vector
are dropped (they could not be scored).

An existing ``<output-dir>/<name>/`` is replaced (all at once, only by a complete new one) when
it is empty or holds only a previous conversion's files, as listed in its
``.recbole-hiertcn-convert.json``; a folder with anything else is refused, naming the
unexpected files, unless ``--overwrite`` is given (which deletes them). ``--name`` is a single
folder name.
"""

import argparse
import glob
import os
import sys

import duckdb
import numpy as np
import pandas as pd

from dataset_converters.engine import (
    add_engine_options,
    add_output_options,
    command_line,
    BAD_TIMESTAMPS,
    ConversionError,
    StepRunner,
    check_bad_timestamps_option,
    conversion,
    explain_read_error,
    find_impossible_times,
    impossible_time_error,
    range_label,
    require_file,
    sql_ident,
    sql_path,
)
from dataset_converters.output import StatsTable

REQUIRED = ("user", "pin", "time", "action")
OPTIONAL = ("board", "surface", "feedview")
DEFAULT_COLUMNS = {"user": "user_id", "pin": "pin_id", "time": "timestamp", "action": "action",
                   "board": "board_id", "surface": "surface", "feedview": "feedview_id"}
OUTPUT_FIELDS = {"board": "board_id", "surface": "surface", "feedview": "feedview_id"}
ENGAGEMENTS = ("closeup", "click", "repin", "save")
IMPRESSIONS = ("impression",)
DROPPED = ("hide",)
TIME_UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6}
FORMATS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet",
           ".json": "json", ".jsonl": "json", ".ndjson": "json"}
HOW_TO_GET_DATA = (
    "Pinterest engagement data is private and not distributed with this project. With your own "
    "logs and pin vectors, convert them with:\n    python -m dataset_converters.pinterest "
    "--input 'logs/*.parquet' --item-embeddings pins.parquet --output-dir dataset\nTo try the "
    "pipeline without them, generate a synthetic sample in the same format:\n"
    "    python -m dataset_converters.pinterest_sample --output-dir raw/pinterest\n"
    "    python -m dataset_converters.pinterest --input raw/pinterest/logs "
    "--item-embeddings raw/pinterest/pins.parquet --output-dir dataset"
)


# ----------------------------------------------------------------------------- inputs
def expand_inputs(patterns):
    """Files named by paths, folders (every supported file inside) and globs, in sorted order."""
    files = []
    for pattern in patterns:
        if os.path.isdir(pattern):
            found = [os.path.join(root, name) for root, _, names in os.walk(pattern)
                     for name in names if file_format(name, "auto", strict=False)]
            if not found:
                raise ConversionError(f"--input: the folder {pattern} holds no log files "
                                      f"({', '.join(FORMATS)}, optionally .gz)")
        else:
            found = glob.glob(pattern) if glob.has_magic(pattern) else [pattern]
        if not found:
            raise ConversionError(f"--input: nothing matches {pattern!r}")
        files += sorted(found)
    for path in files:
        require_file(path)  # a glob can match a folder
    return files


def file_format(path, forced="auto", strict=True):
    """``csv``, ``tsv``, ``parquet`` or ``json`` from the name (``.gz`` ignored) or ``forced``."""
    if forced != "auto":
        return forced
    name = path[:-3] if path.endswith(".gz") else path
    kind = FORMATS.get(os.path.splitext(name)[1].lower())
    if kind is None and strict:
        raise ConversionError(f"{path}: unknown format; name it .csv, .tsv, .parquet or .jsonl "
                              "(optionally .gz) or pass --format")
    return kind


def reader_sql(path, kind):
    """A DuckDB table function reading one file as it is."""
    quoted = sql_path(path)
    if kind in ("csv", "tsv"):
        delim = "," if kind == "csv" else "\t"
        return (f"read_csv('{quoted}', delim = '{delim}', header = true, all_varchar = true, "
                f"compression = 'auto')")
    if kind == "parquet":
        return f"read_parquet('{quoted}')"
    return f"read_json('{quoted}', format = 'newline_delimited', compression = 'auto')"


def first_line_number(kind):
    """File line of the first record (CSV/TSV have a header; Parquet has rows, not lines)."""
    return 2 if kind in ("csv", "tsv") else 1


class PinterestConversion(StepRunner):
    """Reads shards, routes actions, attaches vectors, splits sessions; one table per step."""

    def __init__(self, con, stats, columns, time_unit="auto", bad_timestamps="error"):
        super().__init__(con, stats)
        self.columns, self.time_unit, self.bad_timestamps = columns, time_unit, bad_timestamps
        self.files, self.present = [], set()
        self.keep.add("events")

    # ------------------------------------------------------------------ reading
    def load(self, files, forced_format="auto"):
        self.con.execute(
            "CREATE TABLE events (user_id VARCHAR, item_id VARCHAR, "
            "timestamp DOUBLE, action VARCHAR, board VARCHAR, surface VARCHAR, "
            "feedview VARCHAR, file INTEGER, line BIGINT)")  # line: in its file (or row)
        for index, path in enumerate(files):
            self._load_file(index, path, file_format(path, forced_format))
        if self.con.execute("SELECT count(*) FROM events").fetchone()[0] == 0:
            raise ConversionError(f"{', '.join(files)}: no rows")
        self.table = "events"
        self.record(f"read {len(files)} file(s)")
        if self.bad_timestamps == "drop":
            self.drop_impossible_times("timestamp")

    def _load_file(self, index, path, kind):
        """One shard into a staging table (file order = rowid), checked, then appended."""
        reader = reader_sql(path, kind)
        separator = "," if kind == "csv" else "\t"
        try:
            names = [row[0] for row in self.con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()]
        except duckdb.Error as err:
            raise explain_read_error(path, err, separator) from None
        missing = [self.columns[key] for key in REQUIRED if self.columns[key] not in names]
        if missing:
            where = f"{path}: line 1" if kind in ("csv", "tsv") else path
            raise ConversionError(f"{where}: missing column(s) {', '.join(missing)}; the file "
                                  f"has {', '.join(names)}")
        selects = []
        for key in REQUIRED + OPTIONAL:
            column = self.columns[key]
            if column in names:
                self.present.update({key} & set(OPTIONAL))
                selects.append(f"CAST({sql_ident(column)} AS VARCHAR) AS {key}")
            else:
                selects.append(f"CAST(NULL AS VARCHAR) AS {key}")
        try:
            self.con.execute(f"CREATE TEMP TABLE shard AS SELECT {', '.join(selects)} FROM {reader}")
        except duckdb.Error as err:
            raise explain_read_error(path, err, separator) from None
        self.files.append((path, kind))
        try:
            self._check_values(index)
            seconds = self._time_expression(index, path)
            first = first_line_number(kind)
            self.con.execute(
                f"INSERT INTO events SELECT user, pin, {seconds}, action, board, surface, "
                f"feedview, {index}, rowid + {first} FROM shard")
        finally:
            self.con.execute("DROP TABLE shard")

    def _where(self, index, line):
        path, kind = self.files[index]
        return f"{path}: line {line}" if kind in ("csv", "tsv") else f"{path}: row {line}"

    def _check_values(self, index):
        first = first_line_number(self.files[index][1])
        for key in REQUIRED:
            row = self.con.execute(
                f"SELECT rowid FROM shard WHERE {key} IS NULL OR trim({key}) = '' "
                "ORDER BY rowid LIMIT 1").fetchone()
            if row:
                raise ConversionError(f"{self._where(index, row[0] + first)}: column "
                                      f"{self.columns[key]} is empty")

    def _time_expression(self, index, path):
        """SQL for seconds since the epoch from the shard's ``time``; refuses unreadable ones."""
        numeric = "TRY_CAST(time AS DOUBLE)"
        iso = "epoch(TRY_CAST(time AS TIMESTAMPTZ))"
        unit = self.time_unit
        if unit == "auto":  # the typical value: a few absurd ones must not set the unit
            typical = self.con.execute(f"SELECT approx_quantile(abs({numeric}), 0.5) FILTER "
                                       f"(WHERE isfinite({numeric})) FROM shard").fetchone()[0]
            unit = _detect_unit(typical, path)
        seconds = iso if unit == "iso" else f"coalesce({numeric} / {TIME_UNITS[unit]!r}, {iso})"
        bad = self.con.execute(f"SELECT rowid, time FROM shard WHERE {seconds} IS NULL "
                               "ORDER BY rowid LIMIT 1").fetchone()
        if bad:
            expected = "ISO-8601" if unit == "iso" else f"a number ({unit}) or ISO-8601"
            line = bad[0] + first_line_number(self.files[index][1])
            raise ConversionError(f"{self._where(index, line)}: column {self.columns['time']}: "
                                  f"{bad[1]!r} is not {expected} time")
        if self.bad_timestamps == "error":
            self._refuse_impossible_times(index, seconds, unit)
        return seconds

    def _refuse_impossible_times(self, index, seconds, unit):
        """Negative, NaN, infinite or year >= 3000 after the unit conversion: an error naming
        the shard's first such line (dropped after loading with ``--bad-timestamps drop``)."""
        count, first, value = find_impossible_times(self.con, "shard", seconds, "rowid", "time")
        if count:
            line = first + first_line_number(self.files[index][1])
            reading = "ISO-8601" if unit == "iso" else f"read as {unit} since the epoch"
            raise impossible_time_error(self._where(index, line), self.columns["time"], value,
                                        count, reading)

    # ------------------------------------------------------------------ routing
    def route(self, engagements, impressions, dropped, unknown="error"):
        """Engagements become the current table; impressions a side table."""
        known = set(engagements) | set(impressions) | set(dropped)
        listed = ", ".join(f"'{sql_path(a)}'" for a in sorted(known))
        others = self.con.execute(
            f"SELECT lower(trim(action)) AS a, count(*), min(file), min(line) FROM events "
            f"WHERE lower(trim(action)) NOT IN ({listed}) GROUP BY a ORDER BY 2 DESC").fetchall()
        if others and unknown == "error":
            first = others[0]
            summary = ", ".join(f"{a!r} ({n:,})" for a, n, _, _ in others[:10])
            raise ConversionError(
                f"{self._where(first[2], first[3])}: unknown action(s) {summary}; route them with "
                "--engagements / --impressions / --drop-actions, or pass --unknown-actions drop")
        chosen = ", ".join(f"'{sql_path(a)}'" for a in engagements)
        shown = ", ".join(f"'{sql_path(a)}'" for a in impressions) or "NULL"
        self.con.execute(
            "CREATE TABLE shown AS SELECT user_id, item_id, timestamp, feedview, file, line "
            f"FROM events WHERE lower(trim(action)) IN ({shown})")
        # from here on, ``line`` orders rows across files: file first, then line
        self.next(f"engagements ({', '.join(engagements)})",
                  "SELECT user_id, item_id, timestamp, lower(trim(action)) AS action, board, "
                  "surface, feedview, (CAST(file AS BIGINT) << 40) + line AS line FROM events "
                  f"WHERE lower(trim(action)) IN ({chosen})")
        impressions_kept = self.con.execute("SELECT count(*) FROM shown").fetchone()[0]
        self.stats.add(f"  impressions ({', '.join(impressions) or 'none'})",
                       int(impressions_kept), None, None)

    def drop_duplicates(self):
        self.next("drop repeated (user, pin, action, time)",
                  f"SELECT * FROM {self.table} QUALIFY row_number() OVER (PARTITION BY user_id, "
                  "item_id, action, timestamp ORDER BY line) = 1")

    # ------------------------------------------------------------------ embeddings
    def attach_embeddings(self, source, ids_path=None, id_column=None, vector_column=None,
                          missing="error"):
        """Load pin vectors into ``vectors(item_id, vec)``; check or drop engaged pins without."""
        load_embeddings(self.con, source, ids_path, id_column, vector_column)
        dims = self.con.execute(
            "SELECT len(vec) AS d, count(*) FROM vectors GROUP BY d ORDER BY 2 DESC").fetchall()
        if not dims:
            raise ConversionError(f"{source}: no vectors")
        dim = dims[0][0]
        self.dim = dim
        problems = self.con.execute(
            f"SELECT e.item_id, v.vec IS NULL AS missing, len(v.vec) AS d FROM "
            f"(SELECT DISTINCT item_id FROM {self.table}) e LEFT JOIN vectors v USING (item_id) "
            f"WHERE v.vec IS NULL OR len(v.vec) <> {dim} ORDER BY e.item_id").fetchall()
        if problems and missing == "error":
            absent = [p for p in problems if p[1]]
            wrong = [p for p in problems if not p[1]]
            parts = []
            if absent:
                parts.append(f"{len(absent):,} engaged pin(s) have no vector (e.g. "
                             f"{', '.join(p[0] for p in absent[:5])})")
            if wrong:
                parts.append(f"{len(wrong):,} have a vector of another dimension than {dim} "
                             f"(e.g. {wrong[0][0]}: {wrong[0][2]})")
            raise ConversionError(f"{source}: {'; '.join(parts)}; pass --missing-embeddings drop "
                                  "to drop those pins")
        self.next(f"pins with a {dim}-d vector" + (f" ({len(problems):,} dropped)" if problems
                                                   else ""),
                  f"SELECT * FROM {self.table} WHERE item_id IN (SELECT item_id FROM vectors "
                  f"WHERE len(vec) = {dim})")

    # ------------------------------------------------------------------ outputs
    def write_inter(self, path):
        extra = "".join(f", {key} AS \"{OUTPUT_FIELDS[key]}:token\"" for key in OPTIONAL
                        if key in self.present)
        self.con.execute(
            f"COPY (SELECT user_id AS \"user_id:token\", item_id AS \"item_id:token\", "
            f"timestamp AS \"timestamp:float\", session_id AS \"session_id:token\", "
            f"action AS \"action:token\"{extra} FROM {self.table} "
            f"ORDER BY user_id, timestamp, line) TO '{sql_path(path)}' "
            "(HEADER, DELIMITER '\t', QUOTE '')")

    def write_impressions(self, path, with_vectors):
        """Impressions of kept users, minus pins the user engaged with in the same feed view."""
        feedview = "feedview" in self.present
        engaged = (f"AND NOT EXISTS (SELECT 1 FROM {self.table} e WHERE e.user_id = s.user_id "
                   f"AND e.item_id = s.item_id AND e.feedview = s.feedview)" if feedview else
                   f"AND NOT EXISTS (SELECT 1 FROM {self.table} e WHERE e.user_id = s.user_id "
                   f"AND e.item_id = s.item_id)")
        vectors = (f"AND s.item_id IN (SELECT item_id FROM vectors WHERE len(vec) = {self.dim})"
                   if with_vectors else "")
        column = ', s.feedview AS "feedview_id:token"' if feedview else ""
        self.con.execute(
            f"COPY (SELECT s.user_id AS \"user_id:token\", s.item_id AS \"item_id:token\", "
            f"s.timestamp AS \"timestamp:float\"{column} FROM shown s WHERE s.user_id IN "
            f"(SELECT user_id FROM {self.table}) {vectors} {engaged} "
            f"ORDER BY s.user_id, s.timestamp, s.file, s.line) TO '{sql_path(path)}' "
            "(HEADER, DELIMITER '\t', QUOTE '')")
        return self.con.execute(
            f"SELECT count(*) FROM read_csv('{sql_path(path)}', delim = '\t', header = true, "
            "all_varchar = true)").fetchone()[0]

    def write_items(self, path):
        """Vectors of every kept pin, engaged or shown, in the vector file's order (sorting
        thousands of long lists would cost more memory than the whole conversion)."""
        self.con.execute(
            f"COPY (SELECT item_id AS \"item_id:token\", array_to_string(vec, ' ') AS "
            f"\"item_emb:float_seq\" FROM vectors WHERE len(vec) = {self.dim} AND (item_id IN "
            f"(SELECT item_id FROM {self.table}) OR item_id IN (SELECT item_id FROM shown))) "
            f"TO '{sql_path(path)}' (HEADER, DELIMITER '\t', QUOTE '')")


def _detect_unit(typical, path):
    """Seconds, milliseconds or microseconds since the epoch from the median magnitude (values
    far off it are then refused or dropped as impossible times)."""
    if typical is None:
        return "iso"
    for unit, limit in (("s", 1e11), ("ms", 1e14), ("us", 1e17)):
        if typical < limit:
            return unit
    raise ConversionError(f"{path}: timestamps around {typical:.0f} (the median) are beyond "
                          "microseconds since the epoch; pass --time-unit")


# ----------------------------------------------------------------------------- embeddings
def load_embeddings(con, source, ids_path=None, id_column=None, vector_column=None):
    """Create ``vectors(item_id VARCHAR, vec DOUBLE[])`` from Parquet, .npy (+ ids) or CSV."""
    require_file(source)
    name = source[:-3] if source.endswith(".gz") else source
    ext = os.path.splitext(name)[1].lower()
    if ext == ".npy":
        _load_npy(con, source, ids_path)
        return
    reader = (f"read_parquet('{sql_path(source)}')" if ext in (".parquet", ".pq") else
              f"read_csv('{sql_path(source)}', header = true, compression = 'auto')")
    try:
        schema = con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()
    except duckdb.Error as err:
        raise explain_read_error(source, err, ",") from None
    names = [row[0] for row in schema]
    types = {row[0]: row[1] for row in schema}
    ident = id_column or next((c for c in ("pin_id", "item_id", "id") if c in names), names[0])
    if ident not in names:
        raise ConversionError(f"{source}: no id column {ident!r}; the file has {', '.join(names)}")
    lists = [c for c in names if c != ident and types[c].endswith("[]")]
    if vector_column or lists:
        column = vector_column or lists[0]
        if column not in names:
            raise ConversionError(f"{source}: no vector column {column!r}; the file has "
                                  f"{', '.join(names)}")
        vec = (f"CAST({sql_ident(column)} AS DOUBLE[])" if types[column].endswith("[]") else
               f"CAST(string_split(trim({sql_ident(column)}), ' ') AS DOUBLE[])")
    else:  # wide CSV: id, then one numeric column per dimension
        vec = "[" + ", ".join(f"CAST({sql_ident(c)} AS DOUBLE)" for c in names if c != ident) + "]"
    try:
        con.execute(f"CREATE TABLE vectors AS SELECT CAST({sql_ident(ident)} AS VARCHAR) AS "
                    f"item_id, {vec} AS vec FROM {reader}")
    except duckdb.Error as err:
        raise explain_read_error(source, err, ",") from None
    _check_vectors(con, source)


def _load_npy(con, source, ids_path):
    if not ids_path:
        raise ConversionError(f"{source}: a .npy matrix needs --embedding-ids (one id per line)")
    require_file(ids_path)
    try:
        matrix = np.load(source, mmap_mode="r")
    except (ValueError, OSError) as err:
        raise ConversionError(f"{source}: not a readable .npy file ({err})") from None
    if matrix.ndim != 2:
        raise ConversionError(f"{source}: expected a 2-d matrix, got shape {matrix.shape}")
    with open(ids_path, encoding="utf-8-sig") as handle:  # a byte-order mark is no id
        ids = [line.strip() for line in handle if line.strip()]
    if len(ids) != matrix.shape[0]:
        raise ConversionError(f"{ids_path}: {len(ids):,} ids for {matrix.shape[0]:,} vectors in "
                              f"{source}")
    wide = pd.DataFrame(np.asarray(matrix, dtype=np.float32),
                        columns=[f"v{i}" for i in range(matrix.shape[1])])
    wide.insert(0, "item_id", ids)
    cursor = con.cursor()  # a fresh cursor: the connection may hold an unread result
    cursor.register("npy_vectors", wide)
    columns = ", ".join(f"v{i}" for i in range(matrix.shape[1]))
    cursor.execute(f"CREATE TABLE vectors AS SELECT item_id, CAST([{columns}] AS DOUBLE[]) AS "
                   "vec FROM npy_vectors")
    cursor.close()
    _check_vectors(con, source)


def _check_vectors(con, source):
    bad = con.execute("SELECT item_id FROM vectors WHERE vec IS NULL OR list_contains(vec, NULL) "
                      "OR item_id IS NULL LIMIT 1").fetchone()
    if bad:
        raise ConversionError(f"{source}: the vector of {bad[0]!r} has missing or non-numeric "
                              "values")


# ----------------------------------------------------------------------------- conversion
def convert(inputs, output_dir="dataset", name="pinterest", item_embeddings=None,
            embedding_ids=None, embedding_id_column=None, embedding_column=None,
            missing_embeddings="error", columns=None, time_unit="auto", input_format="auto",
            engagements=ENGAGEMENTS, impressions=IMPRESSIONS, dropped=DROPPED,
            unknown_actions="error", session_gap=1800.0, min_item_count=None,
            min_user_count=None, dedup=False, memory_limit="1GB", threads=None, temp_dir=None,
            echo=print, bad_timestamps="error", overwrite=False):
    """Convert engagement logs (and pin vectors); returns the :class:`StatsTable`.

    ``bad_timestamps``: ``error`` refuses a row whose time (in seconds, after the unit
    conversion) is negative, NaN, infinite or in the year 3000 or later; ``drop`` drops and
    counts such rows. Output appears in ``output_dir/name`` only when everything was written;
    an existing folder there that holds files no conversion wrote is refused unless
    ``overwrite``."""
    if isinstance(inputs, str):
        inputs = [inputs]
    check_bad_timestamps_option(bad_timestamps)
    columns = {**DEFAULT_COLUMNS, **(columns or {})}
    if time_unit not in ("auto", "iso", *TIME_UNITS):
        raise ConversionError(f"--time-unit: choose auto, s, ms, us or iso, got {time_unit!r}")
    if session_gap < 0:
        raise ConversionError(f"--session-gap: must be >= 0 seconds, got {session_gap}")
    if not engagements:
        raise ConversionError("--engagements: name at least one engagement action")
    overlap = set(engagements) & (set(impressions) | set(dropped))
    if overlap:
        raise ConversionError(f"--engagements: {', '.join(sorted(overlap))} also listed as "
                              "impressions or dropped")
    files = expand_inputs(inputs)
    stats = StatsTable(echo=echo)
    with conversion(output_dir, name, memory_limit, threads, temp_dir,
                    overwrite) as (con, staging):
        job = PinterestConversion(con, stats, columns, time_unit, bad_timestamps)
        job.load(files, input_format)
        job.route([a.lower() for a in engagements], [a.lower() for a in impressions],
                  [a.lower() for a in dropped], unknown_actions)
        if dedup:
            job.drop_duplicates()
        if min_item_count:
            job.filter_groups(f"pins with >= {min_item_count} engagements", "item_id",
                              "count(*)", min_item_count, None)
        if min_user_count:
            job.filter_groups(range_label("users with", min_user_count, None, "engagements"),
                              "user_id", "count(*)", min_user_count, None)
        if item_embeddings:
            job.attach_embeddings(item_embeddings, embedding_ids, embedding_id_column,
                                  embedding_column, missing_embeddings)
        if job.count() == 0:
            raise ConversionError("no engagements are left; check --engagements and the "
                                  "filters (see the statistics above)")
        job.split_sessions(session_gap)
        job.write_inter(os.path.join(staging, f"{name}.inter"))
        if impressions:
            shown = job.write_impressions(os.path.join(staging, f"{name}.impression"),
                                          bool(item_embeddings))
            stats.add("  impressions written", int(shown), None, None)
        if item_embeddings:
            job.write_items(os.path.join(staging, f"{name}.item"))
        stats.write(os.path.join(staging, f"{name}.stats.md"))
    return stats


def _names(text):
    return tuple(part.strip().lower() for part in text.split(",") if part.strip())


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m dataset_converters.pinterest",
        description="Convert Pinterest-style engagement logs (and pin vectors) to RecBole "
                    "atomic files.")
    parser.add_argument("--input", nargs="+", required=True,
                        help="files, folders or globs of CSV/TSV/Parquet/JSON-lines shards")
    parser.add_argument("--format", default="auto",
                        choices=("auto", "csv", "tsv", "parquet", "json"),
                        help="input format (auto: from each file name)")
    for key in REQUIRED + OPTIONAL:
        parser.add_argument(f"--{key}-col", default=DEFAULT_COLUMNS[key],
                            help=f"column with the {key} (default {DEFAULT_COLUMNS[key]})")
    parser.add_argument("--time-unit", default="auto", choices=("auto", "s", "ms", "us", "iso"))
    parser.add_argument("--bad-timestamps", choices=BAD_TIMESTAMPS, default="error",
                        help="rows whose time is negative, NaN or after the year 3000 (in "
                             "seconds): an error (default) naming the line, or drop and count")
    parser.add_argument("--engagements", type=_names, default=ENGAGEMENTS,
                        help="actions that become interactions (closeup,click,repin,save)")
    parser.add_argument("--impressions", type=_names, default=IMPRESSIONS,
                        help="actions written to <name>.impression (impression)")
    parser.add_argument("--drop-actions", type=_names, default=DROPPED,
                        help="actions to drop (hide)")
    parser.add_argument("--unknown-actions", choices=("error", "drop"), default="error")
    parser.add_argument("--session-gap", type=float, default=1800.0,
                        help="seconds of idle time (>=) that start a new session (1800)")
    parser.add_argument("--min-item-count", type=int, help="pins with at least N engagements")
    parser.add_argument("--min-user-count", type=int, help="users with at least N engagements")
    parser.add_argument("--dedup", action="store_true",
                        help="drop repeated (user, pin, action, timestamp) rows")
    parser.add_argument("--item-embeddings", help="pin vectors: .parquet, .npy or .csv")
    parser.add_argument("--embedding-ids", help="ids of a .npy matrix, one per line")
    parser.add_argument("--embedding-id-col", help="id column of the vectors file")
    parser.add_argument("--embedding-col", help="vector column of the vectors file")
    parser.add_argument("--missing-embeddings", choices=("error", "drop"), default="error")
    add_output_options(parser, default_name="pinterest")
    add_engine_options(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    columns = {key: getattr(args, f"{key}_col") for key in REQUIRED + OPTIONAL}
    return command_line(lambda: convert(
        args.input, args.output_dir, args.name, args.item_embeddings, args.embedding_ids,
        args.embedding_id_col, args.embedding_col, args.missing_embeddings, columns,
        args.time_unit, args.format, args.engagements, args.impressions, args.drop_actions,
        args.unknown_actions, args.session_gap, args.min_item_count, args.min_user_count,
        args.dedup, args.memory_limit, args.threads, args.temp_dir,
        bad_timestamps=args.bad_timestamps, overwrite=args.overwrite),
        os.path.join(args.output_dir, args.name))


if __name__ == "__main__":
    sys.exit(main())
