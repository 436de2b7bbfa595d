"""Where the converters write: ``<output-dir>/<name>/`` is replaced only when it holds nothing
but a previous conversion's files (or with ``--overwrite``), with normal permissions; a bad
``--name``, an ``--output-dir`` that is a file and a folder given as an input file are clear
errors (exit status 2, never a traceback), and nothing is lost or half written."""

import dataclasses
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from dataset_converters import event_log, pinterest, xing
from dataset_converters.engine import ConversionError
from dataset_converters.output import MANIFEST, atomic_dataset_dir

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclasses.dataclass
class Converter:
    """One converter with a tiny input it converts without complaint."""

    module: object
    input_name: str
    content: str
    options: dict = dataclasses.field(default_factory=dict)  # for convert()
    flags: tuple = ()                                       # the same on the command line
    reads_folders: bool = False                             # --input may name a folder

    def write_input(self, folder, content=None):
        path = folder / self.input_name
        path.write_text(self.content if content is None else content)
        return str(path)

    def convert(self, input_path, output_dir, **options):
        return self.module.convert(input_path, str(output_dir),
                                   **{"echo": None, **self.options, **options})

    def main(self, input_path, output_dir, *flags):
        return self.module.main(["--input", input_path, "--output-dir", str(output_dir),
                                 *self.flags, *flags])


CONVERTERS = {
    "xing": Converter(
        xing, "interactions.csv",
        "user_id\titem_id\tinteraction_type\tcreated_at\n1\t10\t1\t1000\n1\t11\t1\t2800\n",
        dict(min_item_count=xing.OFF, min_user_count=xing.OFF, max_user_count=xing.OFF),
        ("--min-item-count", "none", "--min-user-count", "none", "--max-user-count", "none")),
    "event_log": Converter(event_log, "log.csv", "user_id,item_id,timestamp\n1,a,5\n1,b,7\n"),
    "pinterest": Converter(
        pinterest, "log.csv",
        "user_id,pin_id,timestamp,action\nu,p1,1700000000,click\nu,p2,1700000100,repin\n",
        reads_folders=True),
}
each_converter = pytest.mark.parametrize("converter", CONVERTERS.values(), ids=CONVERTERS)


