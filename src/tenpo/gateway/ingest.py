"""What each ingest endpoint does, free of HTTP: check the body, check ownership, land it.

:class:`Ingestor` is called by the FastAPI routes with an authenticated principal and the raw
body. It raises :mod:`tenpo.core.errors` exceptions (the routes turn them into problem JSON)
and returns an :class:`IngestReceipt` for the 202 answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from tenpo.control.directory import Directory
from tenpo.core import checks as _checks
from tenpo.core.errors import Forbidden, NotFound
from tenpo.lake.landing import Landed, LandingZone
from tenpo.pos.vendors import JSON_UTF8, STORE_META, Vendor, registry, upload_store

if TYPE_CHECKING:
    from tenpo.pos.mapped import VendorMapping

log = logging.getLogger(__name__)
_ID_SHOWN = 64
_CAMERA_KIND = "rgb_camera"
"""The device kind whose visitor events (and video chunks) the gateway takes."""
"""Characters of an unknown id a 403 problem member repeats (ids are at most 64)."""

JSONL_UTF8 = "application/x-ndjson"

INLINE_BODY_BYTES = 256 * 1024
"""Bodies up to this size are checked and landed in the group committer's thread (no thread
hop); larger ones in a worker thread. The committer runs its works one after the other, and
a big body's checks take long (~1 s for 30 MB of POS JSON): inline, every other request of
the gateway, any tenant's, would wait for them."""


class Principal(Protocol):
    """The authenticated caller, as :class:`tenpo.control.ControlPlane` returns it."""

    @property
    def tenant_id(self) -> str: ...

    @property
    def key_id(self) -> str: ...

    def require(self, scope: str) -> None:
        """Raise :class:`tenpo.core.errors.Forbidden` naming ``scope`` unless held."""
        ...


class ControlPlane(Protocol):
    """The part of the control plane the gateway uses."""

    def authenticate(self, token: str) -> Principal:
        """The principal of a valid token; :class:`tenpo.core.errors.AuthError` otherwise."""
        ...

    def directory(self) -> Directory:
        """Cached tenant-scoped lookups of stores and devices (None for other tenants')."""
        ...


