"""Mosquitto authentication and ACL files for the registered devices (`tenpo iot acl`).

Each active device gets a broker user ``{tenant}/{device_id}`` that may only *publish* to its
own topic ``{prefix}/{tenant}/devices/{device_id}/events``; the subscriber user may only *read*
every device topic. So a device of one tenant can neither write as another device nor as
another tenant, which the subscriber checks again on every message.

Files written into the output folder:

* ``passwd`` — ``user:$7$…`` lines: PBKDF2-SHA512 hashes in the format of ``mosquitto_passwd``
  (``$7$<iterations>$<base64 salt>$<base64 hash>``), readable by Mosquitto 2;
* ``acl`` — ``user`` / ``topic`` blocks;
* ``mosquitto.conf`` — a listener snippet using both, with the session and queue settings the
  subscriber needs (no anonymous access, persistence, a large per-session queue);
* ``credentials.json`` (mode 0600) — the clear-text passwords, to provision devices and the
  subscriber. Passwords already in it are kept when the files are written again, so
  re-running after registering a device only adds that device.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tenpo.core.errors import BadInput

__all__ = [
    "AclFiles",
    "DeviceUser",
    "device_username",
    "mosquitto_hash",
    "verify_mosquitto_hash",
    "write_mosquitto_files",
]

ITERATIONS = 1000
_SALT_BYTES = 12


def mosquitto_hash(
    password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS
) -> str:
    """``$7$…`` PBKDF2-SHA512 hash of ``password`` as ``mosquitto_passwd`` writes it."""
    if not password:
        raise BadInput("an MQTT password must not be empty")
    salt = salt if salt is not None else secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_mosquitto_hash(password: str, hashed: str) -> bool:
    """Whether ``password`` matches a ``$7$`` hash (also those written by mosquitto_passwd)."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7" or not parts[2].isdigit():
        raise BadInput(f"not a Mosquitto $7$ password hash: {hashed[:12]}…")
    salt, want = base64.b64decode(parts[3]), base64.b64decode(parts[4])
    got = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]))
    return hmac.compare_digest(got, want)


def device_username(tenant_id: str, device_id: str) -> str:
    """The broker user of a device: ``{tenant}/{device_id}`` (unique across tenants)."""
    return f"{tenant_id}/{device_id}"


@dataclass(frozen=True)
class DeviceUser:
    """A device to give broker access: its tenant and id."""

    tenant_id: str
    device_id: str


@dataclass(frozen=True)
class AclFiles:
    """Paths written by :func:`write_mosquitto_files` and how many devices they cover."""

    passwd: Path
    acl: Path
    conf: Path
    credentials: Path
    devices: int
    new_devices: int


def write_mosquitto_files(
    devices: Iterable[DeviceUser],
    out: Path,
    *,
    prefix: str = "tenpo",
    subscriber_user: str = "tenpo-iot",
    subscriber_password: str | None = None,
) -> AclFiles:
    """Write ``passwd``, ``acl``, ``mosquitto.conf`` and ``credentials.json`` into ``out``.

    Devices no longer listed lose their access; passwords of the others are kept.
    """
    out.mkdir(parents=True, exist_ok=True)
    creds_path = out / "credentials.json"
    old: dict[str, object] = {}
    if creds_path.exists():
        try:
            old = json.loads(creds_path.read_text())
        except ValueError as exc:
            raise BadInput(f"{creds_path} is not valid JSON: {exc}") from exc
    old_devices = old.get("devices") if isinstance(old.get("devices"), dict) else {}
    assert isinstance(old_devices, dict)
    old_sub = old.get("subscriber") if isinstance(old.get("subscriber"), dict) else {}
    assert isinstance(old_sub, dict)
    sub_password = subscriber_password or str(old_sub.get("password") or "") or _new_password()

    passwords: dict[str, str] = {}
    new = 0
    for d in sorted(set(devices), key=lambda d: (d.tenant_id, d.device_id)):
        user = device_username(d.tenant_id, d.device_id)
        if ":" in user or "\n" in user:
            raise BadInput(f"device user {user!r} cannot be written to a Mosquitto passwd file")
        known = old_devices.get(user)
        passwords[user] = known if isinstance(known, str) and known else _new_password()
        new += not (isinstance(known, str) and known)

    passwd_lines = [f"{subscriber_user}:{mosquitto_hash(sub_password)}"]
    passwd_lines += [f"{user}:{mosquitto_hash(pw)}" for user, pw in passwords.items()]
    acl_lines = [
        "# Written by `tenpo iot acl`: each device publishes only to its own topic.",
        f"user {subscriber_user}",
        f"topic read {prefix}/+/devices/+/events",
        "",
    ]
    for user in passwords:
        tenant, device = user.split("/", 1)
        acl_lines += [f"user {user}", f"topic write {prefix}/{tenant}/devices/{device}/events", ""]
    passwd, acl, conf = out / "passwd", out / "acl", out / "mosquitto.conf"
    _write(passwd, "\n".join(passwd_lines) + "\n", private=True)
    _write(acl, "\n".join(acl_lines))
    _write(
        conf,
        "# tenpo IoT: include from the broker's configuration (Mosquitto 2).\n"
        "per_listener_settings false\n"
        "allow_anonymous false\n"
        f"password_file {passwd.resolve()}\n"
        f"acl_file {acl.resolve()}\n"
        "# The subscriber's persistent session must outlive its restarts with every message.\n"
        "persistence true\n"
        "max_queued_messages 1000000\n"
        "max_inflight_messages 0\n",
    )
    creds = {
        "subscriber": {"username": subscriber_user, "password": sub_password},
        "devices": passwords,
        "topic": f"{prefix}/{{tenant}}/devices/{{device_id}}/events",
    }
    _write(creds_path, json.dumps(creds, indent=2) + "\n", private=True)
    return AclFiles(passwd, acl, conf, creds_path, len(passwords), new)


def _new_password() -> str:
    return secrets.token_urlsafe(24)


def _write(path: Path, text: str, *, private: bool = False) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)
