"""``tenpo demo`` stops cleanly on signals: while serving (SIGTERM, SIGINT: exit 0) and while
still working (SIGTERM: servers and connections closed, exit 143)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tenpo.core.settings import Settings
from tenpo.flow import DemoInterrupted, DemoObserver, run_demo

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _demo(data_dir: Path, port: int, *args: str) -> subprocess.Popen[str]:
    """``tenpo demo ARGS`` in its own process (no MQTT), its output on ``stdout``."""
    env = {
        **os.environ,
        "TENPO_DATA_DIR": str(data_dir),
        "TENPO_API_PORT": str(port),
        "TENPO_MQTT_ENABLED": "false",
        "COLUMNS": "200",
    }
    tenpo = str(Path(sys.executable).parent / "tenpo")
    return subprocess.Popen(
        [tenpo, "demo", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _until_serving(proc: subprocess.Popen[str], deadline: float) -> list[str]:
    """``proc``'s output up to the line saying it serves (fails if it ends before)."""
    assert proc.stdout is not None
    output: list[str] = []
    for line in proc.stdout:
        output.append(line)
        if "SIGTERM to stop" in line:
            return output
        assert time.monotonic() < deadline, "".join(output)
    pytest.fail("demo ended before serving:\n" + "".join(output))


def test_serving_demo_stops_on_sigterm_and_on_sigint(tmp_path: Path) -> None:
    # One demo per signal, both started at once (each its own data dir and port): the
    # demos' start-up overlaps instead of running one after the other.
    sigs = (signal.SIGTERM, signal.SIGINT)
    ports = [_free_port() for _ in sigs]
    procs = [
        _demo(tmp_path / sig.name, port, "--stores", "2", "--days", "2")
        for sig, port in zip(sigs, ports, strict=True)
    ]
    try:
        deadline = time.monotonic() + 240
        outputs = [_until_serving(proc, deadline) for proc in procs]
        for sig, proc, port, output in zip(sigs, procs, ports, outputs, strict=True):
            proc.send_signal(sig)
            try:
                rest, _ = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                pytest.fail(f"demo did not stop within 30 s of {sig.name}:\n" + "".join(output))
            assert proc.returncode == 0, f"{sig.name}:\n" + "".join(output) + rest
            with socket.socket() as s:  # the API's port is free again
                s.bind(("127.0.0.1", port))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


class _SignalAt(DemoObserver):
    """Sends the process ``sig`` when the stage whose description starts with ``at`` begins."""

    def __init__(self, at: str, sig: signal.Signals = signal.SIGTERM) -> None:
        self.at, self.sig = at, sig
        self.stages: list[str] = []

    @contextlib.contextmanager
    def stage(self, description: str) -> Iterator[None]:
        self.stages.append(description)
        if description.startswith(self.at):
            os.kill(os.getpid(), self.sig)
            time.sleep(30)  # the handler raises here, on the main thread
            pytest.fail("the signal did not stop the demo")
        yield


def _open_files_under(root: Path) -> list[str]:
    found = []
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith(str(root)):
                found.append(target)
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc")
def test_sigterm_while_working_cleans_up_and_raises(settings: Settings) -> None:
    """SIGTERM before serving (here: while the streamer loads) stops the gateway's server
    thread, closes the bus, streamer and control plane, restores the handlers, and raises."""
    settings = settings.model_copy(update={"mqtt_enabled": False})
    before = {t.ident for t in threading.enumerate()}
    handler = signal.getsignal(signal.SIGTERM)
    observer = _SignalAt("streamer")
    with pytest.raises(DemoInterrupted) as stopped:
        run_demo(settings, stores=2, days=1, seed=5, observer=observer)
    assert stopped.value.signum == signal.SIGTERM
    assert observer.stages[-1].startswith("streamer")  # it got that far, and no further
    left = [t.name for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert not [n for n in left if n.startswith("uvicorn-")], left
    assert _open_files_under(settings.data_dir / "demo") == []
    assert signal.getsignal(signal.SIGTERM) is handler


def test_cli_demo_exits_143_on_sigterm_before_serving(tmp_path: Path) -> None:
    proc = _demo(tmp_path, _free_port(), "--no-serve", "--stores", "2", "--days", "30")
    assert proc.stdout is not None
    output: list[str] = []
    for line in proc.stdout:  # past the simulator: servers and connections are open
        output.append(line)
        if line.startswith("simulated "):
            break
    else:
        pytest.fail("demo ended before simulating:\n" + "".join(output))
    proc.send_signal(signal.SIGTERM)
    try:
        rest, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("demo did not stop within 60 s of SIGTERM:\n" + "".join(output))
    assert proc.returncode == 128 + signal.SIGTERM, "".join(output) + rest
    assert "stopped by signal SIGTERM" in rest
