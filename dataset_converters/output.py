"""Writing converter output: all-or-nothing dataset folders and the statistics table."""

import contextlib
import json
import os
import secrets
import shutil
import tempfile

from dataset_converters.errors import ConversionError

# Written into every output folder, listing the files the conversion wrote there: how a later
# run tells its own previous output (replaced freely) from files a user put there (kept unless
# --overwrite).
MANIFEST = ".recbole-hiertcn-convert.json"
SHOWN_FOREIGN_NAMES = 5  # an error lists this many unexpected names, then counts the rest


@contextlib.contextmanager
def atomic_dataset_dir(output_dir, name, overwrite=False):
    """Yield a temporary folder that becomes ``output_dir/name`` only if the block succeeds.

    The folder is made next to its destination (same file system), so the final move is a
    rename. An existing ``output_dir/name`` is replaced only by a complete new one; on any error
    the temporary folder is removed and the old output is left as it was. Without
    ``overwrite``, an existing ``output_dir/name`` that holds anything but a previous
    conversion's files (see :func:`foreign_entries`) is refused, before the block runs and
    again just before it is deleted.
    """
    check_dataset_name(name)
    final = os.path.join(output_dir, name)
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ConversionError(f"--output-dir {output_dir} is a file, not a folder")
    if not overwrite:
        refuse_foreign_content(final, final)
    try:
        os.makedirs(output_dir, exist_ok=True)
        staging = make_unique_dir(output_dir, f".{name}.partial-")
    except OSError as err:
        raise ConversionError(f"--output-dir {output_dir}: cannot write there "
                              f"({err.strerror or err})") from None
    try:
        yield staging
        write_manifest(staging)
        replace_with(staging, final, overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def check_dataset_name(name):
    """``--name`` becomes one folder inside ``--output-dir``, never a path leading elsewhere."""
    separators = {"/", os.sep, os.altsep} - {None}
    if (not name or name.startswith(".") or "\0" in name
            or any(sep in name for sep in separators)):
        raise ConversionError(f"--name {name!r}: a dataset name must be a single folder name "
                              "(not empty, no '/', not starting with '.')")


def make_unique_dir(parent, prefix):
    """A new, empty folder ``parent/prefix<random>``. Unlike :func:`tempfile.mkdtemp` (0700,
    kept through the final rename) it gets the mode :func:`os.makedirs` gives: 0777 less the
    umask."""
    for _ in range(100):
        path = os.path.join(parent, prefix + secrets.token_hex(6))
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"no unused name {prefix}... in {parent}")


def write_manifest(folder):
    """Record the files a conversion wrote in ``folder`` (called once they are all there)."""
    written = sorted(os.listdir(folder))
    with open(os.path.join(folder, MANIFEST), "w", encoding="utf-8") as handle:
        json.dump({"written_by": "dataset_converters (recbole-hiertcn)",
                   "note": "a converter replaces this folder only while it holds nothing but "
                           "these files; anything else needs --overwrite",
                   "files": written}, handle, indent=1)
        handle.write("\n")


def manifest_files(folder):
    """The names the folder's manifest lists, or None without a readable manifest."""
    try:
        with open(os.path.join(folder, MANIFEST), encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (OSError, ValueError):
        return None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, list):
        return None
    return {name for name in files if isinstance(name, str)}


def foreign_entries(folder):
    """Sorted names in ``folder`` that its manifest does not account for: anything but the
    manifest and the files it lists (a folder under a listed name is not a file we wrote).
    A listed file that is missing is fine: nothing of the user's is lost."""
    listed = manifest_files(folder)
    expected = set() if listed is None else listed | {MANIFEST}
    with os.scandir(folder) as entries:
        return sorted(entry.name for entry in entries
                      if entry.name not in expected or entry.is_dir(follow_symlinks=False))


def refuse_foreign_content(path, shown_as):
    """Raise unless ``path`` is absent, an empty folder, or a previous conversion's output.

    ``shown_as`` names it in the error (``path`` may be that folder moved aside)."""
    if not os.path.lexists(path):
        return
    if os.path.islink(path) or not os.path.isdir(path):
        raise ConversionError(f"{shown_as} exists and is not a folder; pass --overwrite to "
                              "replace it")
    foreign = foreign_entries(path)
    if foreign:
        shown = ", ".join(foreign[:SHOWN_FOREIGN_NAMES])
        more = len(foreign) - SHOWN_FOREIGN_NAMES
        shown += f" and {more} more" if more > 0 else ""
        raise ConversionError(
            f"{shown_as} holds files the converters did not write ({shown}); pass --overwrite "
            "to replace the folder and delete them, or choose another --name or --output-dir")


def replace_with(staging, final, overwrite):
    """Rename ``staging`` to ``final``; the old ``final`` is moved aside first, checked once
    more (files may have appeared since the start) and deleted only after the rename."""
    previous = None
    if os.path.lexists(final):
        previous = tempfile.mkdtemp(prefix=f".{os.path.basename(final)}.previous-",
                                    dir=os.path.dirname(final) or ".")
        os.rmdir(previous)  # only its unused name is wanted
        os.rename(final, previous)
        try:
            if not overwrite:
                refuse_foreign_content(previous, final)
            os.rename(staging, final)
        except BaseException:
            os.rename(previous, final)
            raise
    else:
        os.rename(staging, final)
    if previous:
        remove(previous)


def remove(path):
    """Delete a folder tree, or a file or link (not what it points to)."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        os.remove(path)


class StatsTable:
    """Counts after each conversion step, printed as they come and written as Markdown."""

    COLUMNS = ("step", "interactions", "users", "items", "sessions")

    def __init__(self, echo=print):
        self.rows = []
        self.echo = echo

    def add(self, step, interactions, users, items, sessions=None):
        row = (step, interactions, users, items, sessions)
        self.rows.append(row)
        if self.echo:
            if len(self.rows) == 1:
                self.echo(self._format_line(self.COLUMNS))
            self.echo(self._format_line(row))

    @staticmethod
    def _cell(value):
        if value is None:
            return "-"
        return f"{value:,}" if isinstance(value, int) else str(value)

    def _format_line(self, row):
        first, *rest = (self._cell(v) for v in row)
        return f"{first:<40}" + "".join(f"{v:>14}" for v in rest)

    def markdown(self):
        lines = ["| " + " | ".join(self.COLUMNS) + " |",
                 "|---" + "|---:" * (len(self.COLUMNS) - 1) + "|"]
        lines += ["| " + " | ".join(self._cell(v) for v in row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"

    def write(self, path):
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(self.markdown())
