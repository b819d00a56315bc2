"""``tenpo.core`` is the ground floor: importing it loads nothing else of tenpo, nor FastAPI."""

from __future__ import annotations

import subprocess
import sys


def test_core_imports_nothing_of_tenpo_nor_fastapi() -> None:
    code = (
        "import sys, tenpo.core, tenpo.core.preetl, tenpo.core.bodies, tenpo.core.checks, "
        "tenpo.core.errors, tenpo.core.ids, tenpo.core.logging, tenpo.core.settings\n"
        "mods = sorted(m for m in sys.modules if m.startswith('tenpo.') "
        "and not m.startswith('tenpo.core') or m == 'fastapi')\n"
        "print(','.join(mods))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
