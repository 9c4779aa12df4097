"""``etle run`` as a library call: build the real stages and run every source.

Everything that can fail on bad input (camera file, sources, models, database) is checked
before the first frame is processed, so a bad argument never leaves a half-done run behind.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from etle import __version__
from etle.articles import article_for
from etle.config.run import DEFAULT_DETECTOR, FAST_DETECTOR, RunOptions
from etle.config.settings import Settings
from etle.errors import ConfigError, EtleError, ModelError
from etle.ingest.joined import part_details
from etle.ingest.sources import expand_sources, file_mtime_start, is_stream, open_source, timing_note
from etle.pipeline import Pipeline, RunSummary
from etle.types import Frame, PlateResult, TrackedObject, Violation

if TYPE_CHECKING:
    from etle.camera.config import CameraConfig
    from etle.evidence.space import SpacePolicy

log = logging.getLogger(__name__)

#: the manifest name of each plate detector kind (recorded with the evidence)
_PLATE_MODELS = {"onnx": "plate-detector", "tnkb": "plate-detector-tnkb", "pt": "plate-detector-pt", "ultralytics": "plate-detector-pt", "cascade": "plate-cascade"}


@dataclass
class EvidenceSink:
    """Writes the evidence bundle and the ticket of a violation (atomically, once per track+rule)."""

    writer: Any
    store: Any
    camera: Any  # CameraMeta
    camera_cfg: Any | None
    models: dict[str, str]
    zones: list[list[tuple[float, float]]]
    space: "SpacePolicy | None" = None  # free-space floors of the evidence disk (None: none)
    _clock: Any = field(default=None, init=False, repr=False)  # the OSD reader, once needed
    _clock_off: bool = field(default=False, init=False, repr=False)

    def with_picture_clock(self, violation: Violation, key_frame: Frame) -> Violation:
        """``violation`` with what the clock in the picture shows at its frame (etle.clock.osd),
        where the camera has one that reads: the reviewer sees the picture's time beside the
        ticket's, and how far apart they are where they differ."""
        cfg = self.camera_cfg
        if cfg is None or not cfg.clock.read or self._clock_off:
            return violation
        from etle.clock.osd import OsdReader, clock_at_frame

        if self._clock is None:
            self._clock = OsdReader(date_order=cfg.clock.date_order)
        try:
            seen = clock_at_frame(self._clock, key_frame, cfg.tz)
        except EtleError as exc:  # the OCR model missing: the ticket goes on without it
            log.warning("the clock in the picture is not read: %s", exc)
            self._clock_off = True
            return violation
        if "picture_clock_differs_s" in seen:
            log.warning("track %d / %s: the picture's clock shows %s, %+d s from the ticket's time",
                        violation.track_id, violation.rule, seen["picture_clock"], seen["picture_clock_differs_s"])
        return replace(violation, details={**violation.details, **seen}) if seen else violation

    def record(
        self,
        violation: Violation,
        key_frame: Frame,
        key_objects: tuple[TrackedObject, ...],
        clip: tuple[tuple[Frame, tuple[TrackedObject, ...]], ...],
        plate: PlateResult,
        source_info: Any,
    ) -> tuple[int, Path] | None:
        from etle.evidence.builder import EvidenceRequest
        from etle.evidence.commit import record_violation

        space = self.space.decide(self.writer.root) if self.space is not None else None
        if space is not None and not space.record:
            return self._not_recorded(violation, space.note)
        extra: dict[str, Any] = {}
        if space is not None and not space.clip:
            from etle.evidence.space import COUNTS

            COUNTS["clips_omitted"] += 1
            log.warning("track %d / %s: %s", violation.track_id, violation.rule, space.note)
            clip, extra["clip_omitted"] = (), space.note
        if getattr(source_info, "kind", "") in ("stream", "device"):  # dated by this machine's clock
            from etle.clock.system import system_clock_synchronized

            synced = system_clock_synchronized()
            if synced is not None:
                extra["box_clock_synchronized"] = synced
        violation = self.with_picture_clock(violation, key_frame)
        art = article_for(violation.rule)
        req = EvidenceRequest(
            violation=violation,
            camera=self.camera,
            key_frame=key_frame,
            key_objects=key_objects,
            clip=clip,
            plate=plate,
            article=art.article if art else None,
            fine=art.max_fine_idr if art else None,
            models=self.models,
            software_version=__version__,
            config_hash=self.camera_cfg.config_hash() if self.camera_cfg is not None else None,
            extra={"source": source_info.name, "wall_start_origin": source_info.wall_start_origin,
                   **part_details(source_info, key_frame.pts), **extra},
            zones=self.zones or None,
        )
        run_id = source_info.wall_start.isoformat() if source_info.wall_start else ""
        try:
            rec = record_violation(self.writer, self.store, req, {"source": source_info.name, "run_id": run_id})
        except EtleError as exc:
            from etle.evidence.space import out_of_space

            if self.space is None or self.space.on_full != "skip" or not out_of_space(exc):
                raise
            return self._not_recorded(violation, str(exc))
        if not rec.created:
            log.info("ticket for track %d / %s already recorded (id %d)", violation.track_id, violation.rule, rec.ticket_id)
            return None
        path = rec.bundle.path if rec.bundle is not None else Path()
        return rec.ticket_id, path

    def _not_recorded(self, violation: Violation, why: str) -> None:
        """A violation left unrecorded for want of disk space (``low_disk: skip``): said and counted."""
        from etle.evidence.space import COUNTS

        COUNTS["not_recorded"] += 1
        log.error("violation %s of track %d at %s NOT RECORDED: %s", violation.rule, violation.track_id,
                  violation.timestamp.isoformat(timespec="seconds"), why)
        return None


