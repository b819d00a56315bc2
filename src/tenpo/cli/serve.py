"""`tenpo serve` commands: the ingest gateway, the read API, the IoT subscriber, or all."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Generator
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn

from tenpo.cli._common import console, handles_errors, settings
from tenpo.core.errors import ConfigError
from tenpo.core.settings import Settings

log = logging.getLogger(__name__)

app = typer.Typer(no_args_is_help=True)

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

HostOption = typer.Option(None, "--host", help="Interface to listen on (default from settings).")


@app.command("gateway")
@handles_errors
def gateway(
    host: str | None = HostOption,
    port: int | None = typer.Option(
        None, "--port", min=1, max=65535, help="Port (default: settings.gateway_port, 8001)."
    ),
) -> None:
    """Run the ingest gateway (POS, device and visitor-event uploads)."""
    from tenpo.gateway import create_app

    s = settings()
    host, port = host or s.gateway_host, port or s.gateway_port
    console.print(f"gateway on http://{host}:{port} (lake {s.lake_root})")
    serve_one(create_app(s), host, port, s)


@app.command("api")
@handles_errors
def api(
    host: str | None = HostOption,
    port: int | None = typer.Option(
        None, "--port", min=1, max=65535, help="Port (default: settings.api_port, 8000)."
    ),
) -> None:
    """Run the read API and dashboard."""
    from tenpo.api import create_app

    s = settings()
    host, port = host or s.api_host, port or s.api_port
    console.print(f"API on http://{host}:{port}")
    serve_one(create_app(s), host, port, s)


@app.command("iot")
@handles_errors
def iot(
    no_late: bool = typer.Option(False, "--no-late", help="Do not run the late-data monitor."),
    stats_file: Annotated[
        Path | None,
        typer.Option("--stats-file", help="Keep the subscriber's counters (JSON) in this file."),
    ] = None,
) -> None:
    """Run the MQTT subscriber (devices → landing zone) and the late-data monitor."""
    from tenpo.iot.service import IotService
    from tenpo.streamer import stop_on_signals

    s = settings()
    service = IotService(s, late=not no_late)
    topic = f"{s.mqtt_topic_prefix}/+/devices/+/events"
    console.print(f"IoT subscriber on mqtt://{s.mqtt_host}:{s.mqtt_port} ({topic}, QoS 1)")
    try:
        with stop_on_signals() as stop:
            service.start(stop)
            while not stop.wait(0.2):
                if stats_file is not None:
                    service.write_stats(stats_file)
            service.join()
            if stats_file is not None:
                service.write_stats(stats_file)
    finally:
        service.close()


@app.command("all")
@handles_errors
def all_(
    host: str | None = typer.Option(
        None, "--host", help="Interface for both servers (default: each one's setting)."
    ),
    gateway_port: int | None = typer.Option(None, "--gateway-port", min=1, max=65535),
    api_port: int | None = typer.Option(None, "--api-port", min=1, max=65535),
) -> None:
    """Run the gateway, the read API and the streamer in one process (Ctrl-C stops all)."""
    s = settings()
    asyncio.run(
        serve_all(
            s,
            gateway_host=host or s.gateway_host,
            gateway_port=gateway_port or s.gateway_port,
            api_host=host or s.api_host,
            api_port=api_port or s.api_port,
        )
    )


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to its owner (two servers share one loop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def serve_one(app: Any, host: str, port: int, s: Settings | None = None) -> None:
    """Serve ``app`` on ``host:port`` until SIGINT or SIGTERM, then return (exit status 0).

    The first signal stops gracefully (open requests finish, the lifespan shuts down); a
    second one forces the server down. uvicorn's own handling re-raises the signal after
    shutting down, so the process would die by it (status 128 + signal) instead of exiting
    cleanly. ``ConfigError`` when the server cannot start (port in use, failing start-up).
    """
    server = _Server(_config(app, host, port, s))

    async def run() -> None:
        loop = asyncio.get_running_loop()

        def request_stop() -> None:
            if server.should_exit:
                server.force_exit = True
            server.should_exit = True

        for sig in _STOP_SIGNALS:
            loop.add_signal_handler(sig, request_stop)
        try:
            await server.serve()
        except SystemExit as exc:  # uvicorn exits when it cannot bind or start the app
            raise ConfigError(f"server on {host}:{port} failed to start") from exc
        finally:
            for sig in _STOP_SIGNALS:
                loop.remove_signal_handler(sig)

    asyncio.run(run())
    if not server.started:
        raise ConfigError(f"server on {host}:{port} failed to start")


async def serve_all(
    s: Settings, *, gateway_host: str, gateway_port: int, api_host: str, api_port: int
) -> None:
    """Serve the gateway and the API in this loop, with the streamer in a thread, until stopped.

    SIGINT/SIGTERM stop everything gracefully; a second SIGINT forces the servers down.
    """
    from tenpo.api import create_app as create_api
    from tenpo.bus import open_bus
    from tenpo.control import ControlPlane
    from tenpo.gateway import create_app as create_gateway
    from tenpo.lake import open_lake
    from tenpo.streamer import Streamer

    with contextlib.ExitStack() as cleanup:
        control = ControlPlane.open(s.control_db_url, auth_cache_ttl=s.auth_cache_seconds)
        cleanup.callback(control.dispose)
        lake = open_lake(s.lake_root)
        cleanup.callback(lake.close)  # its syncfs descriptor, after the servers stop
        # Separate bus connections: the streamer thread and the gateway's threadpool.
        gateway_bus = open_bus(s)
        cleanup.callback(gateway_bus.close)
        streamer_bus = open_bus(s)
        cleanup.callback(streamer_bus.close)
        streamer = Streamer(s, lake, streamer_bus, control.directory())
        cleanup.callback(streamer.close)

        servers = [
            _Server(
                _config(
                    create_gateway(s, control=control, lake=lake, bus=gateway_bus),
                    gateway_host,
                    gateway_port,
                    s,
                )
            ),
            _Server(_config(create_api(s, control=control), api_host, api_port, s)),
        ]
        stop = threading.Event()

        def request_stop() -> None:
            if stop.is_set():
                for server in servers:
                    server.force_exit = True
            stop.set()
            for server in servers:
                server.should_exit = True

        loop = asyncio.get_running_loop()
        for sig in _STOP_SIGNALS:
            loop.add_signal_handler(sig, request_stop)
            cleanup.callback(loop.remove_signal_handler, sig)

        streamer_thread = threading.Thread(
            target=streamer.run_forever, args=(stop,), name="streamer", daemon=True
        )
        streamer_thread.start()
        from tenpo.iot.mqtt import mqtt_wanted
        from tenpo.iot.service import IotService

        iot = IotService(s, control=control, lake=lake, mqtt=mqtt_wanted(s))
        cleanup.callback(iot.close)
        iot.start(stop)
        console.print(
            f"gateway on http://{gateway_host}:{gateway_port}, "
            f"API on http://{api_host}:{api_port}, streamer running. Ctrl-C to stop."
        )

        async def run(server: _Server) -> None:
            try:
                await server.serve()
            except SystemExit as exc:  # uvicorn exits when it cannot bind or start the app
                request_stop()
                cfg = server.config
                raise ConfigError(f"server on {cfg.host}:{cfg.port} failed to start") from exc

        try:
            await asyncio.gather(*(run(server) for server in servers))
        finally:
            request_stop()
            streamer_thread.join(timeout=60)
            iot.join()
            if streamer_thread.is_alive():
                log.warning("streamer did not stop within 60s")


def _config(app: Any, host: str, port: int, s: Settings | None = None) -> uvicorn.Config:
    from tenpo.gateway import server_config

    return server_config(app, host, port, settings=s)
