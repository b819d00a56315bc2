"""Logging setup: one call at process start (CLI, servers); modules use ``logging.getLogger``."""

from __future__ import annotations

import logging

from rich.logging import RichHandler


def setup_logging(level: str = "INFO") -> None:
    """Route every ``tenpo.*`` logger through Rich at ``level``; quiet noisy libraries."""
    logging.basicConfig(
        level=level.upper(),
        format="%(name)s: %(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(rich_tracebacks=True, show_path=False)],
        force=True,
    )
    for noisy in ("httpx", "httpcore", "uvicorn.access", "alembic.runtime.migration", "nats"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