def _zone_polylines(camera: Any) -> list[list[tuple[float, float]]]:
    lines: list[list[tuple[float, float]]] = []
    for zone in getattr(camera, "zones", {}).values():
        pts = getattr(zone, "points", None) or getattr(zone, "polygon", None)
        if pts:
            lines.append([(float(x), float(y)) for x, y in pts])
    return lines


def _model_hashes(names: list[str]) -> dict[str, str]:
    from etle.models import registry

    out: dict[str, str] = {}
    for n in names:
        try:
            path = registry.resolve(n)
            out[n] = registry._hash_cached(path)
        except EtleError:
            continue
    return out


def build_pipeline(
    camera: "CameraConfig | Path | None" = None,
    options: RunOptions | None = None,
    settings: Settings | None = None,
    *,
    detector: Any = None,
    frame_size: tuple[int, int] | None = None,
) -> tuple[Pipeline, Any]:
    """The real pipeline for a camera (its file or its loaded config; ``None``: no rules) run with
    ``options``, in the environment ``settings`` (one reading of ``ETLE_*``; default: now).
    ``frame_size`` (width, height) fits the camera's coordinates to footage of that size first
    (:func:`etle.camera.fit.fit_camera`); a source of another size met later gets a pipeline
    fitted to it (built once per size), or a :class:`ConfigError` where the camera cannot be.

    The one assembler of the stages: ``etle run``, the edge site's camera workers, ``etle batch``
    workers, ``etle bench`` and ``etle eval`` all build their pipeline here.  Returns
    ``(pipeline, camera_config_or_None)``.  Raises typed errors for a bad camera file, a missing
    model or an unusable database before anything is processed.  Evidence manifests are signed
    with the site key in ``settings.keys_dir`` (unsigned, with a warning, when there is none).
    ``detector`` replaces the vehicle detector (a shared or batching one; tests pass fakes).
    """
    from etle.camera.config import load_camera
    from etle.config.settings import settings as current_settings

    if isinstance(camera, (str, Path)):
        camera = load_camera(camera)
    if camera is not None and frame_size is not None:
        from etle.camera.fit import fit_camera

        camera = fit_camera(camera, *frame_size)
    config = options if options is not None else RunOptions()
    env = settings if settings is not None else current_settings()
    if config.device is not None:
        from etle.onnxrt import set_device

        set_device(config.device)
    country, reader = config.country, config.reader
    if detector is None:
        from etle.detect.detector import load_detector

        try:
            detector = load_detector(config.detector, conf_threshold=config.conf_threshold)
        except ModelError as exc:
            if config.detector != FAST_DETECTOR:
                raise
            # the derived int8 model is made once by `etle models prepare`; run, slower, without it
            log.warning("%s; using the float vehicle-detector (run 'etle models prepare' for the fast one)", exc)
            config = config.model_copy(update={"detector": DEFAULT_DETECTOR})
            detector = load_detector(config.detector, conf_threshold=config.conf_threshold)
    if camera is not None and camera.detect_tiles:
        from etle.detect.tiles import TiledDetector, tile_zones

        detector = TiledDetector(detector, tile_zones(camera))
    plate_factory = None
    model_names = [config.detector]
    if config.read_plates:
        from etle.plate.stage import build_plate_stage

        from etle.plate.tnkb import get_format

        try:
            get_format(country)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        from etle.plate.detector import default_plate_detector

        kind = config.plate_detector or default_plate_detector(country)
        overlays = camera.overlays if camera is not None else ()
        try:
            plate_factory = build_plate_stage(detector=kind, reader=reader, country=country, overlays=overlays,
                                              settle_majority=config.plate_char_majority)
        except ModelError as exc:
            if config.plate_detector is not None or kind == "onnx":
                raise
            # the fine-tuned detector is exported once by `etle models prepare`; run without it
            log.warning("%s; using the original plate detector (run 'etle models prepare' for the TNKB one)", exc)
            kind = "onnx"
            plate_factory = build_plate_stage(detector=kind, reader=reader, country=country, overlays=overlays,
                                              settle_majority=config.plate_char_majority)
        config = config.model_copy(update={"plate_detector": kind})
        model_names += [_PLATE_MODELS.get(kind, kind), "ocr-rapidocr-rec"]
    rules_factory = guard_factory = signal_factory = None
    sink = None
    if camera is not None:
        from etle.viewguard.guard import ViewGuard
        from etle.evidence.builder import CameraMeta, EvidenceWriter, cleanup_partial
        from etle.rules.engine import build_rules
        from etle.signal.source import build_signal
        from etle.evidence.signing import load_signer_if_present
        from etle.store import CameraIn, open_store

        build_rules(camera)  # validate the rule set now
        signer = load_signer_if_present(env.keys_dir)
        if camera.view_guard is not None:
            ViewGuard.from_config(camera)  # load the reference now: a missing one fails here
            guard_factory = lambda: ViewGuard.from_config(camera)  # noqa: E731
        rules_factory = lambda: build_rules(camera)  # noqa: E731
        signal_factory = (lambda: build_signal(camera)) if camera.signal is not None else None  # noqa: E731
        store = open_store(config.db_url)
        out_dir = config.out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        cleanup_partial(out_dir)
        meta = CameraMeta(id=camera.id, name=camera.name, location=camera.location, lat=camera.lat, lon=camera.lon, timezone=camera.timezone)
        store.register_camera(CameraIn(meta.id, meta.name, meta.location, meta.lat, meta.lon, meta.timezone))
        if signer is None:
            log.warning("no site key in %s: evidence manifests will be unsigned (create one with 'etle keys init')",
                        env.keys_dir)
        else:
            store.register_site_key(signer.key_id, signer.public_key_b64, site=camera.id)
        writer = EvidenceWriter(out_dir, signer=signer)
        from etle.evidence.space import SpacePolicy

        space = SpacePolicy(config.clip_min_free_bytes, config.evidence_min_free_bytes, config.low_disk)
        sink = EvidenceSink(writer, store, meta, camera, _model_hashes(model_names), _zone_polylines(camera),
                            space if space.active else None)
    motion_factory = None
    if camera is not None:
        lines = [[(float(x), float(y)) for x, y in z.points] for z in camera.zones.values() if getattr(z, "points", None)]
        if lines:
            from etle.detect.motion import MotionGate

            motion_factory = lambda size: MotionGate(lines, size)  # noqa: E731
    frame_check = refit = None
    if camera is not None:
        frame_check, refit = _fitting(camera, config, env, detector)
    pipeline = Pipeline(
        detector=detector,
        tracker_factory=_tracker_factory,
        motion_factory=motion_factory,
        rules_factory=rules_factory,
        guard_factory=guard_factory,
        signal_factory=signal_factory,
        plate_stage_factory=plate_factory,
        sink=sink,
        config=config,
        frame_check=frame_check,
        refit=refit,
    )
    return pipeline, camera


