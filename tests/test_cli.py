"""``recbole-hiertcn train | export | serve | convert``: each word reaches its command, and
wrong arguments are named. Nothing here trains or converts: the commands that would are
replaced by recorders (in ``sys.modules``, so the real modules are not even imported)."""

import os
import subprocess
import sys
import types

import pytest

from recbole_hiertcn import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _recorder(monkeypatch, module_name, calls):
    """Put a stand-in for ``module_name`` whose ``main(argv)`` records ``argv`` and sys.argv."""
    module = types.ModuleType(module_name)

    def main(argv=None):
        calls.append((module_name, None if argv is None else list(argv), list(sys.argv)))
        return 0

    module.main = main
    monkeypatch.setitem(sys.modules, module_name, module)


@pytest.fixture
def calls(monkeypatch):
    recorded = []
    for name in ("recbole_hiertcn.quick_start", "recbole_hiertcn.serving.__main__",
                 *cli.CONVERTERS.values()):
        _recorder(monkeypatch, name, recorded)
    return recorded


def test_without_a_word_the_arguments_train(calls, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["recbole-hiertcn", "--epochs=1", "--show_progress=False"])
    assert cli.main() == 0
    # as before the words existed: quick_start reads the process's arguments itself
    assert calls == [("recbole_hiertcn.quick_start", None,
                      ["recbole-hiertcn", "--epochs=1", "--show_progress=False"])]
    calls.clear()
    assert cli.main(["--model=GRU4Rec"]) == 0
    assert calls[0][:2] == ("recbole_hiertcn.quick_start", ["--model=GRU4Rec"])


def test_train_passes_its_arguments_and_recbole_reads_them_without_the_word(calls, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["recbole-hiertcn", "train", "--epochs=1"])
    assert cli.main() == 0
    # RecBole's Config reads overrides from sys.argv: during the run it lacks the word 'train'
    assert calls == [("recbole_hiertcn.quick_start", ["--epochs=1"],
                      ["recbole-hiertcn", "--epochs=1"])]
    assert sys.argv == ["recbole-hiertcn", "train", "--epochs=1"]  # put back afterwards
    calls.clear()
    assert cli.main(["train", "--dataset=xing"]) == 0
    assert calls[0][:2] == ("recbole_hiertcn.quick_start", ["--dataset=xing"])


@pytest.mark.parametrize("word", ["export", "serve"])
def test_export_and_serve_go_to_the_serving_command_whole(calls, word):
    assert cli.main([word, "somewhere", "--output", "served"]) == 0
    assert calls == [("recbole_hiertcn.serving.__main__", [word, "somewhere", "--output",
                                                           "served"], calls[0][2])]


@pytest.mark.parametrize("name", sorted(cli.CONVERTERS))
def test_convert_goes_to_the_named_converter(calls, name):
    assert cli.main(["convert", name, "--input", "log.csv", "--output-dir", "out"]) == 0
    assert calls[0][:2] == (cli.CONVERTERS[name], ["--input", "log.csv", "--output-dir", "out"])


def test_convert_names_the_converters_when_one_is_unknown_or_missing(calls, capsys):
    assert cli.main(["convert", "movielens"]) == 2
    err = capsys.readouterr().err
    assert "unknown converter 'movielens'" in err and "xing, pinterest, event_log" in err
    assert cli.main(["convert"]) == 2
    assert capsys.readouterr().out.startswith("usage: recbole-hiertcn convert")
    assert cli.main(["convert", "--help"]) == 0
    assert calls == []


def test_an_unknown_word_is_refused_not_trained(calls, capsys):
    assert cli.main(["exprot", "saved/x.pth"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'exprot'" in err and "train, export, serve, convert" in err
    assert calls == []


def test_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: recbole-hiertcn")
    for word in cli.COMMANDS:
        assert f"\n  {word} " in out, word


# --- the real commands' argument checks (their parsers only: nothing runs) ------------------------


def _exit(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    captured = capsys.readouterr()
    return stop.value.code, captured.out, captured.err


@pytest.mark.parametrize("argv, usage", [
    (["export", "--help"], "usage: recbole-hiertcn export"),
    (["serve", "--help"], "usage: recbole-hiertcn serve"),
    (["convert", "xing", "--help"], "usage: python -m dataset_converters.xing"),
    (["convert", "pinterest", "--help"], "usage: python -m dataset_converters.pinterest"),
    (["convert", "event_log", "--help"], "usage: python -m dataset_converters.event_log"),
])
def test_each_command_has_its_help(argv, usage, capsys):
    code, out, _ = _exit(argv, capsys)
    assert code == 0 and out.startswith(usage), out


@pytest.mark.parametrize("argv, named", [
    (["export", "saved/x.pth"], "--output"),
    (["serve"], "folder"),
    (["serve", "served", "--port", "eighty"], "--port"),
    (["convert", "xing"], "--input"),
    (["convert", "pinterest", "--output-dir", "out"], "--input"),
    (["convert", "event_log", "--preset", "nonesuch"], "--preset"),
])
def test_argument_errors_name_the_option(argv, named, capsys):
    code, _, err = _exit(argv, capsys)
    assert code == 2 and named in err, err


def test_help_and_the_serving_and_convert_parsers_load_no_recbole(tmp_path):
    code = """
import sys
from recbole_hiertcn.cli import main
assert main(["--help"]) == 0
for argv in (["export", "--help"], ["serve", "--help"], ["convert", "xing", "--help"]):
    try:
        main(argv)
    except SystemExit as stop:
        assert stop.code == 0, (argv, stop.code)
print("loaded:", sorted(m for m in sys.modules if m == "recbole" or m.startswith("recbole.")))
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=REPO), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.rstrip().splitlines()[-1] == "loaded: []", done.stdout[-2000:]
