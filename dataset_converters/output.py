"""Writing converter output: all-or-nothing dataset folders and the statistics table."""

import contextlib
import os
import shutil
import tempfile


@contextlib.contextmanager
def atomic_dataset_dir(output_dir, name):
    """Yield a temporary folder that becomes ``output_dir/name`` only if the block succeeds.

    The folder is made next to its destination (same file system), so the final move is a
    rename. An existing ``output_dir/name`` is replaced only by a complete new one; on any error
    the temporary folder is removed and the old output is left as it was.
    """
    os.makedirs(output_dir, exist_ok=True)
    final = os.path.join(output_dir, name)
    staging = tempfile.mkdtemp(prefix=f".{name}.partial-", dir=output_dir)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    previous = None
    if os.path.exists(final):
        previous = tempfile.mkdtemp(prefix=f".{name}.previous-", dir=output_dir)
        os.rmdir(previous)
        os.rename(final, previous)
    try:
        os.rename(staging, final)
    except BaseException:
        if previous:
            os.rename(previous, final)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if previous:
        shutil.rmtree(previous, ignore_errors=True)


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
