"""XING (RecSys Challenge 2016 / 2017) interaction logs -> RecBole atomic files.

    python -m dataset_converters.xing --input PATH/interactions.csv --output-dir dataset --preset hiertcn

Writes ``<output-dir>/<name>/<name>.inter`` with the fields ``user_id:token item_id:token
timestamp:float session_id:token interaction_type:token``, ordered by user and time (ties keep
their order in the file), plus ``<name>.item`` from ``--items``, ``<name>.impression`` with
``--impressions``, and ``<name>.stats.md``, the statistics table printed after each step.

Presets:

* ``hiertcn`` (default), the HierTCN authors' preprocessing: keep interaction types 1, 2, 3;
  keep items with at least 50 interactions; then users with 10 to 500 interactions (one pass,
  in that order); sessions split where the gap to the user's previous interaction is >= 1800 s.
* ``hrnn``, the HRNN paper's: keep types 1, 2, 3; sessions split where the gap is > 1800 s;
  drop duplicates of (session, item, type) keeping the first; keep items with at least 20
  interactions; then sessions of length >= 3; then users with 5 <= sessions < 200.

Every threshold is also an option; all count bounds are inclusive.

Input may start with a UTF-8 byte-order mark (spreadsheet exports). A ``created_at`` that is
negative or at or after the year 3000 (seconds) stops the conversion with its line, or with
``--bad-timestamps drop`` such rows are dropped and counted.

An existing ``<output-dir>/<name>/`` is replaced (all at once, only by a complete new one) when
it is empty or holds only a previous conversion's files, as listed in its
``.recbole-hiertcn-convert.json``; a folder with anything else is refused, naming the
unexpected files, unless ``--overwrite`` is given (which deletes them). ``--name`` is a single
folder name.

Impressions (``--impressions``, 2017 type 0) have no feed view; each is tied to the session of
its user that it falls in - inside it or less than the session gap before its start or after
its end, the earlier session when both apply - and written with that ``session_id``; the others
are dropped, as are items the user engaged with in that session, and both are counted. With
``impression_negatives: True`` and ``feedview_field: session_id``, HierTCN then draws the
negatives of a target from the impressions shown in its session.
"""

import argparse
import dataclasses
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
    range_label,
    read_header,
    split_header,
    sql_ident,
    sql_path,
)
from dataset_converters.output import StatsTable

INTERACTION_COLUMNS = ("user_id", "item_id", "interaction_type", "created_at")
INTER_HEADER = ("user_id:token", "item_id:token", "timestamp:float", "session_id:token",
                "interaction_type:token")
IMPRESSION_TYPE = 0
# items.csv columns -> RecBole field types (comma lists become token_seq).
ITEM_FIELD_TYPES = {
    "title": "token_seq", "career_level": "token", "discipline_id": "token",
    "industry_id": "token", "country": "token", "region": "token", "latitude": "float",
    "longitude": "float", "employment": "token", "tags": "token_seq", "created_at": "float",
    "active_during_test": "token",
}
HOW_TO_GET_DATA = (
    "The XING data (RecSys Challenge 2016 / 2017) is not distributed with this project and can "
    "no longer be downloaded from the challenge site. If you have interactions.csv, convert it "
    "with:\n    python -m dataset_converters.xing --input PATH/interactions.csv "
    "--output-dir dataset\nTo try the pipeline without it, generate a synthetic sample in the "
    "same format:\n    python -m dataset_converters.xing_sample --output-dir raw/xing\n"
    "    python -m dataset_converters.xing --input raw/xing/interactions.csv --output-dir dataset"
)


@dataclasses.dataclass(frozen=True)
class Preset:
    """One preprocessing recipe. ``None`` switches a filter off; count bounds are inclusive."""

    types: tuple = (1, 2, 3)
    session_gap: float = 1800
    gap_rule: str = ">="            # a new session starts when gap <gap_rule> session_gap
    sessions_first: bool = False    # split sessions before the count filters (HRNN) or after
    dedup: bool = False             # drop repeated (session, item, type), keeping the first
    min_item_count: int = None
    min_user_count: int = None
    max_user_count: int = None
    min_session_length: int = None
    min_user_sessions: int = None
    max_user_sessions: int = None