def _fitting(camera: "CameraConfig", options: RunOptions, env: Settings, detector: Any) -> tuple[Any, Any]:
    """``(frame_check, refit)`` of a pipeline for ``camera`` (see :class:`Pipeline`): the check
    of each source's frame size (with a warning where a camera file without a ``frame_size``
    looks drawn for a smaller picture), and a pipeline fitted to another size, built once."""
    from etle.camera.fit import check_frame, size_hint
    from etle.detect.tiles import untiled

    fitted: dict[tuple[int, int], Pipeline] = {}

    def frame_check(width: int, height: int) -> list[str]:
        problems = check_frame(camera, width, height)
        hint = None if problems else size_hint(camera, width, height)
        if hint:
            log.warning("%s", hint)
        return problems

    def refit(width: int, height: int) -> Pipeline:
        if (width, height) not in fitted:
            fitted[(width, height)] = build_pipeline(camera, options, env, detector=untiled(detector),
                                                     frame_size=(width, height))[0]
        return fitted[(width, height)]

    return frame_check, refit


def open_sources(source: str, camera: "CameraConfig | None", options: RunOptions) -> list[Any]:
    """Every source of ``source`` (a file, a folder, a URL) opened and dated as ``etle run`` reads
    them: ``--start`` or the camera file's ``start_time`` (one recording only), else each file's
    picture clock or name (etle.clock.start), and a folder's files that continue one another
    joined (etle.ingest.joined; unless ``options.join`` is off).  Files dated by nothing yet get
    their file time when they run (:func:`_dated`).  Raises typed errors for a bad source."""
    max_seconds = options.max_seconds
    specs = expand_sources(source)
    start = options.wall_start or (camera.start_time if camera is not None else None)
    if start is not None:
        from etle.clock.start import one_recording

        one_recording("--start" if options.wall_start else "the camera file's start_time",
                      [s for s in specs if not is_stream(s) and not Path(s).is_dir()])
    opened = [open_source(s, wall_start=start, max_seconds=max_seconds, frame_rate=options.frame_rate) for s in specs]
    for note in filter(None, (timing_note(src.info, options.frame_rate) for src in opened)):
        log.warning("%s", note)
    if start is None and camera is not None:
        from etle.clock.start import RecordingDater

        dater = RecordingDater(camera)
        opened = [_clocked(src, dater, max_seconds) for src in opened]
    if options.join and len(opened) > 1:
        from etle.clock.names import NAME_ORIGIN
        from etle.clock.osd import OSD_ORIGIN
        from etle.ingest.joined import join_recordings

        opened = join_recordings(opened, {OSD_ORIGIN, NAME_ORIGIN}, max_seconds=max_seconds)
    return opened


