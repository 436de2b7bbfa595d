"""The ``recbole-hiertcn`` command (and ``run_recbole_hiertcn.py``): ``export`` and ``serve`` as
the first word go to :mod:`recbole_hiertcn.serving`; anything else trains and tests a model
(:func:`recbole_hiertcn.quick_start.main`). It sits above both, so neither imports the other."""

import sys

SERVING_COMMANDS = ("export", "serve")


def main(argv=None):
    """Run the command in ``argv`` (default: the process's arguments); returns the exit status."""
    words = sys.argv[1:] if argv is None else list(argv)
    if words and words[0] in SERVING_COMMANDS:
        from recbole_hiertcn.serving.__main__ import main as serving_main

        return serving_main(words)
    from recbole_hiertcn.quick_start import main as train_main

    return train_main(argv)
