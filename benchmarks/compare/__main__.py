"""``python -m benchmarks.compare``: the command, and the child of every run (``--run``)."""

import sys

from benchmarks.compare.driver import main

if __name__ == "__main__":
    sys.exit(main())
