"""Settings: defaults under data_dir, environment overrides, tenpo.toml, strictness."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tenpo.core.settings import Settings


def test_defaults_live_under_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = Settings(data_dir=tmp_path / "d")
    assert s.lake_root == str((tmp_path / "d" / "lake").resolve())
    assert s.control_db_url == f"sqlite:///{(tmp_path / 'd' / 'control.db').resolve()}"
    assert s.datamart_db_url.endswith("/d/datamart.db")
    assert s.bus == "sqlite" and s.bus_path == tmp_path / "d" / "bus.db"


def test_environment_and_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tenpo.toml").write_text('bus = "nats"\napi_port = 9000\n')
    monkeypatch.setenv("TENPO_API_PORT", "9100")
    s = Settings()
    assert s.bus == "nats"  # from the file
    assert s.api_port == 9100  # the environment wins over the file


def test_unknown_and_invalid_values_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValidationError):
        Settings(bus="kafka")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Settings(api_port=0)
    (tmp_path / "tenpo.toml").write_text("no_such_setting = 1\n")
    with pytest.raises(ValidationError, match="no_such_setting"):
        Settings()
