"""The whole platform run in one process, stage by stage: ``tenpo demo`` and the scale
harness (``tenpo bench scale``) share these stages instead of each keeping its own copy.

The names are imported on first use: ``tenpo`` imports :mod:`tenpo.flow.demo` to register
``tenpo demo``, and the stages (simulator, POS vendors) cost a third of a second to import.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tenpo.flow.demo import DemoInterrupted, DemoObserver, DemoResult, run_demo
    from tenpo.flow.stages import (
        DEMO_PASSWORD,
        DEMO_SCOPES,
        SOURCE_ROUTES,
        compare_with_truth,
        create_demo_users,
        isolated_settings,
        read_initiative_effects,
        read_store_kpis,
        read_truth,
        register_chain,
        send_files,
        source_files,
    )

_DEMO = ("DemoInterrupted", "DemoObserver", "DemoResult", "run_demo")

__all__ = [
    "DEMO_PASSWORD",
    "DEMO_SCOPES",
    "SOURCE_ROUTES",
    "DemoInterrupted",
    "DemoObserver",
    "DemoResult",
    "compare_with_truth",
    "create_demo_users",
    "isolated_settings",
    "read_initiative_effects",
    "read_store_kpis",
    "read_truth",
    "register_chain",
    "run_demo",
    "send_files",
    "source_files",
]


def __getattr__(name: str) -> Any:
    """The names of ``__all__``, from :mod:`tenpo.flow.demo` or :mod:`tenpo.flow.stages`."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = import_module("tenpo.flow.demo" if name in _DEMO else "tenpo.flow.stages")
    return getattr(module, name)
