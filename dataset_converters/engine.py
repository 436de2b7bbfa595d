"""The conversion engine shared by the converters: DuckDB (embedded, out of core) plus checks.

DuckDB reads CSV (gzip included), Parquet and JSON directly, runs the filters and window
functions in parallel, and spills to a temporary folder when the data do not fit under its
memory limit, so logs larger than memory convert with bounded memory.
"""

import contextlib
import gzip
import os
import re
import sys
import tempfile
import zlib

import duckdb

from dataset_converters.errors import ConversionError
from dataset_converters.output import atomic_dataset_dir


def connect(work_dir, memory_limit="1GB", threads=None):
    """A DuckDB database in ``work_dir`` that spills there when ``memory_limit`` is reached."""
    con = duckdb.connect(os.path.join(work_dir, "work.duckdb"))
    try:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    except duckdb.Error as err:
        raise ConversionError(f"--memory-limit: {memory_limit!r} is not a size such as 1GB") from err
    con.execute("SET TimeZone = 'UTC'")  # ISO timestamps without an offset are UTC
    con.execute(f"SET temp_directory = '{sql_path(os.path.join(work_dir, 'spill'))}'")
    con.execute("SET preserve_insertion_order = true")  # file order breaks timestamp ties
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return con


@contextlib.contextmanager
def conversion(output_dir, name, memory_limit="1GB", threads=None, temp_dir=None,
               overwrite=False):
    """What every conversion runs in: a DuckDB connection on a scratch database (under
    ``temp_dir``) and the staging folder that becomes ``output_dir/name`` only if the block
    succeeds (see :func:`atomic_dataset_dir` for when an existing one is replaced). DuckDB
    running out of memory becomes a :class:`ConversionError` naming ``--memory-limit``."""
    # the output checks come first: they vet ``name`` before it is part of the scratch path
    with atomic_dataset_dir(output_dir, name, overwrite) as staging, \
            tempfile.TemporaryDirectory(prefix=f".{name}-work-", dir=temp_dir) as work:
        con = connect(work, memory_limit=memory_limit, threads=threads)
        try:
            yield con, staging
        except duckdb.OutOfMemoryException as err:
            raise ConversionError(f"--memory-limit {memory_limit} is too small for this input "
                                  f"({str(err).splitlines()[0]}); raise it") from None
        finally:
            con.close()


def add_output_options(parser, default_name=None, name_help=None):
    """``--output-dir``, ``--name`` and ``--overwrite``, the same on every converter."""
    parser.add_argument("--output-dir", default="dataset", help="folder for <name>/ (dataset)")
    parser.add_argument("--name", default=default_name,
                        help=name_help or f"dataset name, a single folder name ({default_name})")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace <output-dir>/<name>/ even when it holds files the "
                             "converters did not write (they are deleted); without it only an "
                             "empty folder or a previous conversion's output is replaced")


def add_engine_options(parser):
    """The DuckDB options every converter's command line has."""
    parser.add_argument("--memory-limit", default="1GB", help="DuckDB memory limit (1GB)")
    parser.add_argument("--threads", type=int, help="DuckDB threads (all cores)")
    parser.add_argument("--temp-dir", help="where DuckDB spills (system temp folder)")


def command_line(convert, written):
    """Run ``convert()`` for a command line: exit status 0 and ``wrote <written>``, or 2 and
    the :class:`ConversionError` on stderr."""
    try:
        convert()
    except ConversionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {written}")
    return 0


def sql_path(path):
    """A path as the body of a single-quoted SQL string."""
    return str(path).replace("'", "''")


def sql_ident(name):
    """A double-quoted SQL identifier."""
    return '"' + str(name).replace('"', '""') + '"'


def is_gzip(path):
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def require_file(path):
    """Refuse a path that is missing or a folder, before anything tries to read it."""
    if os.path.isdir(path):
        raise ConversionError(f"{path}: is a folder, not a file")
    if not os.path.isfile(path):
        raise ConversionError(f"{path}: no such file")


