"""`tenpo iot acl`: Mosquitto-compatible hashes, ACL per device, enforced by a real Mosquitto."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import stat
import subprocess
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner

from tenpo.cli import app
from tenpo.control import ControlPlane
from tenpo.core.errors import BadInput
from tenpo.core.settings import Settings
from tenpo.iot.acl import (
    DeviceUser,
    mosquitto_hash,
    verify_mosquitto_hash,
    write_mosquitto_files,
)
from tests._services import reachable

# Written by `mosquitto_passwd -b pw alice secret` (Mosquitto 2.0.11).
MOSQUITTO_LINE = (
    "alice:$7$101$Sxu8WQHbVIIFVlOk$Rcr5wd8+CumStnTRVK+Rbhd1yEA9FoXX94mBtFl4FuAWEcKuNW/"
    "wYZzUS32aLIggLX9Hx8wt5Xf3K6qluhlzag=="
)


def test_hash_format_matches_mosquitto_passwd() -> None:
    hashed = MOSQUITTO_LINE.split(":", 1)[1]
    assert verify_mosquitto_hash("secret", hashed)
    assert not verify_mosquitto_hash("Secret", hashed)
    salt = base64.b64decode(hashed.split("$")[3])
    assert mosquitto_hash("secret", salt=salt, iterations=101) == hashed
    ours = mosquitto_hash("pw")
    assert ours.startswith("$7$1000$") and verify_mosquitto_hash("pw", ours)
    with pytest.raises(BadInput, match="not a Mosquitto"):
        verify_mosquitto_hash("x", "$6$abc")
    with pytest.raises(BadInput, match="must not be empty"):
        mosquitto_hash("")


def test_files_keep_passwords_and_drop_removed_devices(tmp_path: Path) -> None:
    devices = [DeviceUser("t1", "pc-001"), DeviceUser("t2", "pc-001")]
    first = write_mosquitto_files(devices, tmp_path, subscriber_password="sub-secret")
    assert (first.devices, first.new_devices) == (2, 2)
    creds = json.loads(first.credentials.read_text())
    assert set(creds["devices"]) == {"t1/pc-001", "t2/pc-001"}
    assert stat.S_IMODE(first.credentials.stat().st_mode) == 0o600
    assert stat.S_IMODE(first.passwd.stat().st_mode) == 0o600
    acl = first.acl.read_text()
    assert "user tenpo-iot\ntopic read tenpo/+/devices/+/events" in acl
    assert "user t1/pc-001\ntopic write tenpo/t1/devices/pc-001/events" in acl
    assert "user t2/pc-001\ntopic write tenpo/t2/devices/pc-001/events" in acl
    passwd = dict(line.split(":", 1) for line in first.passwd.read_text().splitlines())
    assert verify_mosquitto_hash(creds["devices"]["t1/pc-001"], passwd["t1/pc-001"])
    assert verify_mosquitto_hash("sub-secret", passwd["tenpo-iot"])
    assert "allow_anonymous false" in first.conf.read_text()

    again = write_mosquitto_files([devices[0], DeviceUser("t1", "pc-002")], tmp_path)
    assert (again.devices, again.new_devices) == (2, 1)
    creds2 = json.loads(again.credentials.read_text())
    assert creds2["devices"]["t1/pc-001"] == creds["devices"]["t1/pc-001"]
    assert "t2/pc-001" not in creds2["devices"] and "t2/pc-001" not in again.acl.read_text()
    assert creds2["subscriber"]["password"] == "sub-secret"


def test_cli_writes_files_for_registered_devices(settings: Settings, tmp_path: Path) -> None:
    control = ControlPlane.open(settings.control_db_url)
    control.create_tenant("acme", "Acme")
    store = control.create_store("acme", "S1", "Store 1")
    control.create_device("acme", "pc-1", store.store_id, "people_counter")
    control.create_device("acme", "tof-1", store.store_id, "tof_camera", zones=("a",))
    control.create_device("acme", "cam-1", store.store_id, "rgb_camera")
    control.dispose()
    result = CliRunner().invoke(app, ["iot", "acl", "--out", str(tmp_path / "mq")])
    assert result.exit_code == 0, result.output
    assert "2 device(s) (2 new)" in result.output
    creds = json.loads((tmp_path / "mq" / "credentials.json").read_text())
    assert sorted(creds["devices"]) == ["acme/pc-1", "acme/tof-1"]  # cameras upload over HTTP


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists(),
                    reason="needs the mosquitto binary")  # fmt: skip
def test_mosquitto_enforces_the_acl(tmp_path: Path) -> None:
    files = write_mosquitto_files(
        [DeviceUser("t1", "pc-001"), DeviceUser("t2", "pc-002")], tmp_path, subscriber_user="sub"
    )
    creds = json.loads(files.credentials.read_text())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = tmp_path / "broker.conf"
    conf.write_text(
        files.conf.read_text().replace("persistence true\n", "")
        + f"listener {port} 127.0.0.1\n"
        # Started as root, Mosquitto drops to the mosquitto user, which cannot read our 0600
        # files (production: chown them to that user).
        + ("user root\n" if os.geteuid() == 0 else "")
    )
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    broker = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not reachable("127.0.0.1", port):
            assert time.monotonic() < deadline and broker.poll() is None, "mosquitto did not start"
            time.sleep(0.05)
        got: list[str] = []

        def client(user: str, password: str) -> mqtt.Client:
            c = mqtt.Client(
                callback_api_version=CallbackAPIVersion.VERSION2,
                client_id=f"c-{uuid.uuid4().hex[:6]}",
                protocol=mqtt.MQTTv5,
            )
            c.username_pw_set(user, password)
            return c

        sub = client("sub", creds["subscriber"]["password"])
        sub.on_message = lambda _c, _u, m: got.append(m.topic)
        sub.connect("127.0.0.1", port)
        sub.subscribe("tenpo/+/devices/+/events", qos=1)
        sub.loop_start()
        dev = client("t1/pc-001", creds["devices"]["t1/pc-001"])
        dev.connect("127.0.0.1", port)
        dev.loop_start()
        time.sleep(0.3)
        dev.publish("tenpo/t2/devices/pc-002/events", b"{}", qos=1).wait_for_publish(5)
        dev.publish("tenpo/t1/devices/pc-002/events", b"{}", qos=1).wait_for_publish(5)
        dev.publish("tenpo/t1/devices/pc-001/events", b"{}", qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        assert got == ["tenpo/t1/devices/pc-001/events"]  # only its own topic got through
        intruder = client("t1/pc-001", "wrong-password")
        connected: list[bool] = []
        intruder.on_connect = lambda _c, _u, _f, rc, _p: connected.append(not rc.is_failure)
        intruder.connect("127.0.0.1", port)
        intruder.loop_start()
        deadline = time.monotonic() + 5
        while not connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert connected == [False]
        for c in (sub, dev, intruder):
            c.disconnect()
            c.loop_stop()
    finally:
        broker.terminate()
        broker.wait(5)
