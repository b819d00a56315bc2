"""TenpoResource reads its settings once and opens the lake once per instance."""

from __future__ import annotations

import pytest

from tenpo.core.settings import Settings
from tenpo.pipelines import TenpoResource


def test_settings_and_lake_are_built_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    resource = TenpoResource.from_settings(settings)
    first = resource.get_settings()
    monkeypatch.setenv("TENPO_LOG_LEVEL", "DEBUG")  # a later change is not re-read mid-run
    assert resource.get_settings() is first and first.data_dir == settings.data_dir.resolve()
    assert resource.open_lake() is resource.open_lake()
    assert TenpoResource.from_settings(settings).get_settings() is not first  # per instance