def read_header(path):
    """First line of a (possibly gzipped) text file, without the line break or a leading
    UTF-8 byte-order mark.

    Raises:
        ConversionError: the file is missing, a folder, empty, or not readable as gzip /
        UTF-8 text.
    """
    require_file(path)
    if os.path.getsize(path) == 0:
        raise ConversionError(f"{path}: the file is empty")
    opener = gzip.open if is_gzip(path) else open
    try:
        # utf-8-sig drops a byte-order mark (spreadsheet exports), as DuckDB's read_csv does
        with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
            line = handle.readline()
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as err:
        raise ConversionError(f"{path}: cannot read the first line ({err})") from err
    line = line.rstrip("\r\n")
    if not line.strip():
        raise ConversionError(f"{path}: line 1: the header line is empty")
    return line


def split_header(path, header, separator, expected):
    """Column names of a header line, checking that it is ``separator``-separated.

    ``expected`` are names the file should have; when the header has one field that contains
    another common separator, the error says which one the file seems to use.
    """
    names = header.split(separator)
    if len(names) == 1 and len(expected) > 1:
        for other, label in ((",", "comma"), (";", "semicolon"), ("\t", "tab"), ("|", "pipe"),
                             (" ", "space")):
            if other != separator and other in header:
                wanted = "tab" if separator == "\t" else repr(separator)
                raise ConversionError(
                    f"{path}: line 1: expected {wanted}-separated columns, but the header "
                    f"looks {label}-separated: {header[:120]!r}"
                )
    return names


_CSV_LINE = re.compile(r"CSV Error on Line: (\d+)")
_CAST = re.compile(r'converting column "([^"]+)"\. Could not convert string "([^"]*)" to \'(\w+)\'')
_COLUMNS = re.compile(r"Expected Number of Columns: (\d+) Found: (\d+)")


def explain_read_error(path, err, separator="\t"):
    """A :class:`ConversionError` naming file, line and column for a DuckDB read error."""
    text = str(err)
    line = _CSV_LINE.search(text)
    where = f"{path}: line {line.group(1)}" if line else str(path)
    cast = _CAST.search(text)
    if cast:
        column, value, kind = cast.groups()
        what = "an integer" if "INT" in kind else "a number" if kind in ("DOUBLE", "FLOAT") \
            else kind.lower()
        return ConversionError(f"{where}: column {column}: {value!r} is not {what}")
    columns = _COLUMNS.search(text)
    if columns:
        sep = "tab" if separator == "\t" else repr(separator)
        return ConversionError(
            f"{where}: expected {columns.group(1)} {sep}-separated fields, found {columns.group(2)}"
        )
    if "GZIP" in text.upper() or "gzip" in text:
        return ConversionError(f"{path}: the gzip stream is truncated or corrupt ({text.strip()})")
    first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    return ConversionError(f"{where}: {first}")


# Event times are seconds since 1970 before 3000-01-01 00:00 UTC; anything else (negative, NaN,
# infinite, later) is a broken clock or a wrong unit, not an event.
LATEST_TIMESTAMP = 32_503_680_000
BAD_TIMESTAMPS = ("error", "drop")  # what --bad-timestamps does with such rows


def check_bad_timestamps_option(choice):
    if choice not in BAD_TIMESTAMPS:
        raise ConversionError(f"--bad-timestamps: choose {' or '.join(BAD_TIMESTAMPS)}, "
                              f"got {choice!r}")


def impossible_time_sql(seconds):
    """SQL that is true where ``seconds`` cannot be an event time (NULL stays NULL)."""
    return (f"(isnan(CAST({seconds} AS DOUBLE)) OR {seconds} < 0 "
            f"OR {seconds} >= {LATEST_TIMESTAMP})")


def find_impossible_times(con, table, seconds, position, shown):
    """``(count, first position, its shown value)`` of the rows of ``table`` whose ``seconds``
    is impossible, in one pass; ``position`` orders rows (file order), ``shown`` is what the
    error quotes (the value as written in the file)."""
    count, first, value = con.execute(
        f"SELECT count(*), min({position}), arg_min({shown}, {position}) FROM {table} "
        f"WHERE {impossible_time_sql(seconds)}").fetchone()
    return int(count), first, value


