"""``tenpo serve gateway|api|iot`` exit 0 on SIGTERM and on SIGINT (real processes).

The gateway and the API share ``serve_one`` (SIGTERM to one, SIGINT to the other), the IoT
subscriber has its own loop (both signals). The four servers start at once (the start-up,
mostly imports, is what takes time), each on its own port or client id; each gets its signal
once it serves, must exit 0 within 30 s, and frees its port.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests import _services

pytestmark = [pytest.mark.slow, pytest.mark.integration]

TENPO = str(Path(sys.executable).parent / "tenpo")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(what: str, port: int, stats: Path) -> bool:
    if what == "iot":  # the subscriber writes its counters once it runs
        return stats.exists()
    with contextlib.suppress(httpx.TransportError):
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    return False


def test_servers_stop_cleanly_on_sigterm_and_sigint(tmp_path: Path) -> None:
    host, mqtt_port, _ = _services.mqtt_broker()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENPO_")}
    env |= {"TENPO_DATA_DIR": str(tmp_path / "data"), "TENPO_MQTT_HOST": host,
            "TENPO_MQTT_PORT": str(mqtt_port), "COLUMNS": "200"}  # fmt: skip
    # One control plane, migrated before the servers race to open it.
    subprocess.run([TENPO, "admin", "migrate"], env=env, check=True, capture_output=True)
    procs = []
    for what, sig in (
        ("gateway", signal.SIGTERM),
        ("api", signal.SIGINT),
        ("iot", signal.SIGTERM),
        ("iot", signal.SIGINT),
    ):
        port = _free_port()
        stats = tmp_path / f"{what}-{sig.name}.json"
        if what == "iot":
            args = ["iot", "--no-late", "--stats-file", str(stats)]
            extra = {"TENPO_MQTT_CLIENT_ID": f"tenpo-signals-{os.getpid()}-{sig.name}"}
        else:
            args, extra = [what, "--host", "127.0.0.1", "--port", str(port)], {}
        log = (tmp_path / f"{what}-{sig.name}.log").open("w")
        proc = subprocess.Popen(
            [TENPO, "serve", *args], env=env | extra, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        procs.append((what, sig, port, stats, proc))

    def output(what: str, sig: signal.Signals) -> str:
        return (tmp_path / f"{what}-{sig.name}.log").read_text()

    try:
        pending = list(procs)
        deadline = time.monotonic() + 120
        while pending:
            for item in list(pending):
                what, sig, port, stats, proc = item
                assert proc.poll() is None, f"serve {what} exited early:\n{output(what, sig)}"
                if _ready(what, port, stats):
                    proc.send_signal(sig)
                    pending.remove(item)
            assert time.monotonic() < deadline, f"not serving after 120 s: {pending}"
            time.sleep(0.1)
        for what, sig, port, _, proc in procs:
            try:
                code = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pytest.fail(f"serve {what} still running 30 s after {sig.name}")
            assert code == 0, f"serve {what} exited {code} on {sig.name}:\n{output(what, sig)}"
            if what != "iot":
                with socket.socket() as s:  # the port is free again
                    s.bind(("127.0.0.1", port))
    finally:
        for *_, proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
