"""Children of the benchmarks: measured, and never left running when their parent ends."""

import os
import signal
import subprocess
import sys
import time

import pytest

from benchmarks.measure import REPO, run_measured

CHILD = ("import time; from benchmarks.measure import die_with_parent; die_with_parent(); "
         "print('ready', flush=True); time.sleep(120)")
# The parent starts the child through run_measured (as benchmarks.compare does) from a thread,
# after writing its own pid; the test then kills the parent with SIGKILL, which it cannot catch.
PARENT = f"""
import sys, threading
from benchmarks.measure import run_measured
threading.Thread(target=run_measured, args=([sys.executable, "-c", {CHILD!r}],)).start()
"""


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (ended, not yet reaped by init) counts as ended; reaped meanwhile: ended
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def child_of(pid, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                  text=True).stdout.split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise AssertionError("the parent started no child")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_run_ends_when_the_comparison_that_started_it_is_killed():
    env = dict(os.environ, PYTHONPATH=REPO)
    parent = subprocess.Popen([sys.executable, "-c", PARENT], env=env)
    try:
        child = child_of(parent.pid)
        time.sleep(2)  # let the child reach its sleep, past die_with_parent
        assert alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 10
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(child), "the run kept training after its comparison was killed"
    finally:
        parent.kill()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_child_whose_parent_is_gone_before_it_starts_exits():
    # the parent recorded for it (no process has pid 0) is not the process it finds above it
    env = dict(os.environ, PYTHONPATH=REPO, BENCHMARKS_PARENT_PID="0")
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0 and "ready" not in done.stdout
    assert "the process that started this run has ended" in done.stderr


def test_run_measured_reports_the_childs_code_output_and_memory():
    code, seconds, peak, out, err = run_measured(
        [sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr); "
         "sys.exit(3)"])
    assert (code, out, err) == (3, "out\n", "err\n")
    assert seconds > 0 and peak > 1
