"""``etle bench FOLDER``: etle's pipeline and a naive baseline on the same clips, side by side.

The measuring lives in :mod:`etle.bench`; this module is the command: options, a progress bar
per job, the table and the optional JSON file.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import typer

from etle.commands.options import options_of
from etle.config.run import FAST_DETECT_FPS, fast_detector
from etle.errors import EtleError

__all__ = ["register"]


def _fmt_stages(stage_ms: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f}" for k, v in sorted(stage_ms.items(), key=lambda kv: -kv[1]))


def register(app: typer.Typer) -> None:
    """Add ``etle bench`` to the main app."""

    @app.command("bench")
    def bench(
        folder: Path = typer.Argument(..., help="A folder of clips (or one clip)."),
        max_seconds: Optional[float] = typer.Option(None, "--max-seconds", min=0.0, help="Only the first seconds of each clip (both sides)."),
        baseline: bool = typer.Option(True, "--baseline/--no-baseline", help="Also run the naive baseline (needs the ultralytics extra)."),
        detector: Optional[str] = typer.Option(None, "--detector", help="etle's vehicle detector (manifest name or file; default: the fast profile's, vehicle-detector-int8, or vehicle-detector on a CPU without VNNI)."),
        detect_every: int = typer.Option(0, "--detect-every", min=0, help="etle: detector on every Nth frame (0: from --detect-fps)."),
        detect_fps: float = typer.Option(FAST_DETECT_FPS, "--detect-fps", min=0.0, help="etle: detector runs per second of video (the edge default)."),
        reader: Optional[str] = typer.Option(None, "--reader", help="Plate reader for both sides (default: the measured best)."),
        country: str = typer.Option("id", "--country", help="Plate format for both sides: id (TNKB grammar) or generic."),
        camera_dir: Path = typer.Option(Path("examples/cameras"), "--camera-dir", help="Camera files named <clip stem>.yaml (rules, evidence, tickets)."),
        threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Inference threads per job (default: all cores)."),
        json_path: Optional[Path] = typer.Option(None, "--json", help="Also write every figure to this JSON file."),
    ) -> None:
        """Run etle and a naive baseline (ultralytics track() + plate OCR on every vehicle in
        every frame) on each clip, one after the other in fresh processes, and print fps,
        per-stage ms per frame, peak RSS, tracks, plates read, tickets and the ratios."""
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        from rich.table import Table

        from etle.bench import BenchOptions, Comparison, clips_in, run_job
        from etle.ingest.sources import VIDEO_SUFFIXES, open_source

        if not folder.exists():
            raise EtleError(f"{folder}: no such file or folder")
        clips = clips_in(folder, tuple(VIDEO_SUFFIXES))
        if not clips:
            raise EtleError(f"{folder}: no video clips ({', '.join(sorted(VIDEO_SUFFIXES))})")
        for clip in clips:  # bad files fail before minutes of work
            open_source(str(clip))
        from etle.plate.tnkb import get_format

        try:
            get_format(country)
        except ValueError as exc:
            raise EtleError(str(exc)) from None
        detector = detector or fast_detector()
        opts = options_of(
            BenchOptions, detector=detector, detect_every=detect_every, detect_fps=detect_fps, reader=reader, country=country,
            max_seconds=max_seconds, camera_dir=camera_dir if camera_dir.is_dir() else None,
        )
        out = Console() if Console().is_terminal else Console(width=200)
        err = Console(stderr=True)
        out.print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}; "
            f"etle: {detector}, detect {'every ' + str(detect_every) + ' frames' if detect_every else f'{detect_fps:g}/s'}; "
            f"baseline: ultralytics track() + plate detector + OCR on every vehicle, every frame"
        )
        results: list[Comparison] = []
        modes = ["etle", "baseline"] if baseline else ["etle"]
        with Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=err, transient=False,
        ) as bar:
            for clip in clips:
                info = open_source(str(clip), max_seconds=max_seconds).info
                total = info.frame_count
                if max_seconds is not None and info.fps:
                    cap = int(max_seconds * info.fps) + 1
                    total = min(total, cap) if total else cap
                got = {}
                for mode in modes:
                    task = bar.add_task(f"{clip.name[:32]} {mode}", total=total)
                    got[mode] = run_job(
                        mode, clip, opts, threads=threads,
                        progress=lambda n, t=task: bar.update(t, completed=n),
                    )
                    bar.update(task, completed=got[mode].frames)
                results.append(Comparison(got["etle"], got.get("baseline")))

        table = Table(title="etle bench")
        for col in ("clip", "side", "frames", "fps", "x real", "peak RSS MB", "tracks", "plates read", "distinct", "tickets", "ms/frame by stage"):
            table.add_column(col, justify="left" if col in ("clip", "side", "ms/frame by stage") else "right")
        for c in results:
            for r in (c.etle, c.baseline):
                if r is None:
                    continue
                side = (
                    f"etle (detect 1/{r.detect_every}, {r.detections} runs)" if r.mode == "etle" and r.detections
                    else f"etle (detect 1/{r.detect_every})" if r.mode == "etle" else "baseline"
                )
                table.add_row(
                    r.clip[:36], side, str(r.frames), f"{r.fps:.1f}", f"{r.realtime:.2f}", f"{r.peak_rss_mb:.0f}",
                    str(r.tracks), str(r.plates_read), str(r.distinct_plates), "-" if r.tickets is None else str(r.tickets),
                    _fmt_stages(r.stage_ms),
                )
            if c.speedup is not None and c.baseline is not None:
                table.add_row(
                    "", "[bold]etle / baseline", "", f"[bold]{c.speedup:.1f}x", "",
                    f"{c.etle.peak_rss_mb / max(c.baseline.peak_rss_mb, 1e-9):.2f}x", "",
                    f"{c.etle.plates_read} vs {c.baseline.plates_read}", f"{c.etle.distinct_plates} vs {c.baseline.distinct_plates}", "", "",
                )
        out.print(table)
        for c in results:
            for r in (c.etle, c.baseline):
                if r is not None and r.plates:
                    out.print(f"{r.clip} {r.mode} plates: " + ", ".join(f"#{k} {v}" for k, v in r.plates.items()))
        if json_path is not None:
            data = [
                {"etle": asdict(c.etle), "baseline": asdict(c.baseline) if c.baseline else None, "speedup": c.speedup}
                for c in results
            ]
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(data, indent=2), encoding="utf-8")
            out.print(f"figures written to {json_path}")
