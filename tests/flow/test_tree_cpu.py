"""The scale harness's per-stage CPU: the process tree's user + system time, children
(live, exited and reaped, and their own reaped children) included."""

from __future__ import annotations

import subprocess
import sys

from tenpo.flow.scale import StageResult, tree_cpu_seconds

# User time mostly: the clock is read once per 100k iterations (reading it is a system call).
BURN = (
    "import time\nt = time.process_time()\n"
    "while time.process_time() - t < {s}:\n    for _ in range(100_000): pass\n"
)


def _cpu() -> float:
    return tree_cpu_seconds()[0]  # user time: what the burn spends


def test_a_live_child_s_cpu_counts_and_stays_counted_once_it_is_reaped() -> None:
    before = _cpu()
    code = BURN.format(s=0.15) + "import sys; sys.stdout.write('ok'); sys.stdout.flush(); input()"
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert child.stdout is not None and child.stdout.read(2) == b"ok"
        alive = _cpu()  # the child is still running: read from /proc
        assert alive - before >= 0.13
    finally:
        child.communicate(b"\n", timeout=10)
    reaped = _cpu()  # now in RUSAGE_CHILDREN, not counted twice
    assert alive - 0.01 <= reaped <= alive + 0.25


def test_a_grandchild_reaped_by_its_live_parent_counts() -> None:
    before = _cpu()
    grandchild = f"subprocess.run([sys.executable, '-c', {BURN.format(s=0.15)!r}], check=True)"
    code = (
        "import subprocess, sys\n" + grandchild + "\nsys.stdout.write('ok'); sys.stdout.flush()\n"
        "input()"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert child.stdout is not None and child.stdout.read(2) == b"ok"
        assert _cpu() - before >= 0.13  # in the live child's cutime
    finally:
        child.communicate(b"\n", timeout=10)
    assert _cpu() - before >= 0.13


def test_a_stage_reports_its_cpu_split_and_summed() -> None:
    stage = StageResult("stream", seconds=2.0, amounts={"rows": 10})
    stage.cpu_user_seconds, stage.cpu_system_seconds = 1.25, 0.5
    out = stage.as_dict()
    assert out["cpu_seconds"] == 1.75
    assert out["cpu_user_seconds"] == 1.25 and out["cpu_system_seconds"] == 0.5
    assert out["rows"] == 10 and out["rows_per_s"] == 5.0