def tree(folder):
    """Every path under ``folder`` with the content of its files: what a run must not touch."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            found[os.path.relpath(os.path.join(root, name), folder)] = None
        for name in files:
            path = os.path.join(root, name)
            found[os.path.relpath(path, folder)] = open(path, "rb").read()
    return found


def with_umask(mask, action):
    old = os.umask(mask)
    try:
        return action()
    finally:
        os.umask(old)


# ----------------------------------------------------------------------------- what is replaced
@each_converter
def test_a_users_file_in_the_output_folder_survives_a_refused_run(converter, tmp_path):
    source = converter.write_input(tmp_path)
    (tmp_path / "out" / "d").mkdir(parents=True)
    (tmp_path / "out" / "d" / "notes.txt").write_text("mine")
    before = tree(tmp_path / "out")
    final = os.path.join(tmp_path / "out", "d")
    with pytest.raises(ConversionError) as refused:
        converter.convert(source, tmp_path / "out", name="d")
    message = str(refused.value)
    assert message.startswith(f"{final} holds files the converters did not write (notes.txt)")
    assert "--overwrite" in message
    assert tree(tmp_path / "out") == before  # and no staging folder is left beside it


@each_converter
def test_overwrite_replaces_a_folder_with_a_users_files(converter, tmp_path):
    source = converter.write_input(tmp_path)
    (tmp_path / "out" / "d").mkdir(parents=True)
    (tmp_path / "out" / "d" / "notes.txt").write_text("mine")
    converter.convert(source, tmp_path / "out", name="d", overwrite=True)
    assert os.listdir(tmp_path / "out") == ["d"]
    written = sorted(os.listdir(tmp_path / "out" / "d"))
    assert "notes.txt" not in written and "d.inter" in written and MANIFEST in written


@each_converter
def test_rerunning_on_a_previous_conversions_output_needs_no_overwrite(converter, tmp_path):
    source = converter.write_input(tmp_path)
    converter.convert(source, tmp_path / "out", name="d")
    first = (tmp_path / "out" / "d" / "d.inter").read_text()
    converter.write_input(tmp_path, converter.content.replace("1", "2"))  # other users
    converter.convert(source, tmp_path / "out", name="d")
    assert (tmp_path / "out" / "d" / "d.inter").read_text() != first
    assert os.listdir(tmp_path / "out") == ["d"]
    entries = sorted(os.listdir(tmp_path / "out" / "d"))
    listed = json.loads((tmp_path / "out" / "d" / MANIFEST).read_text())["files"]
    assert listed == [e for e in entries if e != MANIFEST] and "d.stats.md" in listed


def convert_into(out, overwrite=False, during=None):
    """The atomic folder around a stand-in conversion writing ``d.inter``."""
    with atomic_dataset_dir(str(out), "d", overwrite) as staging:
        if during:
            during()
        with open(os.path.join(staging, "d.inter"), "w") as handle:
            handle.write("new\n")


def previous_output(folder, files=("d.inter", "d.stats.md"), listed=None):
    folder.mkdir(parents=True)
    for name in files:
        (folder / name).write_text("old\n")
    (folder / MANIFEST).write_text(json.dumps({"files": list(files if listed is None
                                                              else listed)}))


@pytest.mark.parametrize("setup", [
    lambda d: None,                                    # nothing there yet
    lambda d: d.mkdir(parents=True),                   # an empty folder
    lambda d: previous_output(d),                      # a previous conversion's output
    lambda d: previous_output(d, files=("d.inter",), listed=("d.inter", "d.item")),  # less
], ids=["absent", "empty", "previous output", "previous output less a file"])
def test_replaced_without_overwrite(tmp_path, setup):
    setup(tmp_path / "out" / "d")
    convert_into(tmp_path / "out")
    assert os.listdir(tmp_path / "out") == ["d"]
    assert sorted(os.listdir(tmp_path / "out" / "d")) == [MANIFEST, "d.inter"]
    assert (tmp_path / "out" / "d" / "d.inter").read_text() == "new\n"


def listed_name_is_a_folder(d):
    previous_output(d, listed=("d.inter", "d.stats.md", "d.item"))
    (d / "d.item").mkdir()  # a folder where the manifest lists a file
    (d / "d.item" / "keep.txt").write_text("mine")


@pytest.mark.parametrize("setup, names", [
    (lambda d: previous_output(d, files=("d.inter", "notes.txt"), listed=("d.inter",)),
     "(notes.txt)"),
    (listed_name_is_a_folder, "(d.item)"),
    (lambda d: (d.mkdir(parents=True), (d / "d.inter").write_text("old")), "(d.inter)"),
    (lambda d: previous_output(d) or (d / MANIFEST).write_text("{broken"),
     f"({MANIFEST}, d.inter, d.stats.md)"),
    (lambda d: previous_output(d) or (d / MANIFEST).write_text('["d.inter"]'),
     f"({MANIFEST}, d.inter, d.stats.md)"),
], ids=["an unlisted file", "a listed name that is a folder", "no manifest (older output)",
        "a broken manifest", "a manifest without a file list"])
def test_refused_without_overwrite_and_left_as_it_was(tmp_path, setup, names):
    setup(tmp_path / "out" / "d")
    before = tree(tmp_path / "out")
    with pytest.raises(ConversionError, match=re.escape(
            f"d holds files the converters did not write {names}; pass --overwrite")):
        convert_into(tmp_path / "out")
    assert tree(tmp_path / "out") == before
    convert_into(tmp_path / "out", overwrite=True)
    assert sorted(os.listdir(tmp_path / "out" / "d")) == [MANIFEST, "d.inter"]


def test_files_that_appear_during_the_conversion_are_not_deleted(tmp_path):
    previous_output(tmp_path / "out" / "d")
    late = tmp_path / "out" / "d" / "late.txt"
    with pytest.raises(ConversionError, match=r"did not write \(late.txt\)"):
        convert_into(tmp_path / "out", during=lambda: late.write_text("mine"))
    assert late.read_text() == "mine"
    assert (tmp_path / "out" / "d" / "d.inter").read_text() == "old\n"
    assert os.listdir(tmp_path / "out") == ["d"]  # no staging or moved-aside folder left


@each_converter
def test_a_refusal_comes_before_the_input_is_read(converter, tmp_path):
    source = converter.write_input(tmp_path)
    (tmp_path / "out" / "d").mkdir(parents=True)
    (tmp_path / "out" / "d" / "notes.txt").write_text("mine")
    printed = []
    with pytest.raises(ConversionError, match="did not write"):
        converter.convert(source, tmp_path / "out", name="d", echo=printed.append)
    assert printed == []  # no statistics: a long conversion is not run only to be thrown away


def test_only_a_few_unexpected_names_are_shown(tmp_path):
    (tmp_path / "out" / "d").mkdir(parents=True)
    for index in range(8):
        (tmp_path / "out" / "d" / f"f{index}").write_text("")
    with pytest.raises(ConversionError, match=r"\(f0, f1, f2, f3, f4 and 3 more\)"):
        convert_into(tmp_path / "out")


def test_a_file_in_place_of_the_output_folder_is_replaced_only_with_overwrite(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "d").write_text("mine")
    with pytest.raises(ConversionError, match=r"d exists and is not a folder; pass --overwrite"):
        convert_into(tmp_path / "out")
    assert (tmp_path / "out" / "d").read_text() == "mine"
    convert_into(tmp_path / "out", overwrite=True)
    assert sorted(os.listdir(tmp_path / "out" / "d")) == [MANIFEST, "d.inter"]
    assert os.listdir(tmp_path / "out") == ["d"]


# ----------------------------------------------------------------------------- permissions
@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
@each_converter
def test_the_output_folder_and_files_get_normal_permissions(converter, tmp_path, umask):
    source = converter.write_input(tmp_path)
    with_umask(umask, lambda: converter.convert(source, tmp_path / "out", name="d"))
    folder = tmp_path / "out" / "d"
    assert oct(os.stat(folder).st_mode & 0o777) == oct(0o777 & ~umask)  # as os.makedirs gives
    for name in os.listdir(folder):
        assert oct(os.stat(folder / name).st_mode & 0o777) == oct(0o666 & ~umask), name


# ----------------------------------------------------------------------------- bad names and paths
ABSOLUTE = "<an absolute path>"  # made under tmp_path in the test


@pytest.mark.parametrize("name", ["../../x", "../x", "a/b", ABSOLUTE, ".", "..", "", ".hidden",
                                  "x\0y"])
@each_converter
def test_a_name_must_be_a_single_folder_name(converter, tmp_path, name):
    if name == ABSOLUTE:
        name = str(tmp_path / "elsewhere" / "x")
    (tmp_path / "in").mkdir()
    source = converter.write_input(tmp_path / "in")
    before = tree(tmp_path)
    with pytest.raises(ConversionError, match="^" + re.escape(f"--name {name!r}: a dataset name "
                                                              "must be a single folder name")):
        converter.convert(source, tmp_path / "a" / "b" / "out", name=name)
    assert tree(tmp_path) == before  # nothing made, here or where the name pointed


@each_converter
def test_an_output_dir_that_is_a_file_is_a_clear_error(converter, tmp_path):
    source = converter.write_input(tmp_path)
    (tmp_path / "out").write_text("mine")
    with pytest.raises(ConversionError, match=rf"^--output-dir {tmp_path / 'out'} is a file"):
        converter.convert(source, tmp_path / "out")
    with pytest.raises(ConversionError, match=r"out/deeper: cannot write there \(Not a directory"):
        converter.convert(source, tmp_path / "out" / "deeper")
    assert (tmp_path / "out").read_text() == "mine"


# ----------------------------------------------------------------------------- folders as inputs
def folder_input_error(converter, folder):
    """Pinterest reads the log files in a folder; the others want a file."""
    if converter.reads_folders:
        return f"--input: the folder {folder} holds no log files (.csv, .tsv"
    return f"{folder}: is a folder, not a file"


@each_converter
def test_an_input_that_is_a_folder_is_reported_as_a_folder(converter, tmp_path):
    folder = tmp_path / converter.input_name
    folder.mkdir()
    (folder / "notes.txt").write_text("not a log")
    with pytest.raises(ConversionError) as refused:
        converter.convert(str(folder), tmp_path / "out")
    assert str(refused.value).startswith(folder_input_error(converter, folder))
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []


def test_other_input_files_that_are_folders_are_reported_as_folders(tmp_path):
    xing_input = CONVERTERS["xing"].write_input(tmp_path)
    (tmp_path / "items.csv").mkdir()
    with pytest.raises(ConversionError, match="items.csv: is a folder, not a file"):
        CONVERTERS["xing"].convert(xing_input, tmp_path / "out", items=str(tmp_path / "items.csv"))
    log = CONVERTERS["pinterest"].write_input(tmp_path)
    (tmp_path / "pins.parquet").mkdir()
    with pytest.raises(ConversionError, match="pins.parquet: is a folder, not a file"):
        pinterest.convert(log, str(tmp_path / "out"), echo=None,
                          item_embeddings=str(tmp_path / "pins.parquet"))
    np.save(tmp_path / "pins.npy", np.ones((2, 3)))
    (tmp_path / "ids.txt").mkdir()
    with pytest.raises(ConversionError, match="ids.txt: is a folder, not a file"):
        pinterest.convert(log, str(tmp_path / "out"), echo=None,
                          item_embeddings=str(tmp_path / "pins.npy"),
                          embedding_ids=str(tmp_path / "ids.txt"))
    (tmp_path / "logs" / "more.csv").mkdir(parents=True)  # a glob matches a folder
    with pytest.raises(ConversionError, match="more.csv: is a folder, not a file"):
        pinterest.convert([str(tmp_path / "logs" / "*.csv")], str(tmp_path / "out"), echo=None)
    assert os.listdir(tmp_path / "out") == []


# ----------------------------------------------------------------------------- command lines
@each_converter
def test_command_lines_refuse_and_overwrite(converter, tmp_path, capsys):
    source = converter.write_input(tmp_path)
    (tmp_path / "out" / "d").mkdir(parents=True)
    (tmp_path / "out" / "d" / "notes.txt").write_text("mine")
    assert converter.main(source, tmp_path / "out", "--name", "d") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'out' / 'd'} holds files the converters did not "
                          "write (notes.txt); pass --overwrite")
    assert (tmp_path / "out" / "d" / "notes.txt").read_text() == "mine"
    assert converter.main(source, tmp_path / "out", "--name", "d", "--overwrite") == 0
    assert not (tmp_path / "out" / "d" / "notes.txt").exists()
    assert converter.main(source, tmp_path / "out", "--name", "d") == 0  # its own output


@each_converter
def test_command_lines_report_bad_paths_and_names(converter, tmp_path, capsys):
    source = converter.write_input(tmp_path)
    (tmp_path / "file").write_text("")
    (tmp_path / "folder").mkdir()
    for flags, message in (
            (("--name", "../../x"), "error: --name '../../x': a dataset name must be a single "
                                    "folder name"),
            (("--name", ""), "error: --name '': a dataset name must be"),
            (("--output-dir", str(tmp_path / "file")), f"error: --output-dir {tmp_path / 'file'} "
                                                        "is a file"),
    ):
        assert converter.main(source, tmp_path / "out", *flags) == 2, flags
        assert capsys.readouterr().err.startswith(message), flags
    assert converter.main(str(tmp_path / "folder"), tmp_path / "out") == 2
    assert capsys.readouterr().err.startswith(
        "error: " + folder_input_error(converter, tmp_path / "folder"))
    with pytest.raises(SystemExit):
        converter.module.parse_args(["--help"])
    assert "--overwrite" in capsys.readouterr().out


def test_the_hostile_name_gives_no_traceback_from_a_shell(tmp_path):
    source = CONVERTERS["xing"].write_input(tmp_path)
    done = subprocess.run([sys.executable, "-m", "dataset_converters.xing", "--input", source,
                           "--output-dir", "out", "--name", "../../x"], cwd=tmp_path,
                          env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2 and done.stderr.startswith("error: --name '../../x'")
    assert "Traceback" not in done.stderr