def describe_recordings(sources: list[Any], camera: "CameraConfig | None") -> list[dict[str, Any]]:
    """What ``etle run --dry-run`` shows of each opened source (:func:`open_sources`): its files,
    length, frame rate and timing, and the start a run will date it from (a file dated by nothing
    else: its file time, as :func:`_dated` takes it) in the camera's time zone, and where that
    start comes from."""
    rows = []
    for src in sources:
        info = src.info
        start, origin = info.wall_start, info.wall_start_origin
        if start is None and info.kind == "file":
            start, origin = file_mtime_start(info.name, info.duration_s), "file modification time"
        if start is not None and camera is not None:
            start = start.astimezone(camera.tz)
        rows.append({
            "recording": info.name, "files": [n for n, _ in info.parts] or [info.name], "kind": info.kind,
            "size": [info.width, info.height], "fps": round(info.fps, 3),
            "seconds": round(info.duration_s, 3) if info.duration_s is not None else None,
            "timing": info.timing, "start": start.isoformat() if start is not None else None, "dated_by": origin,
        })
    return rows


def run_sources(
    source: str,
    camera: "CameraConfig | Path | None" = None,
    options: RunOptions | None = None,
    settings: Settings | None = None,
    *,
    progress: bool = True,
    console: Any = None,
    detector: Any = None,
    sync_target: Any = None,
    sync_interval_s: float = 30.0,
    frame_callback: Callable[[Frame], None] | None = None,
    streams: int = 1,
) -> list[RunSummary]:
    """Run every source of ``source`` (a file, a folder, a URL) and return one summary each.

    ``camera`` and ``options`` as for :func:`build_pipeline` (manifests signed with the site key
    in ``settings.keys_dir``).  With a ``sync_target`` (an :class:`etle.sync.SyncTarget`; default
    from ``ETLE_CENTRAL_DB`` and ``ETLE_CENTRAL_EVIDENCE``) tickets and evidence are pushed to the
    central store in the background every ``sync_interval_s`` and once more at the end.

    With ``streams`` > 1 up to that many sources run at once, in threads sharing one detector
    whose frames run as one batch (:mod:`etle.detect.batching`): what one GPU serving several
    cameras wants.  Each source gets the tickets it gets alone.
    """
    from etle.camera.config import load_camera
    from etle.sync import SyncTarget

    if isinstance(camera, (str, Path)):
        camera = load_camera(camera)
    options = options if options is not None else RunOptions()
    max_seconds = options.max_seconds
    target = sync_target if sync_target is not None else SyncTarget.from_env()
    # open every source before processing any, so a bad one in a batch fails up front
    opened = open_sources(source, camera, options)
    # then models, rules and the database: a missing model fails before anything is written;
    # the camera is fitted to the sources' frame size (another size met later is fitted then)
    sizes = {(s.info.width, s.info.height) for s in opened}
    size = next(iter(sizes)) if len(sizes) == 1 else None
    pipeline, _ = build_pipeline(camera, options, settings, detector=detector,
                                 frame_size=size if size is not None and min(size) > 0 else None)
    background = None
    sink = pipeline.sink
    if target is not None and isinstance(sink, EvidenceSink):
        from etle.sync import BackgroundSync, StoreAndForward

        background = BackgroundSync(StoreAndForward(sink.store, sink.writer.root, target), interval_s=sync_interval_s).start()
    summaries: list[RunSummary] = []
    try:
        if streams > 1 and len(opened) > 1:
            summaries = _run_streams(pipeline, opened, streams, max_seconds, progress, console, frame_callback)
        else:
            for src in opened:
                summaries.append(_run_one(pipeline, _dated(src, max_seconds), progress, console, frame_callback))
    finally:
        if background is not None:
            report = background.stop(flush=True)
            if report is not None and not report.ok:
                log.warning("tickets not yet at the central store: %d pending (%s); 'etle sync' retries",
                            report.pending, report.error or "; ".join(report.failed))
    return summaries


