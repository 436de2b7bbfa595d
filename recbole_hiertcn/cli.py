"""The ``recbole-hiertcn`` command (and ``run_recbole_hiertcn.py``), one word per job:

    recbole-hiertcn train [--model=M] [--dataset=D] [--key=value ...]   train and test a model
    recbole-hiertcn export CHECKPOINT --output FOLDER                  checkpoint -> served folder
    recbole-hiertcn serve FOLDER [--port N] ...                        HTTP service of an export
    recbole-hiertcn convert xing|pinterest|event_log [options]         raw log -> atomic files

Without a command word the arguments train (``recbole-hiertcn --epochs=1``), as before there
were words. This module sits above everything it dispatches to and imports each only when its
word is given, so ``--help`` and the serving and convert commands load no RecBole."""

import contextlib
import importlib
import sys

TRAIN = "train"
SERVING_COMMANDS = ("export", "serve")
CONVERT = "convert"
COMMANDS = (TRAIN, *SERVING_COMMANDS, CONVERT)
# convert's second word -> the converter module (each has ``main(argv)``)
CONVERTERS = {
    "xing": "dataset_converters.xing",
    "pinterest": "dataset_converters.pinterest",
    "event_log": "dataset_converters.event_log",
}
PROG = "recbole-hiertcn"

USAGE = f"""usage: {PROG} [train] [--model=M] [--dataset=D] [--config_files=F] [--key=value ...]
       {PROG} export CHECKPOINT --output FOLDER [--with-states] [--sign-key-file PATH]
       {PROG} serve FOLDER [--port N] [--redis URL] [--faiss [INDEX]] ...
       {PROG} convert {{{','.join(CONVERTERS)}}} [converter options]

Train and test HierTCN or any RecBole model, export and serve a trained HierTCN, convert raw
logs to RecBole atomic files. Without a command word the arguments train.

commands:
  train     train, reload the best checkpoint, test (any other --key=value is a RecBole
            config override, e.g. --learning_rate=0.002)
  export    checkpoint -> self-contained folder
  serve     HTTP service of an exported folder
  convert   a raw log -> RecBole atomic files: {', '.join(CONVERTERS)}

'{PROG} COMMAND --help' (and '{PROG} convert NAME --help') describe each command's options.
"""


@contextlib.contextmanager
def _command_line(words):
    """RecBole's ``Config`` reads ``--key=value`` overrides from ``sys.argv`` itself: while a
    ``train`` word given on the process's command line runs, ``sys.argv`` holds the command's
    own arguments (RecBole would otherwise warn that ``train`` is not one of its settings)."""
    saved = sys.argv
    sys.argv = [saved[0], *words]
    try:
        yield
    finally:
        sys.argv = saved


def _train(words, from_process_argv):
    from recbole_hiertcn.quick_start import main as train_main

    if not from_process_argv:
        return train_main(words)
    with _command_line(words):
        return train_main(words)


def _convert(words):
    if not words or words[0] in ("-h", "--help"):
        print(f"usage: {PROG} convert {{{','.join(CONVERTERS)}}} [converter options]\n\n"
              f"Convert a raw log to RecBole atomic files; '{PROG} convert NAME --help' lists "
              f"a converter's options.")
        return 0 if words else 2
    name, rest = words[0], words[1:]
    if name not in CONVERTERS:
        print(f"{PROG} convert: error: unknown converter {name!r} (choose from "
              f"{', '.join(CONVERTERS)})", file=sys.stderr)
        return 2
    return importlib.import_module(CONVERTERS[name]).main(rest)


def main(argv=None):
    """Run the command in ``argv`` (default: the process's arguments); returns the exit status."""
    words = sys.argv[1:] if argv is None else list(argv)
    if words in (["-h"], ["--help"]):
        print(USAGE, end="")
        return 0
    first = words[0] if words else None
    if first in SERVING_COMMANDS:
        from recbole_hiertcn.serving.__main__ import main as serving_main

        return serving_main(words)
    if first == CONVERT:
        return _convert(words[1:])
    if first == TRAIN:
        return _train(words[1:], from_process_argv=argv is None)
    if first is not None and not first.startswith("-"):
        print(f"{PROG}: error: unknown command {first!r} (choose from {', '.join(COMMANDS)}; "
              f"without a command word the --options train)", file=sys.stderr)
        return 2
    # no command word: the whole command line trains, as before the words existed
    return _train(argv, from_process_argv=False)