OFF = "off"  # an override that switches a filter off

PRESETS = {
    "hiertcn": Preset(min_item_count=50, min_user_count=10, max_user_count=500),
    "hrnn": Preset(gap_rule=">", sessions_first=True, dedup=True, min_item_count=20,
                   min_session_length=3, min_user_sessions=5, max_user_sessions=199),
}


def interaction_columns(path):
    """Header of interactions.csv -> {column name in the file: plain name}.

    2017 headers carry a table prefix (``interactions.user_id``); it is stripped up to the last
    dot. Raises :class:`ConversionError` for a wrong separator or a missing column.
    """
    header = read_header(path)
    names = split_header(path, header, "\t", INTERACTION_COLUMNS)
    plain = [name.strip().rsplit(".", 1)[-1] for name in names]
    missing = [c for c in INTERACTION_COLUMNS if c not in plain]
    if missing:
        raise ConversionError(
            f"{path}: line 1: missing column(s) {', '.join(missing)}; the header has "
            f"{', '.join(names)} (expected {', '.join(INTERACTION_COLUMNS)}, tab-separated)"
        )
    return dict(zip(names, plain))


def _read_csv_sql(path, columns, types):
    """``read_csv(...)`` for a tab-separated file with a header, every column named and typed."""
    spec = ", ".join(f"'{sql_path(plain)}': '{types.get(plain, 'VARCHAR')}'"
                     for plain in columns.values())
    return (f"read_csv('{sql_path(path)}', delim = '\t', header = true, auto_detect = false, "
            f"quote = '', escape = '', columns = {{{spec}}}, compression = 'auto')")


