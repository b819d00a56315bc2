"""Start test-server stand-ins that are missing (``make services``); prints their URLs."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import _services  # noqa: E402

if __name__ == "__main__":
    # Only report: tests start stand-ins themselves, per session, when a server is missing.
    for name, port in (("PostgreSQL", 5432), ("NATS", 4222), ("Mosquitto", 1883)):
        state = "up" if _services.reachable("127.0.0.1", port) else "missing (tests start one)"
        sys.stdout.write(f"{name:<10} 127.0.0.1:{port}  {state}\n")
