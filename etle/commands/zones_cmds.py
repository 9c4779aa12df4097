"""``etle zones preview``: draw a camera file's zones over a frame, for the installer to check.

Every line (with the side traffic approaches from), polygon (with lane directions), the
signal region, the view guard's ignored regions, the calibration points (with their metre
coordinates) and the detector's zone tiles (``detect_tiles``, with what each gains) are drawn over one frame of the camera's footage, with a legend of the enabled
rules and the zones each uses.  :func:`draw_zones` is the pure drawing function;
:func:`register` adds the command to the main Typer app (``etle.cli`` wires it in).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np
import typer

from etle.detect.tiles import MIN_GAIN
from etle.errors import EtleError

__all__ = ["draw_zones", "frame_at", "register", "rule_zones"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})

# BGR colours that stay readable on road scenes
_PALETTE = [(0, 215, 255), (255, 144, 30), (60, 220, 60), (203, 102, 255), (0, 128, 255), (255, 255, 0), (180, 105, 255)]
_LINE = (0, 0, 255)
_SIGNAL = (0, 255, 255)
_IGNORE = (128, 128, 128)
_CALIB = (255, 0, 255)
_TILE = (255, 255, 255)


def rule_zones(camera: Any) -> dict[str, list[str]]:
    """Enabled rule -> the zone names it uses."""
    out: dict[str, list[str]] = {}
    rules = camera.rules
    for name in type(rules).model_fields:
        opts = getattr(rules, name)
        if opts is None:
            continue
        used: list[str] = []
        for attr in ("line", "zone"):
            v = getattr(opts, attr, None)
            if isinstance(v, str):
                used.append(v)
        for attr in ("zones", "lanes"):
            used.extend(getattr(opts, attr, None) or ())
        used.extend(getattr(opts, "limits_kmh", None) or {})
        out[name] = used
    return out


def _pts(points: Any) -> np.ndarray:
    return np.round(np.asarray(points, np.float64)).astype(np.int32)


def _text(img: np.ndarray, text: str, org: tuple[int, int], colour: tuple[int, int, int], scale: float) -> None:
    thick = max(1, int(round(scale * 2)))
    x = int(min(max(org[0], 2), img.shape[1] - 2))
    y = int(min(max(org[1], 12), img.shape[0] - 4))
    cv2.putText(img, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(img, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thick, cv2.LINE_AA)


def _arrow(img: np.ndarray, start: tuple[float, float], vec: tuple[float, float], length: float, colour, width: int) -> None:
    n = math.hypot(*vec)
    if n == 0:
        return
    end = (start[0] + vec[0] / n * length, start[1] + vec[1] / n * length)
    cv2.arrowedLine(
        img, (int(round(start[0])), int(round(start[1]))), (int(round(end[0])), int(round(end[1]))),
        colour, width, cv2.LINE_AA, tipLength=0.3,
    )


def _centroid(poly: Any) -> tuple[float, float]:
    arr = np.asarray(poly, np.float64)
    return float(arr[:, 0].mean()), float(arr[:, 1].mean())


def draw_zones(image: np.ndarray, camera: Any, *, legend: bool = True) -> np.ndarray:
    """A copy of ``image`` (BGR) with the camera's zones, signal region and calibration drawn."""
    from etle.camera.config import LineZone, PolygonZone, RoiSignalConfig

    out = image.copy()
    h, w = out.shape[:2]
    scale = max(0.35, min(w, h) / 700.0)
    width = max(1, int(round(min(w, h) / 250)))
    arrow_len = max(20.0, min(w, h) / 8)
    overlay = out.copy()
    polys = [(n, z) for n, z in camera.zones.items() if isinstance(z, PolygonZone)]
    for i, (name, zone) in enumerate(polys):
        cv2.fillPoly(overlay, [_pts(zone.polygon)], _PALETTE[i % len(_PALETTE)])
    ignored = tuple(camera.view_guard.ignore) if camera.view_guard is not None else ()
    for poly in ignored + tuple(camera.overlays):
        cv2.fillPoly(overlay, [_pts(poly)], _IGNORE)
    cv2.addWeighted(overlay, 0.25, out, 0.75, 0, dst=out)
    for i, (name, zone) in enumerate(polys):
        colour = _PALETTE[i % len(_PALETTE)]
        cv2.polylines(out, [_pts(zone.polygon)], True, colour, width, cv2.LINE_AA)
        c = _centroid(zone.polygon)
        if zone.direction is not None:
            _arrow(out, (c[0] - zone.direction[0] / max(math.hypot(*zone.direction), 1e-9) * arrow_len / 2,
                         c[1] - zone.direction[1] / max(math.hypot(*zone.direction), 1e-9) * arrow_len / 2),
                   zone.direction, arrow_len, colour, width + 1)
        _text(out, name, (int(c[0]) - 20, int(c[1]) - 6), colour, scale)
    for name, zone in camera.zones.items():
        if not isinstance(zone, LineZone):
            continue
        cv2.polylines(out, [_pts(zone.points)], False, _LINE, width + 1, cv2.LINE_AA)
        mid = zone.points[len(zone.points) // 2 - 1] if len(zone.points) > 2 else zone.points[0]
        nxt = zone.points[len(zone.points) // 2]
        m = ((mid[0] + nxt[0]) / 2.0, (mid[1] + nxt[1]) / 2.0)
        # the direction of travel across the line: from the approach side to the far side
        if zone.direction is not None:
            travel = zone.direction
        else:
            assert zone.approach_side is not None
            dx, dy = nxt[0] - mid[0], nxt[1] - mid[1]
            normal = (-dy, dx)
            to_app = (zone.approach_side[0] - m[0], zone.approach_side[1] - m[1])
            sign = 1.0 if normal[0] * to_app[0] + normal[1] * to_app[1] > 0 else -1.0
            travel = (-sign * normal[0], -sign * normal[1])
            cv2.drawMarker(out, (int(zone.approach_side[0]), int(zone.approach_side[1])), _LINE,
                           cv2.MARKER_CROSS, int(8 * scale + 6), width)
        n = math.hypot(*travel)
        start = (m[0] - travel[0] / n * arrow_len * 0.6, m[1] - travel[1] / n * arrow_len * 0.6)
        _arrow(out, start, travel, arrow_len * 1.2, _LINE, width)
        _text(out, name, (int(zone.points[0][0]) + 4, int(zone.points[0][1]) - 6), _LINE, scale)
    if isinstance(camera.signal, RoiSignalConfig):
        poly = camera.signal.polygon
        cv2.polylines(out, [_pts(poly)], True, _SIGNAL, width + 1, cv2.LINE_AA)
        x0, y0 = np.min(np.asarray(poly), axis=0)
        _text(out, "signal", (int(x0), int(y0) - 4), _SIGNAL, scale)
    if camera.calibration is not None:
        for (x, y), (wx, wy) in zip(camera.calibration.image_points, camera.calibration.world_points, strict=True):
            cv2.circle(out, (int(round(x)), int(round(y))), width + 3, _CALIB, -1, cv2.LINE_AA)
            _text(out, f"({wx:g},{wy:g})m", (int(x) + 5, int(y) - 5), _CALIB, scale * 0.8)
    tiles = _tiles(camera, w, h)
    for tile, g in tiles:
        colour = _TILE if g >= MIN_GAIN else _IGNORE
        cv2.rectangle(out, (int(tile.x1), int(tile.y1)), (int(tile.x2) - 1, int(tile.y2) - 1), colour, max(1, width - 1), cv2.LINE_AA)
        _text(out, f"tile x{g:.1f}" if g >= MIN_GAIN else "tile: no gain", (int(tile.x1) + 4, int(tile.y2) - 6), colour, scale * 0.8)
    if legend:
        lines = [f"{camera.id}  {w}x{h}"]
        signal = camera.signal.type if camera.signal is not None else "none"
        reading = signal_reading(camera, image)
        lines.append(f"signal: {signal}" + (f", reads {reading[0]}" if reading else ""))
        for rule, used in rule_zones(camera).items():
            lines.append(f"{rule}: {', '.join(used) or '-'}")
        if camera.detect_tiles:
            lines.append(f"detect_tiles: {', '.join(camera.detect_tiles)} ({_tiles_note(tiles)})")
        y = int(16 * scale + 8)
        for line in lines:
            _text(out, line, (6, y), (255, 255, 255), scale * 0.85)
            y += int(18 * scale + 6)
    return out


def _tiles(camera: Any, width: int, height: int) -> list[tuple[Any, float]]:
    """The camera's detect tiles on a ``width`` x ``height`` frame with their gain (a YOLOv8
    640-pixel input)."""
    if not getattr(camera, "detect_tiles", ()):
        return []
    from etle.detect.tiles import planned_tiles, tile_zones

    return planned_tiles(tile_zones(camera), width, height)


def _tiles_note(tiles: list[tuple[Any, float]]) -> str:
    run = [g for _, g in tiles if g >= MIN_GAIN]
    if not run:
        return "no tile runs: the detector does not shrink this frame"
    return f"{len(run)} tile(s) run, {min(run):.1f}-{max(run):.1f}x the frame's pixels"


def frame_at(source: str, at: float) -> tuple[np.ndarray, float]:
    """The BGR frame of ``source`` (a video, a stream or one image) at ``at`` s, and its pts."""
    p = Path(source)
    if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise EtleError(f"{source}: cannot read the image")
        return img, 0.0
    from etle.ingest.sources import open_source

    src = open_source(source, max_seconds=at + 5.0)
    chosen = None
    for frame in src.frames():
        chosen = frame
        if frame.pts >= at:
            break
    if chosen is None:
        raise EtleError(f"{source}: no frame at {at} s")
    return np.array(chosen.image), chosen.pts


def register(app: typer.Typer) -> None:
    """Add ``etle zones preview`` to the main app."""
    zones_app = typer.Typer(help="Camera zones: draw them over the footage to check a camera file.", no_args_is_help=True)

    @zones_app.command("preview")
    def preview(
        source: str = typer.Argument(..., help="Video file, stream URL or image of the camera."),
        camera: Path = typer.Option(..., "--camera", "-c", help="Camera YAML file."),
        output: Path = typer.Option(Path("zones.png"), "--output", "-o", help="Image file to write."),
        at: Optional[float] = typer.Option(
            None, "--at", min=0.0, help="Seconds into the source (default: the view guard's reference time, else 0)."
        ),
        legend: bool = typer.Option(True, "--legend/--no-legend", help="Print the rules and zones in a corner."),
    ) -> None:
        """Draw every zone, line, lane direction, signal region and calibration point over a frame."""
        from etle.camera.config import CameraConfigError, load_camera
        from etle.camera.fit import fit_camera

        cam = load_camera(camera)
        when = at
        if when is None:
            when = cam.view_guard.reference_at_s if cam.view_guard is not None and cam.view_guard.reference_at_s else 0.0
        image, pts = frame_at(source, when)
        h, w = image.shape[:2]
        drawn_for = cam.frame_size
        try:  # as `etle run` fits the camera to the footage's size
            cam = fit_camera(cam, w, h)
            outside: list[str] = []
        except CameraConfigError as exc:  # drawn as written, with the reason
            outside = list(exc.problems)
        drawn = draw_zones(image, cam, legend=legend)
        output.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(output), drawn):
            raise EtleError(f"cannot write {output} (unknown image type?)")
        typer.echo(f"zones of '{cam.id}' drawn over {source} at {pts:.2f} s ({w}x{h}) -> {output}")
        if drawn_for is None:
            typer.echo(f"the camera file declares no frame_size: if these are the frames its zones were drawn on, "
                       f"add 'frame_size: [{w}, {h}]' so footage of another size gets them scaled")
        elif tuple(drawn_for) != (w, h) and not outside:
            typer.echo(f"coordinates scaled from the file's frame_size {drawn_for[0]}x{drawn_for[1]} to {w}x{h}")
        if cam.detect_tiles:
            typer.echo(f"detect_tiles: {_tiles_note(_tiles(cam, w, h))}")
        reading = signal_reading(cam, image)
        if reading is not None:
            typer.echo(f"signal roi reads {reading[0]} at {pts:.2f} s: {reading[1]}")
        for warning in outside:
            typer.echo(f"warning: {warning}", err=True)

    @zones_app.command("signal")
    def signal_cmd(
        source: str = typer.Argument(..., help="Video file or stream of the camera."),
        camera: Path = typer.Option(..., "--camera", "-c", help="Camera YAML file with a `signal` section."),
        max_seconds: Optional[float] = typer.Option(None, "--max-seconds", min=0.0, help="Read only this much of the source."),
        json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the timeline to this JSON file."),
        no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
    ) -> None:
        """The signal state over a clip as the camera file reads it (debounced, as the rules see
        it): to check a lamp polygon (`type: roi`) or a plan against what the footage shows."""
        from rich.progress import Progress

        from etle.camera.config import load_camera
        from etle.camera.fit import fit_camera
        from etle.ingest.sources import open_source
        from etle.pipeline import signal_timeline
        from etle.signal.source import build_signal

        cam = load_camera(camera)
        if cam.signal is None:
            raise EtleError(f"{camera}: the camera file has no `signal` section")
        src = open_source(source, max_seconds=max_seconds)
        cam = fit_camera(cam, src.info.width, src.info.height)  # the lamp's region, as `etle run` places it
        signal = build_signal(cam)
        assert signal is not None  # the camera has a signal section (checked above)
        total = src.info.frame_count
        if total is not None and max_seconds is not None and src.info.fps:
            total = min(total, int(max_seconds * src.info.fps) + 1)
        samples: list[tuple[float, str]] = []
        kind = cam.signal.type if cam.signal is not None else ""
        with Progress(transient=True, disable=no_progress) as bar:
            task = bar.add_task("frames", total=total)
            for frame in src.frames():
                samples.append((frame.pts, signal.state_at(frame).state))
                bar.advance(task)
        timeline = signal_timeline(samples, kind)
        if timeline is None:
            raise EtleError(f"{source}: no frames")
        for start, end, state in timeline["segments"]:
            typer.echo(f"{start:8.2f} - {end:8.2f} s  {state}")
        seconds: dict[str, float] = {}
        for start, end, state in timeline["segments"]:
            seconds[state] = seconds.get(state, 0.0) + end - start
        typer.echo(f"{len(samples)} frames, signal '{kind}' of '{cam.id}': "
                   + ", ".join(f"{state} {s:.1f} s" for state, s in sorted(seconds.items())))
        if json_path is not None:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps({"camera": cam.id, "source": source, "frames": len(samples), **timeline},
                                            indent=2) + "\n", encoding="utf-8")
            typer.echo(f"timeline written to {json_path}")

    app.add_typer(zones_app, name="zones")


def signal_reading(camera: Any, image: np.ndarray) -> tuple[str, str] | None:
    """For a camera whose signal is the lamp colour (``roi``): the raw reading of ``image``'s
    lamp and each colour's lit mass as a share of the polygon, to check the polygon and the
    thresholds on a frame; None for other signals."""
    from etle.camera.config import RoiSignalConfig
    from etle.signal.source import RoiColourSignal

    if not isinstance(camera.signal, RoiSignalConfig):
        return None
    reader = RoiColourSignal.from_config(camera.signal)
    read, _ = reader.classify(image)
    mass, area = reader.colour_mass(image)
    shares = ", ".join(f"{c} {m / area if area else 0.0:.4f}" for c, m in mass.items())
    cfg = camera.signal
    return read, (f"lit colour mass as a share of the polygon: {shares} (a colour needs {cfg.min_fraction:g} "
                  f"and {cfg.min_margin:g}x the next)")

