"""Datalake: zones, key layout, atomic puts, and the landing zone that registers objects."""

from tenpo.lake.base import FsspecLake, Lake, open_lake
from tenpo.lake.keys import (
    artifact_key,
    landing_key,
    parse_partition,
    quarantine_key,
    table_key,
    table_prefix,
    video_key,
)
from tenpo.lake.landing import Landed, LandingZone, ObjectRegistered

__all__ = [
    "FsspecLake",
    "Lake",
    "Landed",
    "LandingZone",
    "ObjectRegistered",
    "artifact_key",
    "landing_key",
    "open_lake",
    "parse_partition",
    "quarantine_key",
    "table_key",
    "table_prefix",
    "video_key",
]
