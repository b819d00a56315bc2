"""The whole platform run in one process, stage by stage: ``tenpo demo`` and the scale
harness (``tenpo bench scale``) share these stages instead of each keeping its own copy."""

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

__all__ = [
    "DEMO_PASSWORD",
    "DEMO_SCOPES",
    "SOURCE_ROUTES",
    "compare_with_truth",
    "create_demo_users",
    "isolated_settings",
    "read_initiative_effects",
    "read_store_kpis",
    "read_truth",
    "register_chain",
    "send_files",
    "source_files",
]