class XingConversion(StepRunner):
    """Runs the steps of a preset in DuckDB, one table per step, and records their counts."""

    def __init__(self, con, preset, stats, bad_timestamps="error"):
        super().__init__(con, stats)
        self.preset, self.bad_timestamps = preset, bad_timestamps
        self.keep.add("raw")  # impressions are written from it at the end

    # ------------------------------------------------------------------ steps
    def load(self, path):
        columns = interaction_columns(path)
        types = {c: "BIGINT" for c in INTERACTION_COLUMNS}
        try:
            self.con.execute(f"CREATE TABLE raw AS SELECT * FROM {_read_csv_sql(path, columns, types)}")
        except duckdb.Error as err:
            raise explain_read_error(path, err) from None
        for column in INTERACTION_COLUMNS:
            empty = self.con.execute(
                f"SELECT rowid FROM raw WHERE {column} IS NULL ORDER BY rowid LIMIT 1").fetchone()
            if empty:
                raise ConversionError(f"{path}: line {empty[0] + 2}: column {column} is empty")
        if self.con.execute("SELECT count(*) FROM raw").fetchone()[0] == 0:
            raise ConversionError(f"{path}: no interactions after the header line")
        self.table = "raw"
        self.record(f"read {os.path.basename(path)}")
        self.check_times(path)

    def check_times(self, path):
        """Every row's created_at must be a possible time: refused, or dropped and counted
        with ``--bad-timestamps drop`` (rows of every type: the file itself is wrong there)."""
        if self.bad_timestamps == "drop":
            self.drop_impossible_times("created_at")
            return
        count, first, value = find_impossible_times(self.con, "raw", "created_at", "rowid",
                                                    "created_at")
        if count:
            raise impossible_time_error(f"{path}: line {first + 2}", "created_at", value, count)

    def keep_types(self):
        kept = ", ".join(str(int(t)) for t in self.preset.types)
        self.next(f"keep interaction types {kept}",
                  "SELECT user_id, item_id, interaction_type, created_at AS timestamp, "
                  f"rowid AS line FROM raw WHERE interaction_type IN ({kept})")

    def drop_duplicates(self):
        self.next(
            "drop repeated (session, item, type)",
            f"SELECT * FROM {self.table} QUALIFY row_number() OVER "
            "(PARTITION BY session_id, item_id, interaction_type ORDER BY timestamp, line) = 1",
        )

    def run(self, path):
        """All steps of the preset, in its order."""
        p = self.preset
        self.load(path)
        self.keep_types()
        if p.sessions_first:
            self.split_sessions(p.session_gap, p.gap_rule)
        if p.dedup and self.has_sessions:
            self.drop_duplicates()
        if p.min_item_count:
            self.filter_groups(f"items with >= {p.min_item_count} interactions", "item_id",
                               "count(*)", p.min_item_count, None)
        if p.min_user_count or p.max_user_count:
            self.filter_groups(range_label("users with", p.min_user_count, p.max_user_count,
                                            "interactions"),
                               "user_id", "count(*)", p.min_user_count, p.max_user_count)
        if not self.has_sessions:
            self.split_sessions(p.session_gap, p.gap_rule)
            if p.dedup:
                self.drop_duplicates()
        if p.min_session_length:
            self.filter_groups(f"sessions of length >= {p.min_session_length}", "session_id",
                               "count(*)", p.min_session_length, None)
        if p.min_user_sessions or p.max_user_sessions:
            self.filter_groups(range_label("users with", p.min_user_sessions,
                                            p.max_user_sessions, "sessions"),
                               "user_id", "count(DISTINCT session_id)", p.min_user_sessions,
                               p.max_user_sessions)
        if self.count() == 0:
            raise ConversionError(
                f"{path}: no interactions are left after the filters; lower the thresholds "
                "(see the statistics above)")

    # ------------------------------------------------------------------ outputs
    def write_inter(self, path):
        self.con.execute(
            f"COPY (SELECT user_id AS \"{INTER_HEADER[0]}\", item_id AS \"{INTER_HEADER[1]}\", "
            f"timestamp AS \"{INTER_HEADER[2]}\", session_id AS \"{INTER_HEADER[3]}\", "
            f"interaction_type AS \"{INTER_HEADER[4]}\" FROM {self.table} "
            f"ORDER BY user_id, timestamp, line) TO '{sql_path(path)}' "
            "(HEADER, DELIMITER '\t', QUOTE '')")

    def write_impressions(self, path):
        """Type-0 rows (2017 data) of kept users and items, each with the ``session_id`` of the
        session it falls in (:meth:`tie_impressions_to_sessions`), minus items the user engaged
        with in that session: shown-but-not-engaged negatives of the session's targets
        (``feedview_field: session_id``). Each step is a row of the statistics table."""
        self.con.execute(
            "CREATE TABLE shown AS SELECT user_id, item_id, created_at AS timestamp, rowid AS "
            f"line FROM raw WHERE interaction_type = {IMPRESSION_TYPE} AND user_id IN (SELECT "
            f"user_id FROM {self.table}) AND item_id IN (SELECT item_id FROM {self.table})")
        self.record("  impressions of kept users and items", "shown", sessions=False)
        self.tie_impressions_to_sessions("shown", "shown_in_session")
        self.record(f"  impressions within {self.preset.session_gap:g} s of a session",
                    "shown_in_session", sessions=True)
        self.con.execute(
            "CREATE TABLE shown_not_engaged AS SELECT * FROM shown_in_session s WHERE NOT EXISTS "
            f"(SELECT 1 FROM {self.table} e WHERE e.session_id = s.session_id "
            "AND e.item_id = s.item_id)")
        self.record("  impressions not engaged in session", "shown_not_engaged",
                    sessions=True)
        self.con.execute(
            "COPY (SELECT user_id AS \"user_id:token\", item_id AS \"item_id:token\", "
            "timestamp AS \"timestamp:float\", session_id AS \"session_id:token\" FROM "
            "shown_not_engaged ORDER BY user_id, timestamp, line) "
            f"TO '{sql_path(path)}' (HEADER, DELIMITER '\t', QUOTE '')")

    def tie_impressions_to_sessions(self, shown, tied):
        """``tied``: the rows of ``shown`` that fall in a session, with its ``session_id``.

        An impression at time t belongs to the user's latest session that starts at or before
        t when t is inside it or less than the session gap after its last engagement;
        otherwise to the user's next session when that starts less than the gap after t (the
        impression came just before it); otherwise to none, and it is left out. "Less than"
        is "at most" under ``--gap-rule >``, as for sessions themselves. Two ASOF joins on
        (user, time) against session starts, sort-based inside DuckDB.
        """
        within = "<" if self.preset.gap_rule == ">=" else "<="  # not a new session's gap
        gap = float(self.preset.session_gap)
        self.con.execute(
            f"CREATE TABLE session_spans AS SELECT user_id, session_id, min(timestamp) AS "
            f"first, max(timestamp) AS last FROM {self.table} GROUP BY user_id, session_id")
        self.con.execute(
            f"CREATE TABLE {tied} AS SELECT * FROM (SELECT s.*, CASE "
            f"WHEN s.timestamp - earlier.last {within} {gap!r} THEN earlier.session_id "
            f"WHEN later.first - s.timestamp {within} {gap!r} THEN later.session_id "
            f"END AS session_id FROM {shown} s "
            "ASOF LEFT JOIN session_spans earlier ON s.user_id = earlier.user_id "
            "AND s.timestamp >= earlier.first "
            "ASOF LEFT JOIN session_spans later ON s.user_id = later.user_id "
            "AND s.timestamp < later.first) WHERE session_id IS NOT NULL")

    def write_items(self, items_path, path):
        """items.csv -> RecBole item features of the items left in the interactions."""
        header = read_header(items_path)
        names = split_header(items_path, header, "\t", ("id", "title"))
        columns = {name: name.strip().rsplit(".", 1)[-1] for name in names}
        if "id" not in columns.values():
            raise ConversionError(f"{items_path}: line 1: missing column id; the header has "
                                  f"{', '.join(names)}")
        try:
            self.con.execute(f"CREATE TABLE items_raw AS SELECT * FROM "
                             f"{_read_csv_sql(items_path, columns, {'id': 'BIGINT'})}")
        except duckdb.Error as err:
            raise explain_read_error(items_path, err) from None
        selects = ['id AS "item_id:token"']
        for plain in columns.values():
            if plain == "id":
                continue
            kind = ITEM_FIELD_TYPES.get(plain, "token")
            column = sql_ident(plain)
            if kind == "token_seq":
                value = f"replace(trim(coalesce({column}, '')), ',', ' ')"
            elif kind == "float":
                value = f"TRY_CAST({column} AS DOUBLE)"
            else:
                value = column
            selects.append(f"{value} AS {sql_ident(f'{plain}:{kind}')}")
        self.con.execute(
            f"COPY (SELECT {', '.join(selects)} FROM items_raw WHERE id IN "
            f"(SELECT item_id FROM {self.table}) ORDER BY id) TO '{sql_path(path)}' "
            "(HEADER, DELIMITER '\t', QUOTE '')")