class IngestReceipt(BaseModel):
    """The 202 answer: where the body was kept, whether it is new, and what it holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    object_id: str = Field(description="Content hash or the sender's Idempotency-Key.")
    key: str = Field(description="Lake key under landing/ where the bytes are kept.")
    bytes: int = Field(ge=0, description="Size of the body as received.")
    created: bool = Field(description="False when this exact object was landed before.")
    counts: dict[str, int] = Field(
        default_factory=dict, description="Records found by the cheap checks, e.g. receipts."
    )


class Ingestor:
    """Checks and lands ingest bodies for authenticated principals."""

    def __init__(
        self,
        control: ControlPlane,
        landing: LandingZone,
        mappings: Mapping[str, VendorMapping] | None = None,
    ) -> None:
        self._control = control
        self.landing = landing
        self.mappings: dict[str, VendorMapping] = dict(mappings or {})
        self._registry = registry(self.mappings)

    # -- POS -------------------------------------------------------------------------------
    @property
    def registry(self) -> dict[str, Vendor]:
        """Every POS vendor accepted (:func:`tenpo.pos.vendors.registry`), by key."""
        return self._registry

    @property
    def vendors(self) -> tuple[str, ...]:
        """Every POS vendor accepted: the built-in ones and the declarative mappings."""
        return tuple(self._registry)

    @property
    def pos_sources(self) -> tuple[str, ...]:
        """The landing sources of every POS upload accepted (sales, then masters)."""
        sales = tuple(v.sales.source for v in self._registry.values())
        return sales + tuple(v.master.source for v in self._registry.values() if v.master)

    def check_vendor(self, vendor: str, kind: str) -> Vendor:
        """The vendor; :class:`NotFound` unless ``vendor`` accepts uploads of ``kind``."""
        found = self._registry.get(vendor)
        if found is None:
            raise NotFound(
                f"unknown POS vendor {vendor!r}; expected one of {', '.join(self.vendors)}",
                vendor=vendor,
            )
        if found.upload(kind) is None:
            senders = [v.key for v in self._registry.values() if v.upload(kind) is not None]
            raise NotFound(
                f"POS vendor {vendor!r} has no {kind} upload (only {', '.join(senders)} sends one)",
                vendor=vendor,
            )
        return found

    def pos_sales(
        self,
        principal: Principal,
        vendor: str,
        body: bytes,
        idempotency_key: str | None = None,
        store: str | None = None,
    ) -> IngestReceipt:
        """Land a vendor's native sales body after the cheap checks (and store ownership).

        ``store`` is the store code of a vendor whose body names none (its sales upload is
        ``store_from_upload``); it must be given for such a vendor, and only for one.
        """
        return _receipt(
            *self._pos_upload(principal, vendor, "sales", body, idempotency_key, store=store)
        )

    def pos_master(
        self, principal: Principal, vendor: str, body: bytes, idempotency_key: str | None = None
    ) -> IngestReceipt:
        """Land a vendor's POS master after the cheap checks (its store codes the tenant's)."""
        return _receipt(*self._pos_upload(principal, vendor, "master", body, idempotency_key))

    async def pos_sales_async(
        self,
        principal: Principal,
        vendor: str,
        body: bytes,
        idempotency_key: str | None = None,
        store: str | None = None,
    ) -> IngestReceipt:
        """:meth:`pos_sales` on the event loop (see :meth:`_landed_async`)."""
        return await self._landed_async(
            partial(self._pos_upload, store=store),
            principal, vendor, "sales", body, idempotency_key, size=len(body),
        )  # fmt: skip

    async def pos_master_async(
        self, principal: Principal, vendor: str, body: bytes, idempotency_key: str | None = None
    ) -> IngestReceipt:
        """:meth:`pos_master` on the event loop (see :meth:`_landed_async`)."""
        return await self._landed_async(
            self._pos_upload, principal, vendor, "master", body, idempotency_key, size=len(body)
        )

    def _pos_upload(
        self,
        principal: Principal,
        vendor: str,
        kind: str,
        body: bytes,
        idempotency_key: str | None,
        *,
        store: str | None = None,
        staged: bool = False,
    ) -> tuple[Landed, dict[str, int]]:
        upload = self.check_vendor(vendor, kind).upload(kind)
        assert upload is not None  # check_vendor refused the vendor otherwise
        code = upload_store(vendor, upload, store)
        _checks.require_body(body)
        checked = upload.check(body)
        codes = set(checked.store_codes) | ({code} if code else set())
        self._require_stores(principal.tenant_id, codes)
        meta = {"vendor": vendor, **({STORE_META: code} if code else {})}
        landed = self._land(
            principal,
            upload.source,
            body,
            upload.ext,
            upload.content_type,
            idempotency_key,
            meta,
            staged=staged,
            scope=f"store={code}" if code else None,
        )
        return landed, checked.counts

    # -- devices and video -----------------------------------------------------------------
    def iot_events(
        self, principal: Principal, body: bytes, idempotency_key: str | None = None
    ) -> IngestReceipt:
        """Land ``{"events": [...]}`` when every event's device is the tenant's."""
        return _receipt(*self._iot_events(principal, body, idempotency_key))

    async def iot_events_async(
        self, principal: Principal, body: bytes, idempotency_key: str | None = None
    ) -> IngestReceipt:
        """:meth:`iot_events` on the event loop (see :meth:`_landed_async`)."""
        return await self._landed_async(
            self._iot_events, principal, body, idempotency_key, size=len(body)
        )

    def _iot_events(
        self,
        principal: Principal,
        body: bytes,
        idempotency_key: str | None,
        *,
        staged: bool = False,
    ) -> tuple[Landed, dict[str, int]]:
        _checks.require_body(body)
        events = _checks.iot_events(_checks.parse_json(body))
        directory = self._control.directory()
        for device_id in sorted({str(e["device_id"]) for e in events}):
            _checks.require_text(device_id, "device_id")
            if directory.device(principal.tenant_id, device_id) is None:
                raise Forbidden(
                    f"device {_checks.shown(device_id)} is not registered to tenant"
                    f" {principal.tenant_id!r}",
                    device_id=device_id[:_ID_SHOWN],
                )
        landed = self._land(
            principal, "iot", body, "json", JSON_UTF8, idempotency_key, {}, staged=staged
        )
        return landed, {"events": len(events)}

    def visitor_events(
        self, principal: Principal, body: bytes, idempotency_key: str | None = None
    ) -> IngestReceipt:
        """Land a JSON Lines batch of visitor events as the video analyzer emits them, when
        every camera it names is a registered ``rgb_camera`` of the tenant."""
        return _receipt(*self._visitor_events(principal, body, idempotency_key))

    async def visitor_events_async(
        self, principal: Principal, body: bytes, idempotency_key: str | None = None
    ) -> IngestReceipt:
        """:meth:`visitor_events` on the event loop (see :meth:`_landed_async`)."""
        return await self._landed_async(
            self._visitor_events, principal, body, idempotency_key, size=len(body)
        )

    def _visitor_events(
        self,
        principal: Principal,
        body: bytes,
        idempotency_key: str | None,
        *,
        staged: bool = False,
    ) -> tuple[Landed, dict[str, int]]:
        _checks.require_body(body)
        events = _checks.jsonl_objects(body)
        # As devices: another tenant's (or an unknown) camera is refused here, not landed and
        # quarantined later. A line without a camera_id string is the Pre-ETL's to reject.
        cameras = {e["camera_id"] for e in events if isinstance(e.get("camera_id"), str)}
        self._require_cameras(principal.tenant_id, cameras)
        landed = self._land(
            principal,
            "visitor_events",
            body,
            "jsonl",
            JSONL_UTF8,
            idempotency_key,
            {},
            staged=staged,
        )
        return landed, {"events": len(events)}

    async def _landed_async(
        self, upload: Callable[..., tuple[Landed, dict[str, int]]], *args: Any, size: int
    ) -> IngestReceipt:
        """Run ``upload`` (checks, directory look-ups, unsynced writes: the blocking part)
        inside the landing zone's next group-commit round and await that round on the event
        loop (:meth:`LandingZone.run_staged`): the answer comes once the body is durable and
        announced; no thread waits for the round, and no thread hop is paid per request. A
        body over :data:`INLINE_BODY_BYTES` (``size``) is staged in a worker thread instead,
        so its long checks hold up nobody else's request."""
        landed, counts = await self.landing.run_staged(
            partial(upload, *args, staged=True), inline=size <= INLINE_BODY_BYTES
        )
        return _receipt(landed, counts)

    # -- helpers ---------------------------------------------------------------------------
    def _require_stores(self, tenant_id: str, codes: set[str]) -> None:
        directory = self._control.directory()
        for code in sorted(codes):
            _checks.require_text(code, "store code")
            if directory.store_by_code(tenant_id, code) is None:
                raise Forbidden(
                    f"store code {_checks.shown(code)} is not a store of tenant {tenant_id!r}",
                    store_code=code[:_ID_SHOWN],
                )

    def _require_cameras(self, tenant_id: str, camera_ids: set[str]) -> None:
        directory = self._control.directory()
        for camera_id in sorted(camera_ids):
            _checks.require_text(camera_id, "camera_id")
            device = directory.device(tenant_id, camera_id)
            if device is None or device.kind != _CAMERA_KIND:
                raise Forbidden(
                    f"camera {_checks.shown(camera_id)} is not a registered {_CAMERA_KIND} of"
                    f" tenant {tenant_id!r}",
                    camera_id=camera_id[:_ID_SHOWN],
                )

    def _land(
        self,
        principal: Principal,
        source: str,
        body: bytes,
        ext: str,
        content_type: str,
        idempotency_key: str | None,
        meta: dict[str, str],
        *,
        staged: bool = False,
        scope: str | None = None,
    ) -> Landed:
        land = self.landing.stage if staged else self.landing.land
        landed = land(
            source,
            principal.tenant_id,
            body,
            ext,
            idempotency_key=idempotency_key or None,
            content_type=content_type,
            meta={"key_id": principal.key_id, **meta},
            scope=scope,
        )
        log.info(
            "%s %s (%d bytes, new=%s, key %s)",
            "staged" if staged else "landed",
            landed.event.key,
            landed.event.size,
            landed.created,
            principal.key_id,
        )
        return landed


def _receipt(landed: Landed, counts: dict[str, int]) -> IngestReceipt:
    event = landed.event
    return IngestReceipt(
        object_id=event.object_id,
        key=event.key,
        bytes=event.size,
        created=landed.created,
        counts=counts,
    )
