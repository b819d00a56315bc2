"""The dashboard: static HTML/JS/CSS served under ``/app/`` (no build step at run time).

The chart library is a file under ``static/vendor/`` copied from the npm package by
``make web``; nothing is loaded from a CDN, so the dashboard works offline.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "static"


def mount_dashboard(app: FastAPI) -> None:
    """Serve the dashboard at ``/app/`` and redirect ``/`` and ``/app`` to it."""

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/app/", status_code=307)

    @app.get("/app", include_in_schema=False)
    def app_root() -> RedirectResponse:
        return RedirectResponse("/app/", status_code=307)

    app.mount("/app", StaticFiles(directory=STATIC_DIR, html=True), name="dashboard")