def convert(input_path, output_dir="dataset", name="xing", preset="hiertcn", items=None,
            impressions=False, memory_limit="1GB", threads=None, temp_dir=None, echo=print,
            bad_timestamps="error", overwrite=False, **overrides):
    """Convert one interactions.csv; returns the :class:`StatsTable`.

    ``overrides`` replace fields of the preset (see :class:`Preset`); ``None`` keeps the
    preset's value and :data:`OFF` switches that filter off. ``bad_timestamps``: ``error``
    refuses a row with an impossible created_at, ``drop`` drops and counts such rows. Output
    appears in ``output_dir/name`` only when everything was written; an existing folder there
    that holds files no conversion wrote is refused unless ``overwrite``.
    """
    check_bad_timestamps_option(bad_timestamps)
    if preset not in PRESETS:
        raise ConversionError(f"--preset: unknown preset {preset!r}; choose {', '.join(PRESETS)}")
    recipe = dataclasses.replace(
        PRESETS[preset],
        **{k: (None if v == OFF else v) for k, v in overrides.items() if v is not None})
    _check_recipe(recipe)
    if impressions and IMPRESSION_TYPE in recipe.types:
        raise ConversionError("--impressions: type 0 cannot be both kept (--types) and separate")
    stats = StatsTable(echo=echo)
    with conversion(output_dir, name, memory_limit, threads, temp_dir,
                    overwrite) as (con, staging):
        job = XingConversion(con, recipe, stats, bad_timestamps)
        job.run(input_path)
        job.write_inter(os.path.join(staging, f"{name}.inter"))
        if impressions:
            job.write_impressions(os.path.join(staging, f"{name}.impression"))
        if items:
            job.write_items(items, os.path.join(staging, f"{name}.item"))
        stats.write(os.path.join(staging, f"{name}.stats.md"))
    return stats


