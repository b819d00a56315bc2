"""Video: recorder, analyzer pipeline and the visitor-event Pre-ETL (``events``)."""

from __future__ import annotations

from tenpo.video.events import VisitorEvent, VisitorEventsPreEtl

__all__ = ["VisitorEvent", "VisitorEventsPreEtl"]
