"""`tenpo video` commands: record a camera, analyze recorded chunks, audit the counts."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from tenpo.cli._common import console, handles_errors, settings
from tenpo.core.errors import BadInput, NotFound
from tenpo.core.settings import Settings

if TYPE_CHECKING:
    from tenpo.video.bulk import Camera
    from tenpo.video.events import VisitorEvent

log = logging.getLogger(__name__)

app = typer.Typer(no_args_is_help=True)


def resolve_camera(cfg: Settings, camera_id: str, tenant_id: str | None) -> Camera:
    """The registered rgb_camera (its store's timezone, its entrance line from ``config``)."""
    from tenpo.control import ControlPlane
    from tenpo.video.bulk import Camera
    from tenpo.video.enrol import StaffMatcher
    from tenpo.video.line import EntranceLine

    plane = ControlPlane.open(cfg.control_db_url)
    try:
        tenants = [tenant_id] if tenant_id else [t.tenant_id for t in plane.list_tenants()]
        found = [
            (t, d)
            for t in tenants
            for d in plane.list_devices(t)
            if d.device_id == camera_id and d.kind == "rgb_camera"
        ]
        if not found:
            raise NotFound(
                f"no rgb_camera {camera_id!r} is registered"
                + (f" for tenant {tenant_id!r}" if tenant_id else "")
            )
        if len(found) > 1:
            raise BadInput(f"camera {camera_id!r} exists in several tenants: pass --tenant")
        tenant, device = found[0]
        store = plane.get_store(tenant, device.store_id)
        staff = StaffMatcher(plane.staff_descriptors(tenant, store.store_id))
        if len(staff):
            log.info("camera %s: %d enrolled staff of store %s", camera_id, len(staff), store.code)
        return Camera(
            tenant, camera_id, store.timezone, EntranceLine.from_config(device.config), staff
        )
    finally:
        plane.dispose()


@app.command("record")
@handles_errors
def record(
    source: str = typer.Argument(..., help="RTSP/HTTP URL, device index (0) or a video file."),
    camera: str = typer.Option(..., "--camera", help="Registered rgb_camera id."),
    tenant: str | None = typer.Option(None, "--tenant", help="Tenant (default: the camera's)."),
    chunk_seconds: float | None = typer.Option(None, "--chunk-seconds", min=0.1),
    analyze: bool = typer.Option(
        False, "--analyze", help="Streaming mode: analyze frames as they are recorded."
    ),
    max_frames: int | None = typer.Option(None, "--max-frames", min=1, help="Stop after N."),
    upload: str | None = typer.Option(
        None,
        "--upload",
        help="Edge mode: send each closed chunk to this gateway URL (spooled until accepted).",
    ),
    api_key: str | None = typer.Option(
        None, "--api-key", envvar="TENPO_API_KEY", help="video:write key for --upload."
    ),
    spool_dir: str | None = typer.Option(
        None, "--spool", help="Upload spool folder (default data_dir/video-spool/CAMERA)."
    ),
    spool_mb: int = typer.Option(4096, "--spool-mb", min=1, help="Spool bound, MiB."),
    drain_seconds: float = typer.Option(
        30.0, "--drain-seconds", min=0, help="After recording, keep uploading this long."
    ),
) -> None:
    """Record a camera at 15 FPS into MP4 chunks in the lake (video/...), or with --upload
    into a local spool that a background uploader sends to the gateway."""
    from tenpo.bus import open_bus
    from tenpo.lake import open_lake
    from tenpo.lake.landing import LandingZone
    from tenpo.streamer import stop_on_signals
    from tenpo.video.bulk import build_analyzer, land_events
    from tenpo.video.recorder import OpenCvSource, Recorder

    cfg = settings()
    if upload:
        if not api_key:
            raise BadInput("--upload needs --api-key (or TENPO_API_KEY): a video:write key")
        if not upload.startswith(("http://", "https://")):
            raise BadInput(f"--upload must be an http(s) URL, got {upload!r}")
        if analyze:
            raise BadInput("--upload and --analyze exclude each other: the cloud analyzes")
        _record_upload(
            cfg,
            source,
            camera,
            tenant,
            chunk_seconds,
            max_frames,
            upload,
            api_key,
            Path(spool_dir) if spool_dir else cfg.data_dir / "video-spool" / camera,
            spool_mb,
            drain_seconds,
        )
        return
    cam = resolve_camera(cfg, camera, tenant)
    lake, bus = open_lake(cfg.lake_root), open_bus(cfg)
    analyzer = None
    if analyze:
        from tenpo.features import open_feature_store

        analyzer = build_analyzer(cam, open_feature_store(cfg), detect_every=cfg.video_detect_every)
    rec = Recorder(
        lake=lake,
        bus=bus,
        tenant_id=cam.tenant_id,
        camera_id=cam.camera_id,
        timezone=cam.timezone,
        fps=cfg.video_fps,
        chunk_seconds=chunk_seconds or cfg.video_chunk_seconds,
        retention_days=cfg.video_retention_days,
        on_frame=analyzer.process if analyzer else None,
    )
    src: str | int = int(source) if source.isdigit() else source
    with stop_on_signals() as stop:  # SIGINT/SIGTERM: close the open chunk, then exit 0
        chunks = rec.run(lambda: OpenCvSource(src), max_frames=max_frames, stop=stop)
    console.print(f"recorded {sum(c.frames for c in chunks)} frames in {len(chunks)} chunks")
    if analyzer is not None:
        from zoneinfo import ZoneInfo

        analyzer.finish()
        events = analyzer.events
        by_day: dict[date, list[VisitorEvent]] = {}
        for e in events:
            by_day.setdefault(e.ts.astimezone(ZoneInfo(cam.timezone)).date(), []).append(e)
        landing = LandingZone(lake, bus, cam.timezone)
        for day, evs in by_day.items():
            land_events(landing, cam.tenant_id, evs, day)
        console.print(f"landed {len(events)} visitor events")


def _record_upload(
    cfg: Settings,
    source: str,
    camera: str,
    tenant: str | None,
    chunk_seconds: float | None,
    max_frames: int | None,
    url: str,
    api_key: str,
    spool_dir: Path,
    spool_mb: int,
    drain_seconds: float,
) -> None:
    """Edge recording: chunks into the spool, a thread uploading them as they close.

    The edge box need not hold the control plane: the camera's tenant and timezone are the
    gateway's business (it files the chunk by its key's tenant and the camera's store).
    """
    import threading

    import httpx

    from tenpo.streamer import stop_on_signals
    from tenpo.video.recorder import OpenCvSource, Recorder
    from tenpo.video.spool import ChunkSpool, ChunkUploader

    spool = ChunkSpool(spool_dir, max_bytes=spool_mb * 1024 * 1024)
    waiting = spool.status()
    if waiting["pending"]:
        console.print(f"spool {spool_dir}: {waiting['pending']} chunks from an earlier run")
    rec = Recorder(
        lake=None,
        bus=None,
        tenant_id=tenant or "",
        camera_id=camera,
        fps=cfg.video_fps,
        chunk_seconds=chunk_seconds or cfg.video_chunk_seconds,
        spool=spool,
    )
    stop = threading.Event()
    with httpx.Client(base_url=url.rstrip("/"), timeout=120) as client:
        uploader = ChunkUploader(spool, client, camera, api_key)
        thread = threading.Thread(
            target=uploader.run, args=(stop,), kwargs={"drain_seconds": drain_seconds}
        )
        thread.start()
        try:
            src: str | int = int(source) if source.isdigit() else source
            with stop_on_signals() as stopped:  # SIGINT/SIGTERM: close the chunk, drain, exit 0
                chunks = rec.run(lambda: OpenCvSource(src), max_frames=max_frames, stop=stopped)
        finally:
            stop.set()
            thread.join()
    status = spool.status()
    console.print(
        f"recorded {sum(c.frames for c in chunks)} frames in {len(chunks)} chunks;"
        f" uploaded {uploader.uploaded}, waiting {status['pending']} ({status['bytes']} bytes),"
        f" dropped {spool.dropped_now} now ({status['dropped']} ever),"
        f" refused by the gateway {status['rejected']}"
    )
    if status["pending"]:
        console.print(
            f"[yellow]{status['pending']} chunks stay in {spool_dir}; the next"
            " `tenpo video record --upload` sends them first[/]"
        )


@app.command("analyze")
@handles_errors
def analyze(
    camera: str = typer.Option(..., "--camera", help="Registered rgb_camera id."),
    day: str | None = typer.Option(None, "--date", help="Business date YYYY-MM-DD."),
    tenant: str | None = typer.Option(None, "--tenant", help="Tenant (default: the camera's)."),
    detector: str = typer.Option("hog", "--detector", help="hog (default) or haar."),
    from_bus: bool = typer.Option(
        False, "--from-bus", help="Analyze chunks announced on the bus instead of a date."
    ),
) -> None:
    """Bulk mode: analyze recorded chunks and land visitor events (re-processing is safe)."""
    from tenpo.bus import open_bus
    from tenpo.features import open_feature_store
    from tenpo.lake import open_lake
    from tenpo.lake.landing import LandingZone
    from tenpo.video.bulk import analyze_day, build_analyzer, follow_chunks

    cfg = settings()
    if detector not in ("hog", "haar"):
        raise BadInput(f"--detector must be hog or haar, got {detector!r}")
    cam = resolve_camera(cfg, camera, tenant)
    lake, bus = open_lake(cfg.lake_root), open_bus(cfg)
    landing = LandingZone(lake, bus, cam.timezone)
    store = open_feature_store(cfg)
    kind: Literal["hog", "haar"] = "hog" if detector == "hog" else "haar"
    if from_bus:
        n = follow_chunks(
            bus,
            lake,
            landing,
            lambda t, c: build_analyzer(
                resolve_camera(cfg, c, t),
                store,
                detector=kind,
                detect_every=cfg.video_detect_every,
            ),
        )
        console.print(f"analyzed {n} chunks from the bus")
        return
    if day is None:
        raise BadInput("give --date YYYY-MM-DD or --from-bus")
    try:
        business_date = date.fromisoformat(day)
    except ValueError as exc:
        raise BadInput(f"--date must be YYYY-MM-DD, got {day!r}") from exc
    analyzer = build_analyzer(cam, store, detector=kind, detect_every=cfg.video_detect_every)
    events, landed = analyze_day(lake, landing, analyzer, business_date)
    entries = sum(e.event == "entry" for e in events)
    console.print(
        f"{len(events)} visitor events ({entries} entries, {len(events) - entries} exits),"
        f" {analyzer.stats.frames} frames; rejected faces: {dict(analyzer.quality.rejections)}"
    )
    if landed is not None:
        console.print(f"landed {landed.event.key}")


@app.command("audit")
@handles_errors
def audit_cmd(
    days: Annotated[
        list[str], typer.Option("--date", help="Business date YYYY-MM-DD (repeatable).")
    ],
    truth: Annotated[
        Path, typer.Option("--truth", help="Hand-counted crossings CSV: ts,direction[,person].")
    ],
    camera: str = typer.Option(..., "--camera", help="Registered rgb_camera id."),
    tenant: str | None = typer.Option(None, "--tenant", help="Tenant (default: the camera's)."),
    tolerance: float = typer.Option(
        1.0, "--tolerance", help="Seconds within which a prediction matches a hand count."
    ),
) -> None:
    """Counting-accuracy audit: the analyzer's entries/exits (raw_visitor_events) of the
    camera against hand-counted crossings; the report goes to the lake's artifacts."""
    import hashlib

    from rich.table import Table

    from tenpo.lake import open_lake
    from tenpo.video.audit import (
        audit_days,
        predicted_crossings,
        read_truth_csv,
        save_report,
        truth_by_date,
    )

    cfg = settings()
    try:
        dates = sorted({date.fromisoformat(d) for d in days})
    except ValueError as exc:
        raise BadInput(f"--date must be YYYY-MM-DD, got {days}") from exc
    if tolerance <= 0:
        raise BadInput(f"--tolerance must be positive, got {tolerance}")
    try:
        raw = truth.read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read --truth {truth}: {exc.strerror}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"--truth {truth} is not UTF-8 text") from exc
    cam = resolve_camera(cfg, camera, tenant)
    per_date = truth_by_date(read_truth_csv(text), dates, cam.timezone)
    lake = open_lake(cfg.lake_root)
    runs = [
        (d, predicted_crossings(lake, cam.tenant_id, cam.camera_id, d), per_date[d]) for d in dates
    ]
    if not any(p for _, p, _ in runs):
        console.print(
            f"[yellow]no visitor events of camera {camera} on {', '.join(days)}:"
            " every hand-counted crossing is a miss[/]"
        )
    overall, reports = audit_days(
        runs, tolerance_s=tolerance, tenant_id=cam.tenant_id, camera_id=cam.camera_id
    )
    sha = hashlib.sha256(raw).hexdigest()
    reports = [r.model_copy(update={"truth_sha256": sha}) for r in reports]
    overall = overall.model_copy(update={"truth_sha256": sha})
    keys = [save_report(lake, r) for r in reports]
    if len(dates) > 1:
        keys.append(save_report(lake, overall))

    def pct(v: float | None) -> str:
        return "—" if v is None else f"{v:.1%}"

    table = Table(title=f"counting audit: {camera}, {', '.join(d.isoformat() for d in dates)}")
    for col in ("", "truth", "counted", "matched", "precision", "recall", "count accuracy"):
        table.add_column(col)
    for name, f in (("entries", overall.entry), ("exits", overall.exit)):
        table.add_row(
            name,
            str(f.truth),
            str(f.predicted),
            str(f.matched),
            pct(f.precision),
            pct(f.recall),
            pct(f.count_accuracy),
        )
    console.print(table)
    r = overall.reid
    console.print(
        f"re-identification over {r.labelled_events} labelled crossings of {r.persons} people:"
        f" same person same ID {pct(r.same_person_same_id)}, false merges"
        f" {pct(r.false_merge_rate)}"
        + (f", {r.merged_pairs} merged" if r.merged_pairs else "")
        + (f"; re-identified across days {pct(overall.reid_across_days)}" if len(dates) > 1 else "")
    )
    for line in overall.missed[:20]:
        console.print(f"  missed   {line}")
    for line in overall.spurious[:20]:
        console.print(f"  spurious {line}")
    for key in keys:
        console.print(f"report {key}")