def _check_recipe(recipe):
    if recipe.gap_rule not in (">=", ">"):
        raise ConversionError(f"--gap-rule: must be '>=' or '>', got {recipe.gap_rule!r}")
    if recipe.session_gap < 0:
        raise ConversionError(f"--session-gap: must be >= 0 seconds, got {recipe.session_gap}")
    for field in ("min_item_count", "min_user_count", "max_user_count", "min_session_length",
                  "min_user_sessions", "max_user_sessions"):
        value = getattr(recipe, field)
        if value is not None and value < 0:
            raise ConversionError(f"--{field.replace('_', '-')}: must be >= 0, got {value}")
    if not recipe.types:
        raise ConversionError("--types: keep at least one interaction type")


def _types(text):
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")


def _bound(text):
    """An inclusive count bound; 'none' switches the filter off."""
    if text.lower() in ("none", "off"):
        return OFF
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or 'none', got {text!r}")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m dataset_converters.xing",
        description="Convert XING RecSys Challenge 2016/2017 interactions.csv to RecBole atomic "
                    "files. Count bounds are inclusive; 'none' switches a filter off.")
    parser.add_argument("--input", required=True, help="interactions.csv (tab-separated, .gz ok)")
    parser.add_argument("--items", help="items.csv, written as <name>.item")
    add_output_options(parser, default_name="xing")
    parser.add_argument("--preset", default="hiertcn", choices=sorted(PRESETS))
    parser.add_argument("--types", type=_types, help="interaction types to keep, e.g. 1,2,3")
    parser.add_argument("--session-gap", type=float, help="seconds of idle time (1800)")
    parser.add_argument("--gap-rule", choices=(">=", ">"), help="new session when gap >= or > it")
    parser.add_argument("--dedup", action=argparse.BooleanOptionalAction,
                        help="drop repeated (session, item, type), keeping the first")
    for option, helptext in (("--min-item-count", "items with at least N interactions"),
                             ("--min-user-count", "users with at least N interactions"),
                             ("--max-user-count", "users with at most N interactions"),
                             ("--min-session-length", "sessions with at least N interactions"),
                             ("--min-user-sessions", "users with at least N sessions"),
                             ("--max-user-sessions", "users with at most N sessions")):
        parser.add_argument(option, type=_bound, metavar="N", help=helptext)
    parser.add_argument("--impressions", action="store_true",
                        help="write type-0 impressions (2017) to <name>.impression, each with "
                             "the session_id of the session it falls in (within --session-gap "
                             "of it; others are dropped and counted), for feedview_field: "
                             "session_id")
    parser.add_argument("--bad-timestamps", choices=BAD_TIMESTAMPS, default="error",
                        help="rows whose created_at is negative or after the year 3000: an "
                             "error (default) naming the line, or drop and count them")
    add_engine_options(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    overrides = {field: getattr(args, field) for field in (
        "types", "session_gap", "gap_rule", "dedup", "min_item_count", "min_user_count",
        "max_user_count", "min_session_length", "min_user_sessions", "max_user_sessions")}
    return command_line(lambda: convert(
        args.input, args.output_dir, args.name, args.preset, items=args.items,
        impressions=args.impressions, memory_limit=args.memory_limit, threads=args.threads,
        temp_dir=args.temp_dir, bad_timestamps=args.bad_timestamps, overwrite=args.overwrite,
        **overrides),
        os.path.join(args.output_dir, args.name))


if __name__ == "__main__":
    sys.exit(main())
