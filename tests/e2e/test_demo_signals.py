"""``tenpo demo`` while serving stops cleanly on SIGTERM and SIGINT (a real process)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serving_demo_stops_on_signal(tmp_path: Path, sig: signal.Signals) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "TENPO_DATA_DIR": str(tmp_path),
        "TENPO_API_PORT": str(port),
        "TENPO_MQTT_ENABLED": "false",
        "COLUMNS": "200",
    }
    tenpo = str(Path(sys.executable).parent / "tenpo")
    proc = subprocess.Popen(
        [tenpo, "demo", "--stores", "2", "--days", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    output: list[str] = []
    deadline = time.monotonic() + 240
    for line in proc.stdout:
        output.append(line)
        if "SIGTERM to stop" in line:
            break
        assert time.monotonic() < deadline, "".join(output)
    else:
        pytest.fail("demo ended before serving:\n" + "".join(output))
    proc.send_signal(sig)
    try:
        rest, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"demo did not stop within 30 s of {sig.name}:\n" + "".join(output))
    assert proc.returncode == 0, "".join(output) + rest
    with socket.socket() as s:  # the API's port is free again
        s.bind(("127.0.0.1", port))
