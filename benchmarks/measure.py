"""Run a command as a child process and measure its wall time and peak resident memory; name
the machine a figure was measured on."""

import ctypes
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARENT_PID = "BENCHMARKS_PARENT_PID"  # set for the child by run_measured
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def machine():
    """The processor, the instruction set torch's CPU kernels use, torch's and Python's
    versions: what a float result depends on besides the code and the seed (the same run on
    an AVX2 and an AVX-512 machine rounds differently, and a long run can end elsewhere)."""
    import torch

    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            name = next((line.split(":", 1)[1].strip() for line in handle
                         if line.startswith("model name")), name)
    except OSError:
        pass
    return (f"{name}; {torch.backends.cpu.get_cpu_capability()}; torch {torch.__version__}; "
            f"Python {platform.python_version()}")


def die_with_parent():
    """In a child of :func:`run_measured`: ask Linux to send this process SIGTERM when the
    process that started it ends (killed included), so a stopped comparison leaves no run
    training on behind it. Exits at once if that process has already gone; elsewhere than
    Linux it does nothing (the per-run lock of ``benchmarks.compare`` still stops a second
    process on the same run)."""
    expected = os.environ.get(PARENT_PID)
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return
    if prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        print(f"benchmarks: this run will not end with its comparison (prctl: "
              f"{os.strerror(ctypes.get_errno())})", file=sys.stderr)
    # the parent may have ended between the fork and the prctl call: then it never signals
    if expected is not None and os.getppid() != int(expected):
        raise SystemExit("benchmarks: the process that started this run has ended")


def run_measured(command, env=None, cwd=None, running=None):
    """Run ``command``; return (exit code, seconds, peak RSS in MiB, stdout, stderr).

    ``running``, a set, holds the child's ``Popen`` while it runs (to stop it from elsewhere).

    The peak is the child's own ``ru_maxrss``, read with ``wait4``, so every run is measured on
    its own, independent of the benchmark process and of earlier children. The repository root
    is put on the child's ``PYTHONPATH`` so ``python -m benchmarks...`` works from any folder.
    """
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
    env[PARENT_PID] = str(os.getpid())
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        child = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=err, text=True)
        if running is not None:
            running.add(child)
        try:
            _, status, usage = os.wait4(child.pid, 0)
        finally:
            if running is not None:
                running.discard(child)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)  # already reaped by wait4
        out.seek(0)
        err.seek(0)
        return child.returncode, seconds, usage.ru_maxrss / 1024.0, out.read(), err.read()
