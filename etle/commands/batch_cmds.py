"""``etle batch SOURCES...``: recorded clips on a Ray cluster (or a local Ray instance).

The work lives in :mod:`etle.batch`; this module is the command: options, the progress bar
across the cluster, the per-clip table and the one-line failure message.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from etle.commands.options import options_of, parse_start
from etle.config.run import DEFAULT_DB, DEFAULT_OUT, FAST_DETECT_FPS, fast_detector
from etle.errors import EtleError

__all__ = ["register"]


class BatchFailed(EtleError):
    """Some clips of a batch failed (the others were processed)."""

    exit_code = 1


def _report_dict(report: Any) -> dict[str, Any]:
    from dataclasses import asdict

    d = asdict(report)
    d.update(frames=report.frames, video_s=round(report.video_s, 3), tickets_new=report.tickets_new,
             failed=[c.clip for c in report.failed])
    return d


def register(app: typer.Typer) -> None:
    """Add ``etle batch`` to the main app."""

    @app.command("batch")
    def batch(
        sources: list[str] = typer.Argument(..., help="Video files or folders of videos (readable at the same path by every worker)."),
        cluster: Optional[str] = typer.Option(None, "--cluster", help="Ray cluster: auto (the running one), ray://HOST:PORT (Ray Client), HOST:PORT, or local; default: a local Ray instance on this machine's cores."),
        db: str = typer.Option(DEFAULT_DB, "--db", help="Central ticket database (a PostgreSQL URL for a cluster of several machines)."),
        out_dir: str = typer.Option(str(DEFAULT_OUT), "--out", "-o", help="Central evidence store: a folder every worker can write, or s3://bucket/prefix."),
        camera: Optional[Path] = typer.Option(None, "--camera", "-c", help="Camera YAML file for every clip (its content travels with the job)."),
        camera_dir: Optional[Path] = typer.Option(None, "--camera-dir", help="Camera files named <clip stem>.yaml, one per clip."),
        workers: int = typer.Option(0, "--workers", min=0, help="Worker actors (one CPU each; 0: every CPU of the cluster)."),
        segment_s: float = typer.Option(300.0, "--segment-seconds", min=1.0, help="Cut longer recordings into segments of this many seconds."),
        overlap_s: float = typer.Option(30.0, "--overlap-seconds", min=0.0, help="Seconds each segment also reads before and after its own part (longer than --clip-after)."),
        join: bool = typer.Option(True, "--join/--no-join", help="Plan the files of one camera that continue one another (a recording the recorder split into files, dated by its picture's clock or its file names) as one recording, so a vehicle crossing a cut between files is still seen."),
        fast: bool = typer.Option(False, "--fast", help="The edge profile: int8 detector at 6 detections/s (as etle bench)."),
        detector_model: Optional[str] = typer.Option(None, "--detector", help="Vehicle detector (default: vehicle-detector; vehicle-detector-int8 with --fast)."),
        detect_every: int = typer.Option(0, "--detect-every", min=0, help="Detector on every Nth frame (0: from --detect-fps)."),
        detect_fps: Optional[float] = typer.Option(None, "--detect-fps", min=0.0, help="Detector runs per second of video (default 0: every frame; 6 with --fast)."),
        no_motion: bool = typer.Option(False, "--no-motion", help="On a detection stride, no extra detections while something crosses a line."),
        reader: Optional[str] = typer.Option(None, "--reader", help="Plate OCR backend (default: the measured best per country)."),
        plate_detector: Optional[str] = typer.Option(None, "--plate-detector", help="Plate detector: tnkb, onnx, pt, cascade."),
        no_plates: bool = typer.Option(False, "--no-plates", help="Do not read plates."),
        country: str = typer.Option("id", "--country", help="Plate format: id (TNKB grammar) or generic."),
        max_seconds: Optional[float] = typer.Option(None, "--max-seconds", min=0.0, help="Only the first seconds of each clip."),
        start: Optional[str] = typer.Option(None, "--start", help="Wall-clock start of every clip (ISO 8601); default: camera file, container metadata."),
        pre_s: float = typer.Option(2.0, "--clip-before", min=0.0, help="Seconds of clip before the violation."),
        post_s: float = typer.Option(2.0, "--clip-after", min=0.0, help="Seconds of clip after the violation."),
        keys: Optional[Path] = typer.Option(None, "--keys", help="Folder of the site signing key, as the workers see it (default $ETLE_KEYS_DIR or ./etle-keys, made absolute)."),
        threads: int = typer.Option(1, "--threads", min=1, help="Inference threads per worker."),
        device: str = typer.Option("cpu", "--device", help="Where each worker runs the detectors: cpu, cuda (an error where the worker has no GPU provider) or auto (GPU when there is one, else CPU)."),
        no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
        json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    ) -> None:
        """Process recorded clips on a Ray cluster: one task per clip (long recordings in
        overlapping segments, each violation ticketed once), models loaded once per worker,
        tickets into the central database and evidence into the central store; idempotent and
        resumable (finished segments are skipped, a rerun adds no ticket twice)."""
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        from rich.table import Table

        from etle.batch import BatchOptions, run_batch

        out, err = Console(), Console(stderr=True)
        out = out if out.is_terminal else Console(width=200)
        err = err if err.is_terminal else Console(stderr=True, width=200)
        stages = dict(
            detect_every=detect_every, detect_on_motion=not no_motion, reader=reader, plate_detector=plate_detector,
            read_plates=not no_plates, country=country, pre_s=pre_s, post_s=post_s, threads=threads,
            device=device.strip().lower(),
        )
        if detector_model is not None:
            stages["detector"] = detector_model
        if detect_fps is not None:
            stages["detect_fps"] = detect_fps
        profile = {"detector": fast_detector(), "detect_fps": FAST_DETECT_FPS} if fast else {}
        options = options_of(BatchOptions, **{**profile, **stages})
        show = not no_progress and not json_out
        progress: Any = None
        tasks: dict[str, Any] = {}
        overall: list[Any] = [None]

        def on_plan(jobs: list[Any], todo: list[Any], n_workers: int) -> None:
            from etle.batch.plan import frames_in

            if not show or not todo:
                return
            progress.start()
            per_clip: dict[str, int] = {}
            names = {j.sha256: j.name for j in jobs}
            fps = {j.sha256: j.fps for j in jobs}
            for t in todo:
                per_clip[t.clip_sha256] = per_clip.get(t.clip_sha256, 0) + frames_in(t.segment, fps[t.clip_sha256])
            overall[0] = progress.add_task(f"[bold]{len(per_clip)} clip(s), {len(todo)} segment(s), {n_workers} worker(s)",
                                           total=sum(per_clip.values()), fps=0.0)
            for sha, total in per_clip.items():
                tasks[sha] = progress.add_task(f"  {names[sha][:40]}", total=total, fps=0.0)

        import time

        t0 = time.perf_counter()

        def on_progress(frames: dict[str, int], _done: dict[str, int]) -> None:
            if progress is None or overall[0] is None:
                return
            total = 0
            elapsed = max(time.perf_counter() - t0, 1e-6)
            for sha, task in tasks.items():
                n = min(frames.get(sha, 0), int(progress.tasks[task].total or 0))  # a retried segment counts again
                total += n
                progress.update(task, completed=n, fps=n / elapsed)
            progress.update(overall[0], completed=total, fps=total / elapsed)

        if show:
            progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[fps]:.0f} fps"),
                TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=False,
            )
        try:
            report = run_batch(
                list(sources), db_url=db, evidence=out_dir, options=options, cluster=cluster, workers=workers, camera=camera,
                camera_dir=camera_dir, start=parse_start(start), max_seconds=max_seconds, segment_s=segment_s,
                overlap_s=overlap_s, join=join, keys_dir=keys, on_plan=on_plan, on_progress=on_progress,
            )
        finally:
            if progress is not None:
                progress.stop()
        if json_out:
            out.print_json(json.dumps(_report_dict(report), default=str))
        else:
            table = Table(title=f"etle batch: {report.workers} worker(s) on {report.nodes} node(s), {report.cluster_cpus:.0f} CPU(s)")
            for col in ("clip", "segments", "done before", "frames", "video s", "new tickets", "already stored",
                        "repeats rejected", "status"):
                table.add_column(col, justify="left" if col in ("clip", "status") else "right")
            from etle.ingest.joined import recording_label

            for c in report.clips:
                table.add_row(recording_label(c.clip, c.parts), str(c.segments), str(c.segments_done_before), str(c.frames),
                              f"{c.video_s:.1f}", str(c.tickets_new), str(c.tickets_present), str(c.repeats_rejected),
                              f"[red]failed[/red]: {c.error[:80]}" if c.error else "ok")
            out.print(table)
            if report.frames:
                fps = report.frames / report.wall_s if report.wall_s > 0 else 0.0
                out.print(f"{report.frames} frames ({report.video_s:.1f} s of video) in {report.wall_s:.1f} s: "
                          f"{fps:.1f} fps, {report.video_s / max(report.wall_s, 1e-6):.2f}x real time")
            if report.stage_total_ms and report.frames:
                stages = sorted(report.stage_total_ms.items(), key=lambda kv: -kv[1])
                out.print("stage ms/frame: " + ", ".join(f"{k} {v / report.frames:.1f}" for k, v in stages))
            repeats = sum(c.repeats_rejected for c in report.clips)
            also = f" ({repeats} rejected as repeats of an earlier segment's ticket)" if repeats else ""
            out.print(f"{report.tickets_new} new ticket(s){also} in {db}; evidence in {out_dir}")
        if report.failed:
            first = report.failed[0]
            more = f" (and {len(report.failed) - 1} more)" if len(report.failed) > 1 else ""
            raise BatchFailed(f"{len(report.failed)} of {len(report.clips)} clip(s) failed: "
                              f"{Path(first.clip).name}: {first.error}{more}")