def impossible_time_error(where, column, value, count, reading="seconds since the epoch"):
    """The error for the first of ``count`` impossible times; ``reading``: how it was read."""
    return ConversionError(
        f"{where}: column {column}: {value!r} ({reading}) is not a possible time: it must be "
        f"from 1970 to before the year 3000; {count:,} row(s) have such a time; pass "
        "--bad-timestamps drop to drop and count them")


class StepRunner:
    """Runs conversion steps in DuckDB, one table per step, and records counts after each.

    Tables have the columns ``user_id``, ``item_id``, ``timestamp`` (seconds) and ``line``
    (file order), plus whatever the converter keeps; ``session_id`` once sessions are split.
    """

    def __init__(self, con, stats):
        self.con, self.stats = con, stats
        self.table, self.steps, self.has_sessions = None, 0, False
        self.keep = set()  # tables a later step still reads

    def next(self, label, select_sql):
        """Materialise ``select_sql`` as the current table and record its counts."""
        self.steps += 1
        name = f"step{self.steps}"
        self.con.execute(f"CREATE TABLE {name} AS {select_sql}")
        if self.table and self.table not in self.keep:
            self.con.execute(f"DROP TABLE {self.table}")
        self.table = name
        self.record(label)

    def record(self, label, table=None, sessions=None):
        """A statistics row: counts of ``table`` (default: the current one); its sessions when
        ``sessions`` (default: once they are split)."""
        table = table or self.table
        sessions = self.has_sessions if sessions is None else sessions
        distinct_sessions = "count(DISTINCT session_id)" if sessions else "NULL"
        row = self.con.execute(
            f"SELECT count(*), count(DISTINCT user_id), count(DISTINCT item_id), "
            f"{distinct_sessions} FROM {table}").fetchone()
        self.stats.add(label, *(None if v is None else int(v) for v in row))

    def count(self):
        return self.con.execute(f"SELECT count(*) FROM {self.table}").fetchone()[0]

    def drop_impossible_times(self, seconds):
        """``--bad-timestamps drop``: delete the current table's rows whose ``seconds`` is
        impossible, in place (later steps may read the table by name), and record the count."""
        dropped = self.con.execute(
            f"DELETE FROM {self.table} WHERE {impossible_time_sql(seconds)}").fetchone()[0]
        self.record(f"drop {int(dropped):,} row(s) with impossible timestamps")

    def split_sessions(self, gap, rule=">="):
        """Number sessions in (user, time, file order): a new one where the gap to the user's
        previous event is ``rule`` ``gap`` seconds. Ids are global, increasing with the order."""
        self.has_sessions = True
        self.next(
            f"sessions at gap {rule} {gap:g} s",
            f"SELECT * EXCLUDE (opens), sum(opens) OVER (ORDER BY user_id, timestamp, line "
            f"ROWS UNBOUNDED PRECEDING) AS session_id FROM ("
            f"SELECT *, CASE WHEN coalesce(timestamp - lag(timestamp) OVER (PARTITION BY user_id "
            f"ORDER BY timestamp, line) {rule} {float(gap)!r}, true) THEN 1 ELSE 0 END AS opens "
            f"FROM {self.table})",
        )

    def filter_groups(self, label, key, measure, low, high):
        """Keep rows whose ``key`` group has ``low <= measure <= high`` (None: unbounded)."""
        bounds = [f"{measure} >= {int(low)}"] if low is not None else []
        bounds += [f"{measure} <= {int(high)}"] if high is not None else []
        self.next(label, f"SELECT * FROM {self.table} WHERE {key} IN (SELECT {key} FROM "
                         f"{self.table} GROUP BY {key} HAVING {' AND '.join(bounds)})")


def range_label(prefix, low, high, unit):
    """'users with 10..500 interactions', '... >= 5 ...', '... <= 9 ...'."""
    if low is not None and high is not None:
        return f"{prefix} {low}..{high} {unit}"
    return f"{prefix} >= {low} {unit}" if low is not None else f"{prefix} <= {high} {unit}"