def _clocked(src: Any, dater: Any, max_seconds: float | None) -> Any:
    """``src`` dated by the clock in its picture or by its file name (``dater``, an
    etle.clock.start.RecordingDater), where it has one; else as it is (its container's
    creation_time, else the file time: :func:`_dated`)."""
    if src.info.kind != "file":
        return src
    rate = src.info.fps if src.info.timing == "given" else None
    fix = dater.date(src.info.name, creation_time=getattr(src, "creation_time", None), frame_rate=rate,
                     duration_s=src.info.duration_s)
    if fix is None:
        return src
    return open_source(src.info.name, wall_start=fix.start, max_seconds=max_seconds, frame_rate=rate,
                       start_origin=fix.origin)


def _dated(src: Any, max_seconds: float | None) -> Any:
    """``src``, opened again with the file's time as its start where nothing else dates it."""
    if src.info.wall_start is None and src.info.kind == "file":
        guess = file_mtime_start(src.info.name, src.info.duration_s)
        log.warning("%s: no recording time in the file or camera config; using the file time %s (pass --start)", src.info.name, guess)
        rate = src.info.fps if src.info.timing == "given" else None
        return open_source(src.info.name, wall_start=guess, max_seconds=max_seconds, frame_rate=rate,
                           start_origin="file modification time")
    return src


