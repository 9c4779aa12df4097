"""The ``etle`` command line.  The only place that configures logging, prints and exits.

Library errors (:class:`etle.errors.EtleError`) become one line on stderr and a non-zero exit
code; no traceback is shown for bad input (``--debug`` shows it for bug reports).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from etle import __version__
from etle.commands.options import options_of, parse_start
from etle.errors import EtleError

app = typer.Typer(
    name="etle",
    help="Open E-TLE pipeline: footage -> detection, tracking, violation rules, plate reading -> evidence and tickets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
tickets_app = typer.Typer(help="List and inspect tickets in the database.", no_args_is_help=True)
models_app = typer.Typer(help="Show, check and prepare the models named in the model manifest.", no_args_is_help=True)
camera_app = typer.Typer(help="Camera files: check them and save the reference view.", no_args_is_help=True)
app.add_typer(tickets_app, name="tickets")
app.add_typer(models_app, name="models")
app.add_typer(camera_app, name="camera")

def _console(stderr: bool = False) -> Console:
    """A console; when output goes to a file or pipe, wide enough that tables are not cut."""
    c = Console(stderr=stderr)
    return c if c.is_terminal else Console(stderr=stderr, width=200)


out = _console()
err = _console(stderr=True)
_state = {"debug": False}

from etle.config.run import DEFAULT_DB, DEFAULT_OUT, RunOptions  # noqa: E402

_RUN = RunOptions()  # the defaults the run flags show


def _version(value: bool) -> None:
    if value:
        out.print(f"etle {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More log output (-v info, -vv debug)."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors (for bug reports)."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """etle: electronic traffic-law enforcement from camera footage."""
    _state["debug"] = debug
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


@app.command()
def run(
    source: str = typer.Argument(..., help="A video file, a folder of videos or images, or a stream URL (rtsp://, http://)."),
    camera: Optional[Path] = typer.Option(None, "--camera", "-c", help="Camera YAML file (zones, signal, rules). Without it no rules run."),
    out_dir: Path = typer.Option(DEFAULT_OUT, "--out", "-o", help="Folder for evidence bundles."),
    db: str = typer.Option(DEFAULT_DB, "--db", help="Ticket database (any SQLAlchemy URL)."),
    reader: Optional[str] = typer.Option(None, "--reader", help="Plate OCR backend (rapidocr, rapidocr+crnn, crnn, easyocr); default: the measured best per country."),
    plate_detector: Optional[str] = typer.Option(None, "--plate-detector", help="Plate detector: tnkb (fine-tuned on Indonesian plates), onnx (the original), pt (ultralytics), cascade; default: tnkb for --country id, onnx otherwise."),
    no_plates: bool = typer.Option(False, "--no-plates", help="Do not read plates."),
    detect_every: int = typer.Option(_RUN.detect_every, "--detect-every", min=0, help="Run the detector on every Nth frame and predict tracks in between (0: from --detect-fps)."),
    detect_fps: float = typer.Option(_RUN.detect_fps, "--detect-fps", min=0.0, help="Detector runs per second of video when --detect-every is 0 (default 0: every frame; the fast profile uses 6)."),
    country: str = typer.Option(_RUN.country, "--country", help="Plate format: id (Indonesian TNKB grammar) or generic (any country, no grammar)."),
    no_motion: bool = typer.Option(False, "--no-motion", help="On a detection stride, do not also detect while something moves across a line of the camera."),
    detector_model: str = typer.Option(_RUN.detector, "--detector", help="Vehicle detector: a manifest name (vehicle-detector, vehicle-detector-int8) or an .onnx/.pt file."),
    max_seconds: Optional[float] = typer.Option(None, "--max-seconds", min=0.0, help="Stop each source after this many seconds of video."),
    start: Optional[str] = typer.Option(None, "--start", help="Wall-clock start of the recording (ISO 8601; one recording: refused for several files); default: the camera file's start_time, the clock in the picture, the file name, the container's creation_time."),
    frame_rate: Optional[float] = typer.Option(None, "--frame-rate", help="Frames a second of footage without timestamps (a recorder's raw .h264/.265 export); default: the rate its stream header declares. Files with timestamps keep their own."),
    join: bool = typer.Option(True, "--join/--no-join", help="Run the files of a folder that continue one another (a recording the recorder split into files, dated by its picture's clock or its file names) as one recording, so a vehicle crossing a cut between files is still seen."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show how each recording will be read, dated and joined, then stop: no model is loaded, nothing is written."),
    pre_s: float = typer.Option(_RUN.pre_s, "--clip-before", min=0.0, help="Seconds of clip before the violation."),
    post_s: float = typer.Option(_RUN.post_s, "--clip-after", min=0.0, help="Seconds of clip after the violation."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    keys: Optional[Path] = typer.Option(None, "--keys", help="Folder of the site signing key (default $ETLE_KEYS_DIR or ./etle-keys; see 'etle keys init')."),
    central_db: Optional[str] = typer.Option(None, "--central-db", help="Central ticket database to sync to in the background (default $ETLE_CENTRAL_DB)."),
    central_evidence: Optional[str] = typer.Option(None, "--central-evidence", help="Central evidence folder or s3:// location (default $ETLE_CENTRAL_EVIDENCE)."),
    device: Optional[str] = typer.Option(None, "--device", help="Where the detectors run: cpu (default), cuda (ONNX Runtime's TensorRT/CUDA providers; an error without them) or auto (the GPU when there is one, else the CPU with a warning)."),
    streams: int = typer.Option(1, "--streams", min=1, help="Sources of a folder run at once, sharing one detector whose frames run as one batch (for a GPU serving several cameras; on a CPU 1 is as fast)."),
) -> None:
    """Process footage into tickets with evidence (one ticket per vehicle and rule)."""
    from etle.config.settings import settings
    from etle.runner import run_sources

    options = options_of(
        RunOptions, out_dir=out_dir, db_url=db, reader=reader, plate_detector=plate_detector, read_plates=not no_plates,
        detect_every=detect_every, detect_fps=detect_fps, detect_on_motion=not no_motion, country=country,
        detector=detector_model, max_seconds=max_seconds, wall_start=parse_start(start), pre_s=pre_s, post_s=post_s,
        device=device, frame_rate=frame_rate, join=join,
    )
    if dry_run:
        _show_recordings(source, camera, options, json_out)
        return
    env = settings()
    if keys is not None:
        env = env.model_copy(update={"keys_dir": keys})
    target = None
    if central_db or central_evidence:
        if not (central_db and central_evidence):
            raise typer.BadParameter("--central-db and --central-evidence go together")
        from etle.sync.forward import SyncTarget

        target = SyncTarget(db_url=central_db, evidence=central_evidence)
    summaries = run_sources(
        source, camera, options, env, progress=not no_progress and not json_out, console=err, sync_target=target,
        streams=streams,
    )
    if json_out:
        out.print_json(json.dumps([_summary_dict(s) for s in summaries]))
        return
    from etle.ingest.joined import recording_label

    table = Table(title="etle run")
    for col in ("source", "frames", "video s", "fps", "tracks", "violations", "tickets", "view pauses"):
        table.add_column(col, justify="right" if col != "source" else "left")
    for s in summaries:
        table.add_row(
            recording_label(s.source, s.parts), str(s.frames), f"{s.video_seconds:.1f}", f"{s.fps:.1f}", str(s.tracks),
            str(s.violations), str(s.tickets), str(s.view_pauses),
        )
    out.print(table)
    for s in summaries:
        if s.stage_ms:
            out.print("stage ms/frame: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(s.stage_ms.items())))
        if s.plates:
            out.print("plates confirmed (as a ticket prints them): " + ", ".join(f"#{k} {v}" for k, v in sorted(s.plates.items())))
        if s.unconfirmed_plates:
            out.print("plates not confirmed (a ticket shows ?; best guess): "
                      + ", ".join(f"#{k} {v}?" for k, v in sorted(s.unconfirmed_plates.items())))
    total = sum(s.tickets for s in summaries)
    out.print(f"{total} ticket(s) in {db}; evidence in {out_dir.resolve()}")


def _show_recordings(source: str, camera: Optional[Path], options: RunOptions, json_out: bool) -> None:
    """``etle run --dry-run``: the recordings as a run would read and date them."""
    from etle.camera.config import load_camera
    from etle.ingest.joined import recording_label
    from etle.runner import describe_recordings, open_sources

    cam = load_camera(camera) if camera is not None else None
    with err.status("opening and dating the recordings..."):
        rows = describe_recordings(open_sources(source, cam, options), cam)
    if json_out:
        out.print_json(json.dumps(rows))
        return
    table = Table(title="etle run --dry-run: the recordings, as a run reads them")
    for col in ("recording", "files", "video s", "fps", "size", "timing", "start", "dated by"):
        table.add_column(col, justify="right" if col in ("files", "video s", "fps") else "left")
    for r in rows:
        start = r["start"].replace("T", " ") if r["start"] else "-"
        table.add_row(recording_label(r["recording"], r["files"]), str(len(r["files"])), f"{r['seconds']:.1f}" if r["seconds"] is not None else "-",
                      f"{r['fps']:.2f}", f"{r['size'][0]}x{r['size'][1]}", r["timing"], start, r["dated_by"])
    out.print(table)
    out.print(f"{len(rows)} recording(s) in {sum(len(r['files']) for r in rows)} source(s); nothing processed (--dry-run)")


def _summary_dict(s) -> dict:  # type: ignore[no-untyped-def]
    return {
        "source": s.source, "frames": s.frames, "video_seconds": round(s.video_seconds, 3), "elapsed_s": round(s.elapsed_s, 3),
        "fps": round(s.fps, 2), "tracks": s.tracks, "violations": s.violations, "tickets": s.tickets,
        "view_pauses": s.view_pauses, "stage_ms": {k: round(v, 2) for k, v in s.stage_ms.items()},
        "ticket_ids": list(s.ticket_ids), "evidence": list(s.evidence_paths),
        "plates": {str(k): v for k, v in s.plates.items()},
        "unconfirmed_plates": {str(k): v for k, v in s.unconfirmed_plates.items()}, "violations_by_rule": dict(s.violations_by_rule),
        "detect_every": s.detect_every, "detections": s.detections, "motion_detections": s.motion_detections,
        "resized_frames": s.resized_frames, "parts": list(s.parts),
    }


# ---------------------------------------------------------------- tickets


@tickets_app.command("list")
def tickets_list(
    db: str = typer.Option(DEFAULT_DB, "--db", help="Ticket database (SQLAlchemy URL)."),
    status: Optional[str] = typer.Option(None, "--status", help="Only this status (e.g. pending_review)."),
    rule: Optional[str] = typer.Option(None, "--rule", help="Only this rule (e.g. red_light)."),
    camera: Optional[str] = typer.Option(None, "--camera", help="Only this camera id."),
    date: Optional[str] = typer.Option(None, "--date", help="Only this day (YYYY-MM-DD, UTC)."),
    since: Optional[str] = typer.Option(None, "--since", help="From this time (ISO 8601)."),
    until: Optional[str] = typer.Option(None, "--until", help="Until this time (ISO 8601)."),
    plate: Optional[str] = typer.Option(None, "--plate", help="Plate text contains this."),
    limit: int = typer.Option(100, "--limit", min=1, help="At most this many rows."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List tickets, newest first."""
    from datetime import timedelta

    from etle.store import open_store

    t_since, t_until = parse_start(since), parse_start(until)
    if date:
        try:
            day = datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=timezone.utc)
        except ValueError as exc:
            raise typer.BadParameter(f"--date '{date}' is not YYYY-MM-DD") from exc
        t_since, t_until = day, day + timedelta(days=1)
    store = open_store(db)
    rows = store.list(status=status, rule=rule, camera=camera, since=t_since, until=t_until, plate=plate, limit=limit)
    if json_out:
        out.print_json(json.dumps([_ticket_dict(r) for r in rows], default=str))
        return
    table = Table(title=f"tickets ({len(rows)})")
    for col in ("id", "reference", "time (UTC)", "camera", "rule", "plate", "conf", "colour", "category", "status"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            str(r.id), r.reference, r.occurred_at.strftime("%Y-%m-%d %H:%M:%S"), r.camera_id, r.rule,
            r.plate_text or "-", f"{r.plate_confidence:.2f}" if r.plate_text else "-", r.plate_colour or "-",
            r.plate_category or "-", r.status,
        )
    out.print(table)


