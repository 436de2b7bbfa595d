"""Peer check: RecBole 1.2.1's own test suite, run against the installed plugin.

RecBole's ``tests/`` folder is kept unchanged and read-only outside the project, in
``<repo>/../shared/peer/recbole-1.2.1`` (or the folder named by ``$RECBOLE_PEER_DIR``); it is never
copied into the project. Each group below copies it to a temporary folder, adds a ``conftest.py``
that imports ``recbole_hiertcn`` first (so every compatibility fix is in place, exactly as for a
user of the plugin) and runs pytest there in a fresh interpreter: RecBole's configs read
``tests/test_data/`` relative to the working folder, and RecBole writes ``log/`` and ``saved/``
into it.

    python -m pytest -q -m slow tests/peer                   # every group but long_runs
    python -m pytest -q -m slow tests/peer -k "graph or core"  # some groups
    python tests/peer/test_recbole_suite.py sequential graph   # live output, timed; any group

The tests are marked ``slow``, which the default ``python -m pytest -q`` leaves out; they are
skipped when the peer folder does not exist.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

PEER_ENV = "RECBOLE_PEER_DIR"
REPO = Path(__file__).resolve().parents[2]
DEFAULT_PEER_DIR = REPO.parent / "shared" / "peer" / "recbole-1.2.1"

_AUTO = "tests/model/test_model_auto.py"

# Groups of RecBole's tests, as pytest arguments relative to the copy's root. Never pass
# ``--option=value`` here: RecBole's Config reads every such argument of sys.argv as a setting.
GROUPS = {
    # RecBole's sequential models, the family HierTCN joins
    "sequential": [_AUTO, "-k", "TestSequentialRecommender"],
    # the graph models that need compat's dok_matrix._update stand-in
    "graph": [f"{_AUTO}::TestGeneralRecommender::test_{name}" for name in (
        "spectralcf", "gcmc", "gcmc_with_stack", "ngcf", "lightgcn", "NCL")]
    + [f"{_AUTO}::TestKnowledgeRecommender::test_{name}" for name in ("mcclk", "kgin")],
    # configuration, datasets and dataloaders, metrics, evaluation settings, HyperTuning;
    # without the one long run, which is in long_runs
    "core": ["tests/config", "tests/data", "tests/metrics", "tests/evaluation_setting",
             "tests/hyper_tuning", "-k", "not (TestOverallConfig and test_train_batch_size)"],
    # general, context-aware and knowledge-aware models (includes the graph group)
    "other_models": [_AUTO, "-k", "not TestSequentialRecommender"],
    # Hours on 2 CPU cores, not meant for CI: BPR trained on ml-100k with train_batch_size 1
    # (one step per interaction, about 20 minutes); S3Rec pre-training for its default 500
    # pretrain_epochs (about 28 s each, so about 4 hours, writing a 1.7 MB checkpoint per epoch)
    # and then fine-tuning
    "long_runs": ["tests/config/test_overall.py::TestOverallConfig::test_train_batch_size",
                  "tests/model/test_model_manual.py"],
}

# Too long for a test run: only ``python tests/peer/test_recbole_suite.py long_runs`` runs them.
SCRIPT_ONLY = {"long_runs"}

# Tests left out while a package they need is missing. None of these packages is a dependency of
# RecBole 1.2.1 or of this project.
OPTIONAL = {
    # KGAT builds its attentive knowledge graph with dgl
    f"{_AUTO}::TestKnowledgeRecommender::test_kgat": "dgl",
    f"{_AUTO}::TestKnowledgeRecommender::test_kgat_with_gcn": "dgl",
    f"{_AUTO}::TestKnowledgeRecommender::test_kgat_with_graphsage": "dgl",
    # RecBole's xgboost and lightgbm wrappers (and their data conversion in the trainer)
    f"{_AUTO}::TestContextRecommender::test_xgboost": "xgboost",
    f"{_AUTO}::TestContextRecommender::test_lightgbm": "lightgbm",
    # NCL clusters embeddings with faiss (imported in its first training step)
    f"{_AUTO}::TestGeneralRecommender::test_NCL": "faiss",
    # KGIN and MCCLK aggregate with torch_scatter (imported in forward); their adjacency
    # matrices, built with dok_matrix._update in __init__, are built before that
    f"{_AUTO}::TestKnowledgeRecommender::test_kgin": "torch_scatter",
    f"{_AUTO}::TestKnowledgeRecommender::test_mcclk": "torch_scatter",
}

_CONFTEST = '''\
"""Written by recbole-hiertcn's peer check (tests/peer/test_recbole_suite.py)."""