def run_video_demo(base: Settings) -> list[str]:
    """`tenpo demo --video`: a synthetic entrance clip → edge recorder (spool) → chunk upload
    to the gateway (``POST /v1/video/{camera_id}/chunks``, a ``video:write`` key) → analyzer
    → landing → streamer → ``raw_visitor_events``, checked against the clip's ground truth.

    Runs in ``{data_dir}/demo-video`` (wiped first) with its own tenant, store and camera;
    returns the mismatches (empty when every event and PersonID is as expected).
    """
    import shutil
    import threading
    from datetime import UTC, datetime

    import httpx
    from rich.table import Table

    from tenpo.bus import open_bus
    from tenpo.control import ControlPlane
    from tenpo.core.errors import ConfigError
    from tenpo.features import open_feature_store
    from tenpo.gateway import create_app as create_gateway
    from tenpo.gateway import serve_in_thread
    from tenpo.lake import open_lake
    from tenpo.lake.landing import LandingZone
    from tenpo.streamer import Streamer, read_table
    from tenpo.video.bulk import Camera, analyze_day, build_analyzer
    from tenpo.video.codec import encode_mp4
    from tenpo.video.line import EntranceLine
    from tenpo.video.recorder import OpenCvSource, Recorder
    from tenpo.video.spool import ChunkSpool, ChunkUploader
    from tenpo.video.synthetic import Walk, render, truth

    root = (base.data_dir / "demo-video").resolve()
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    cfg = base.model_copy(
        update={
            "data_dir": root,
            "lake_url": None,
            "control_url": None,
            "bus": "sqlite",
            "bus_url": None,
            "streamer_state_url": None,
            "feature_dir": None,
            "feature_store": "faiss",
        }
    )
    tenant, camera_id, tz = "demo-video", "cam-entrance", "Asia/Tokyo"
    line = EntranceLine()
    control = ControlPlane.open(cfg.control_db_url)
    control.create_tenant(tenant, "Video demo")
    store = control.create_store(tenant, "V01", "Entrance camera store", timezone=tz)
    control.create_device(
        tenant, camera_id, store.store_id, "rgb_camera", config={"line": line.model_dump()}
    )
    walks = [
        Walk("astronaut", "entry", 0.2, 1.6, x=0.3),
        Walk("lfw0", "exit", 0.6, 1.6, x=0.72),
        Walk("lfw1", "entry", 2.6, 1.6, x=0.5),
        # Back later (over the tracker's 1 s memory), a little smaller and brighter.
        Walk("astronaut", "exit", 5.6, 1.6, x=0.25, scale=0.93, brightness=1.1),
    ]
    start = datetime(2026, 10, 5, 2, tzinfo=UTC)  # 11:00 in Tokyo
    clip = root / "entrance.mp4"
    clip.write_bytes(encode_mp4((f.image for f in render(walks, 7.6, start=start)), 15, crf=18))

    lake, bus = open_lake(cfg.lake_root), open_bus(cfg)
    _, token = control.create_api_key(tenant, "entrance recorder", ["video:write"])
    with console.status("video: recording, uploading, analyzing, loading…"):
        spool = ChunkSpool(root / "spool")
        rec = Recorder(
            lake=None,
            bus=None,
            tenant_id=tenant,
            camera_id=camera_id,
            timezone=tz,
            fps=cfg.video_fps,
            chunk_seconds=2.0,
            spool=spool,
        )
        chunks = rec.run(lambda: OpenCvSource(str(clip), start=start))
        server, thread = serve_in_thread(
            create_gateway(cfg, control=control, lake=lake, bus=bus), "127.0.0.1", 0, settings=cfg
        )
        port = int(server.servers[0].sockets[0].getsockname()[1])
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                uploader = ChunkUploader(spool, client, camera_id, token, base_delay_s=0.2)
                stop = threading.Event()
                stop.set()
                uploader.run(stop, drain_seconds=30.0)
        finally:
            server.should_exit = True
            thread.join(10)
        left = spool.status()
        if left["pending"] or left["rejected"] or uploader.uploaded != len(chunks):
            raise ConfigError(
                f"video demo: the gateway took {uploader.uploaded} of {len(chunks)} chunks"
                f" ({left['pending']} waiting, {left['rejected']} refused)"
            )
        features = open_feature_store(cfg)
        analyzer = build_analyzer(
            Camera(tenant, camera_id, tz, line), features, detect_every=cfg.video_detect_every
        )
        day = start.astimezone(rec.tz).date()
        events, _ = analyze_day(lake, LandingZone(lake, bus, tz), analyzer, day)
        streamer = Streamer(cfg, lake, bus, control.directory())
        try:
            streamer.run_until_idle(timeout=1.0)
        finally:
            streamer.close()  # its ledger connections and lease
    rows = sorted(read_table(lake, "raw_visitor_events", tenant).to_pylist(), key=lambda r: r["ts"])
    control.dispose()

    expected = truth(walks, start)
    mismatches: list[str] = []
    if [r["event"] for r in rows] != [e for _, e, _ in expected]:
        mismatches.append(
            f"events {[r['event'] for r in rows]} != truth {[e for _, e, _ in expected]}"
        )
    else:
        ids: dict[str, set[str | None]] = {}
        for r, (face, _, _) in zip(rows, expected, strict=True):
            ids.setdefault(face, set()).add(r["person_id"])
        if any(len(v) != 1 or None in v for v in ids.values()):
            mismatches.append(f"a face got several or no PersonIDs: {ids}")
        if len({next(iter(v)) for v in ids.values()}) != len(ids):
            mismatches.append("two different faces share a PersonID")
    table = Table(title=f"raw_visitor_events ({camera_id})")
    for col in ("ts", "event", "person_id", "quality", "truth"):
        table.add_column(col)
    for i, r in enumerate(rows):
        face = expected[i][0] if i < len(expected) else "?"
        table.add_row(str(r["ts"]), r["event"], str(r["person_id"]), f"{r['quality']:.2f}", face)
    console.print(table)
    console.print(
        f"video: {sum(c.frames for c in chunks)} frames in {len(chunks)} chunks uploaded"
        f" through the gateway,"
        f" {len(events)} events, rejected faces {dict(analyzer.quality.rejections)}"
    )
    if mismatches:
        for m in mismatches:
            console.print(f"[bold red]✗ video:[/] {m}")
    else:
        console.print(
            f"[bold green]✓ video: {len(rows)} entry/exit events and PersonIDs equal the"
            " ground truth[/] (the returning face kept its PersonID)"
        )
    return mismatches