def _run_streams(
    pipeline: Pipeline, opened: list[Any], streams: int, max_seconds: float | None, progress: bool,
    console: Any, callback: Callable[[Frame], None] | None,
) -> list[RunSummary]:
    """Run ``opened`` sources ``streams`` at a time, sharing ``pipeline``'s detector through a
    :class:`~etle.detect.batching.BatchingDetector`; summaries in the order of ``opened``."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from etle.detect.batching import BatchingDetector

    n = min(streams, len(opened))
    lock = threading.Lock()
    bar = None
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), console=console)

    with BatchingDetector(pipeline.detector, max_batch=n) as shared:

        def one(src: Any) -> RunSummary:
            src = _dated(src, max_seconds)
            task = None
            if bar is not None:
                total = src.info.frame_count
                if max_seconds is not None and src.info.fps:
                    cap = int(max_seconds * src.info.fps) + 1
                    total = min(total, cap) if total else cap
                task = bar.add_task(Path(src.info.name).name[:40], total=total or None)

            def tick(frame: Frame) -> None:
                if task is not None:
                    bar.advance(task)
                if callback is not None:
                    with lock:
                        callback(frame)

            with shared.stream() as det:
                return pipeline.with_detector(det).run_source(src, progress=tick)

        if bar is not None:
            bar.start()
        try:
            with ThreadPoolExecutor(max_workers=n, thread_name_prefix="etle-stream") as pool:
                summaries = list(pool.map(one, opened))
        finally:
            if bar is not None:
                bar.stop()
    stats = shared.stats
    log.info("batched detection: %d frames in %d batches (mean %.2f)", stats.frames, stats.batches, stats.mean_batch)
    return summaries


def _tracker_factory(fps: float, max_rate: float | None = None) -> Any:
    from etle.track.bytetrack import ByteTrackTracker

    return ByteTrackTracker(frame_rate=fps, max_rate=max_rate)


def _run_one(
    pipeline: Pipeline, src: Any, progress: bool, console: Any, callback: Callable[[Frame], None] | None = None
) -> RunSummary:
    if not progress:
        return pipeline.run_source(src, progress=callback)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    total = src.info.frame_count
    if pipeline.config.max_seconds is not None and src.info.fps:
        cap = int(pipeline.config.max_seconds * src.info.fps) + 1
        total = min(total, cap) if total else cap
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[fps]:.1f} fps"),
        TimeRemainingColumn(), console=console, transient=False,
    ) as bar:
        task = bar.add_task(Path(src.info.name).name[:40], total=total, fps=0.0)
        import time

        t0 = time.perf_counter()
        n = [0]

        def tick(frame: Frame) -> None:
            n[0] += 1
            if callback is not None:
                callback(frame)
            if n[0] % 5 == 0:
                bar.update(task, completed=n[0], fps=n[0] / max(time.perf_counter() - t0, 1e-6))

        summary = pipeline.run_source(src, progress=tick)
        bar.update(task, completed=n[0], fps=summary.fps)
    return summary


ProgressFn = Callable[[Frame], None]