import pytest

import recbole_hiertcn  # noqa: F401  (the plugin and its compatibility fixes, as a user has them)

# {{node id: package}}: tests that need a package that is not installed
DESELECT = {deselect!r}


@pytest.hookimpl(trylast=True)  # after -k and -m, so only tests of the group are reported
def pytest_collection_modifyitems(config, items):
    dropped = [item for item in items if item.nodeid in DESELECT]
    for item in dropped:
        print(f"deselected (needs {{DESELECT[item.nodeid]}}, not installed): {{item.nodeid}}")
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item.nodeid not in DESELECT]
'''


def peer_location():
    """Where RecBole's suite is looked for: ``$RECBOLE_PEER_DIR``, else next to the checkout."""
    return Path(os.environ.get(PEER_ENV) or DEFAULT_PEER_DIR)


def peer_dir():
    """The folder holding RecBole's ``tests/``, or None when it is not there."""
    folder = peer_location()
    return folder if (folder / "tests").is_dir() else None


def _not_found():
    return (f"RecBole's test suite not found: no {peer_location() / 'tests'} (set {PEER_ENV} to "
            "the folder that holds RecBole 1.2.1's tests/)")


def missing_optional():
    """``{node id: package}`` of the OPTIONAL tests whose package is not installed."""
    return {test: package for test, package in OPTIONAL.items()
            if importlib.util.find_spec(package) is None}


def run_group(name, workdir, peer=None):
    """Run one group from a fresh copy of the peer tests in ``workdir``; return the exit code."""
    peer = Path(peer) if peer is not None else peer_dir()
    workdir = Path(workdir)
    shutil.copytree(peer / "tests", workdir / "tests")
    (workdir / "conftest.py").write_text(_CONFTEST.format(deselect=missing_optional()))
    # An ini file of its own, so that no configuration from a folder above (addopts) applies.
    # Options go here rather than on the command line, where RecBole would read them as settings.
    (workdir / "pytest.ini").write_text("[pytest]\naddopts = --durations=10\n")
    command = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider",
               *GROUPS[name]]
    return subprocess.run(command, cwd=workdir, check=False).returncode


@pytest.mark.parametrize("group", [name for name in GROUPS if name not in SCRIPT_ONLY])
def test_recbole_suite(group, tmp_path):
    peer = peer_dir()
    if peer is None:
        pytest.skip(_not_found())
    code = run_group(group, tmp_path, peer)
    assert code == 0, f"RecBole's own tests, group {group!r}: pytest exit code {code}"


def main(argv):
    """``python tests/peer/test_recbole_suite.py [group ...]``: run groups with live output."""
    names = argv or [name for name in GROUPS if name not in SCRIPT_ONLY]
    unknown = [name for name in names if name not in GROUPS]
    if unknown:
        print(f"unknown group(s) {unknown}; groups: {', '.join(GROUPS)}", file=sys.stderr)
        return 2
    peer = peer_dir()
    if peer is None:
        print(_not_found(), file=sys.stderr)
        return 2
    failed = []
    for name in names:
        start = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=f"recbole-peer-{name}-") as workdir:
            code = run_group(name, workdir, peer)
        print(f"== group {name}: exit code {code}, {time.monotonic() - start:.0f} s", flush=True)
        if code != 0:
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
