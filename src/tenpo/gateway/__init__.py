"""Ingest gateway: POS sales and masters, device events and visitor events over HTTP.

Every accepted body is kept as received in the lake's landing zone (``LandingZone.land``)
and announced on the bus; the answer is 202 with the object id. Errors are RFC 9457
problem JSON naming the cause.
"""

from tenpo.gateway._server import bound_port, serve_in_thread, server_config, stop_server
from tenpo.gateway.app import create_app
from tenpo.gateway.ingest import ControlPlane, Ingestor, IngestReceipt, Principal

__all__ = [
    "ControlPlane",
    "IngestReceipt",
    "Ingestor",
    "Principal",
    "create_app",
    "bound_port",
    "serve_in_thread",
    "server_config",
    "stop_server",
]