@tickets_app.command("show")
def tickets_show(
    ticket: str = typer.Argument(..., help="Ticket id or reference code."),
    db: str = typer.Option(DEFAULT_DB, "--db", help="Ticket database (SQLAlchemy URL)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show one ticket with its evidence files."""
    from etle.store import open_store

    store = open_store(db)
    row = store.get(int(ticket) if ticket.isdigit() else ticket)
    if row is None:
        raise EtleError(f"no ticket '{ticket}' in {db}")
    d = _ticket_dict(row)
    if json_out:
        out.print_json(json.dumps(d, default=str))
        return
    table = Table(show_header=False, title=f"ticket {row.id} ({row.reference})")
    for k, v in d.items():
        table.add_row(k, json.dumps(v, default=str) if isinstance(v, (list, dict)) else str(v))
    out.print(table)
    ev = Path(row.evidence_path)
    if ev.is_dir():
        out.print("evidence files:")
        for f in sorted(ev.iterdir()):
            out.print(f"  {f}")


def _ticket_dict(r) -> dict:  # type: ignore[no-untyped-def]
    from dataclasses import asdict, is_dataclass

    d = asdict(r) if is_dataclass(r) else dict(r)
    return d


# ---------------------------------------------------------------- models


@models_app.command("list")
def models_list() -> None:
    """List every model of the manifest with where it comes from and whether it is present."""
    from etle.models import registry

    table = Table(title=f"models ({registry.manifest_path()})")
    for col in ("name", "task", "format", "source", "licence", "present"):
        table.add_column(col)
    for st in registry.check_all():
        s = st.spec
        src = s.source
        if s.kind == "package":
            where = f"{src['package']}=={src.get('version', '')}:{src['path']}"
        elif s.kind == "export":
            where = f"export of {src.get('from')}"
        else:
            where = f"{s.kind}:{src.get('path', s.file)}"
        table.add_row(s.name, s.task, s.format, where, s.licence, "yes" if st.ok else "no")
    out.print(table)


@models_app.command("check")
def models_check(
    name: Optional[list[str]] = typer.Argument(None, help="Models to check (default: all)."),
) -> None:
    """Resolve each model, verify its hash; exit 1 when one is missing or damaged."""
    from etle.models import registry

    names = name or list(registry.manifest())
    bad = 0
    for n in names:
        st = registry.status(n)
        if st.ok:
            out.print(f"[green]ok[/green]      {n}  {st.path}")
        else:
            bad += 1
            out.print(f"[red]missing[/red] {n}  {st.message}")
    from etle.onnxrt import cpu

    info = cpu()
    if info["vnni"] is False and "vehicle-detector-int8" in names:
        out.print(f"[yellow]note[/yellow]    this CPU ({info['model']}) has no VNNI: the int8 vehicle detector's 8-bit "
                  "weights can saturate here and find other boxes than measured (docs/accuracy.md), so the fast "
                  "profile runs the float --detector vehicle-detector here; --detector vehicle-detector-int8 runs "
                  "the int8 one anyway")
    else:
        out.print(f"cpu     {info['model']}, {info['cores']} core(s), VNNI "
                  f"{ {True: 'yes', False: 'no', None: 'not applicable'}[info['vnni']] }")
    if bad:
        raise typer.Exit(1)


@models_app.command("prepare")
def models_prepare(
    force: bool = typer.Option(False, "--force", help="Re-derive even when present."),
    calibration: Optional[Path] = typer.Option(
        None, "--calibration", exists=True, dir_okay=False,
        help="Video whose frames calibrate the int8 detector (default: the bundled sample clip).",
    ),
    skip_int8: bool = typer.Option(False, "--no-int8", help="Do not make the int8 vehicle detector."),
    skip_plate: bool = typer.Option(False, "--no-plate-export", help="Do not export the plate detectors (they need the ultralytics extra)."),
    skip_ocr_int8: bool = typer.Option(False, "--no-ocr-int8", help="Do not make the int8 plate text recogniser."),
    skip_face: bool = typer.Option(False, "--no-face-export", help="Do not export the MTCNN face detector of the privacy blur (needs torch and facenet-pytorch)."),
) -> None:
    """Derive the models etle makes itself: the ONNX exports of both plate detectors (need the
    ultralytics extra once), the int8 vehicle detector for CPU edge boxes and the int8 plate text
    recogniser (calibrated on rendered plates) that the rapidocr reader uses when present, and the
    ONNX export of the MTCNN face detector that blurs bystanders in public pictures."""
    from etle.train.export import export_face_detector, export_plate_detector, quantize_plate_recogniser, quantize_vehicle_detector

    if not skip_plate:
        for name in ("plate-detector", "plate-detector-tnkb"):
            with err.status(f"exporting {name} to ONNX..."):
                path = export_plate_detector(force=force, name=name)
            out.print(f"{name} ready: {path}")
    if not skip_int8:
        with err.status("quantising the vehicle detector to int8 (calibration frames)..."):
            path = quantize_vehicle_detector(force=force or calibration is not None, calibration=calibration)
        out.print(f"vehicle-detector-int8 ready: {path}")
    if not skip_ocr_int8:
        with err.status("quantising the plate text recogniser to int8 (rendered calibration plates)..."):
            path = quantize_plate_recogniser(force=force)
        out.print(f"ocr-rapidocr-rec-int8 ready: {path}")
    if not skip_face:
        with err.status("exporting the MTCNN face detector to ONNX..."):
            paths = export_face_detector(force=force)
        out.print(f"face-mtcnn-pnet/-rnet/-onet ready: {paths[0].parent}")


# ---------------------------------------------------------------- camera


@camera_app.command("check")
def camera_check(camera: Path = typer.Argument(..., help="Camera YAML file.")) -> None:
    """Validate a camera file (errors name the file, line and field)."""
    from etle.camera.config import load_camera

    cam = load_camera(camera)
    enabled = sorted(k for k, v in cam.rules.model_dump().items() if v is not None)
    rules = ", ".join(enabled) or "none"
    size = (f"drawn for {cam.frame_size[0]}x{cam.frame_size[1]} frames" if cam.frame_size is not None
            else "no frame_size (coordinates are pixels of whatever size the footage is)")
    out.print(f"{camera}: ok -- camera '{cam.id}' ({cam.name}), rules: {rules}; {size}")


@camera_app.command("snapshot")
def camera_snapshot(
    source: str = typer.Argument(..., help="Video file or stream URL of the camera."),
    output: Path = typer.Option(..., "--output", "-o", help="Image file to write (the reference view)."),
    at: float = typer.Option(0.0, "--at", min=0.0, help="Seconds into the source."),
) -> None:
    """Save the reference view of a camera (the frame its zones are drawn on)."""
    import cv2

    from etle.ingest.sources import open_source

    src = open_source(source, max_seconds=at + 5.0)
    chosen = None
    for frame in src.frames():
        chosen = frame
        if frame.pts >= at:
            break
    if chosen is None:
        raise EtleError(f"{source}: no frame at {at} s")
    output.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(output), chosen.image):
        raise EtleError(f"cannot write {output}")
    out.print(f"reference view ({chosen.width}x{chosen.height}, {chosen.pts:.2f} s) written to {output}; "
              f"zones drawn on it: put 'frame_size: [{chosen.width}, {chosen.height}]' in the camera file")


@camera_app.command("clock")
def camera_clock(
    source: str = typer.Argument(..., help="A video file of the camera."),
    camera: Optional[Path] = typer.Option(None, "--camera", "-c", help="Camera file: its timezone and clock.date_order."),
    date_order: Optional[str] = typer.Option(None, "--date-order", help="ymd, dmy or mdy: the order of an OSD date such as 03-04-2025 (default: the camera file's)."),
    samples: int = typer.Option(12, "--samples", min=1, help="Frames read, about 1.4 s apart."),
) -> None:
    """Read the date and time the camera burns into its picture (OSD) and the recording start they
    give, and the start a recorder wrote into the file's name: what 'etle run' and 'etle batch'
    date a recording by when neither --start nor the camera file does (the picture first)."""
    from zoneinfo import ZoneInfo

    from etle.camera.config import load_camera
    from etle.clock.names import name_time
    from etle.clock.osd import clock_of_file

    cam = load_camera(camera) if camera is not None else None
    order = date_order or (cam.clock.date_order if cam is not None else None)
    if order not in (None, "ymd", "dmy", "mdy"):
        raise typer.BadParameter(f"--date-order {order!r}: one of ymd, dmy, mdy")
    tz = cam.tz if cam is not None else ZoneInfo("Asia/Jakarta")
    with err.status("reading the clock in the picture..."):
        result = clock_of_file(source, tz, date_order=order, count=samples)  # type: ignore[arg-type]
    table = Table(title=f"clock in the picture of {Path(source).name}")
    for col in ("s", "text read", "time", "score"):
        table.add_column(col, justify="right" if col in ("s", "score") else "left")
    agreeing = set(id(r) for r in result.fix.readings) if result.fix is not None else set()
    for r in result.reads:
        mark = "" if id(r) in agreeing else "  (does not agree)"
        table.add_row(f"{r.pts:.2f}", r.text, r.time.isoformat(sep=" ") + mark, f"{r.score:.2f}")
    if result.reads:
        out.print(table)
    note = result.note(Path(source).name)
    named = name_time(source, tz)
    if named is not None:
        local = named.start.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " " + (named.start.tzname() or "")
        out.print(f"{Path(source).name}: its file name says the recording began {local} ('{named.text}')")
    if result.fix is None:
        if named is not None:
            out.print(note or "no date and time found in the picture: 'etle run' dates it by its file name")
            return
        raise EtleError(note or f"{source}: no date and time found in the picture")
    out.print(note)
    if named is not None:
        gap = (result.fix.start - named.start).total_seconds()
        out.print(f"the picture's clock is {gap:+.1f} s from the file name; 'etle run' takes the picture's clock")


def _register_stage_commands() -> None:
    """Command groups that live beside their stage (etle/commands/)."""
    from etle.commands.store_cmds import register as register_store

    register_store(app, tickets_app)
    from etle.commands.web_cmds import register as register_web

    register_web(app)
    from etle.commands.zones_cmds import register as register_zones

    register_zones(app)
    from etle.commands.edge_cmds import register as register_edge

    register_edge(app)
    from etle.commands.bench_cmds import register as register_bench

    register_bench(app)
    from etle.commands.eval_cmds import register as register_eval; register_eval(app)  # noqa: E702
    from etle.commands.registry_cmds import register as register_registry

    register_registry(app, tickets_app)
    from etle.commands.letters_cmds import register as register_letters

    register_letters(app)
    from etle.commands.settlement_cmds import register as register_settlement

    register_settlement(app, tickets_app)
    from etle.commands.privacy_cmds import register as register_privacy

    register_privacy(app)
    from etle.commands.batch_cmds import register as register_batch

    register_batch(app)


_register_stage_commands()


def _one_line(text: str) -> str:
    return " ".join(text.split())


def main() -> None:
    """Entry point: runs the Typer app and turns library errors into one-line messages."""
    try:
        rc = app(standalone_mode=False)  # without standalone mode, typer.Exit(n) comes back as n
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except EtleError as exc:
        if _state["debug"]:
            raise
        sys.stderr.write(f"error: {_one_line(str(exc))}\n")
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # click usage errors and real bugs
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # usage errors (Typer's click)
            exc.show()
            sys.exit(int(exc.exit_code))
        if _state["debug"]:
            raise
        sys.stderr.write(f"internal error: {type(exc).__name__}: {_one_line(str(exc))} (rerun with --debug for the traceback)\n")
        sys.exit(70)


if __name__ == "__main__":  # pragma: no cover
    main()
