"""Shared CLI plumbing: settings, console, logging and error reporting."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console

from tenpo.core.errors import TenpoError
from tenpo.core.logging import setup_logging
from tenpo.core.settings import Settings, get_settings

console = Console()
err_console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")


def app_callback(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
) -> None:
    """tenpo: retail-store analytics data platform."""
    setup_logging("DEBUG" if verbose else get_settings().log_level)


def settings() -> Settings:
    """The process settings (validated on first use)."""
    return get_settings()


@contextmanager
def cli_errors() -> Iterator[None]:
    """Turn tenpo errors into a one-line message and exit code 2."""
    try:
        yield
    except TenpoError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from exc


def handles_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorator form of :func:`cli_errors` for commands."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with cli_errors():
            return fn(*args, **kwargs)

    return wrapper
