"""``etle privacy blur`` and ``etle eval privacy``: public (blurred) copies of evidence pictures,
and the face recall of the blur on labelled real frames (:mod:`etle.privacy`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from etle.errors import EtleError

__all__ = ["register", "register_eval"]


def _console(stderr: bool = False) -> Console:
    c = Console(stderr=stderr)
    return c if c.is_terminal else Console(stderr=stderr, width=200)


def _say(console: Console, text: str) -> None:
    console.print(text, markup=False, highlight=False)


def bundles_under(paths: list[Path]) -> list[Path]:
    """The evidence bundles named: a bundle folder itself, or every bundle below a folder."""
    from etle.evidence.builder import MANIFEST_NAME, PUBLIC_DIR

    out: list[Path] = []
    for p in paths:
        if not p.is_dir():
            raise EtleError(f"{p}: no such folder")
        if (p / MANIFEST_NAME).is_file():
            out.append(p)
            continue
        found = sorted(m.parent for m in p.rglob(MANIFEST_NAME)
                       if m.parent.name != PUBLIC_DIR and not any(part.startswith(".") for part in m.relative_to(p).parts))
        if not found:
            raise EtleError(f"{p}: no evidence bundle (manifest.json) in it")
        out.extend(found)
    return list(dict.fromkeys(out))


def register(app: typer.Typer) -> None:
    """Add ``etle privacy blur`` to the main app."""
    privacy_app = typer.Typer(help="Public (blurred) copies of evidence pictures.", no_args_is_help=True)

    @privacy_app.command("blur")
    def blur(
        bundles: list[Path] = typer.Argument(..., help="Evidence bundle folders, or folders holding bundles (an evidence root)."),
        force: bool = typer.Option(False, "--force", help="Make the copies again even when they are current."),
        no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
    ) -> None:
        """Make the public copies of every picture of the bundles: bystanders' faces and heads and
        other vehicles' plates blurred, in each bundle's public/ with public/manifest.json (the
        signed originals stay as they are). One line per bundle; exit 7 when any failed."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        from etle.privacy import PrivacyError, make_public

        out, err = _console(), _console(stderr=True)
        folders = bundles_under(bundles)
        failed = 0
        with Progress(TextColumn("[bold]blurring"), BarColumn(), MofNCompleteColumn(), console=err,
                      transient=True, disable=no_progress) as bar:
            task = bar.add_task("blur", total=len(folders))
            for folder in folders:
                try:
                    r = make_public(folder, force=force)
                except PrivacyError as exc:
                    failed += 1
                    _say(err, f"error: {' '.join(str(exc).split())}")
                else:
                    what = "made" if r.made else "current"
                    _say(out, f"{folder}: {what}: {r.faces} face(s), {r.heads} head(s), {r.plates} plate(s) hidden; "
                              f"{', '.join(sorted(r.files))}")
                bar.advance(task)
        _say(out, f"{len(folders) - failed} of {len(folders)} bundle(s) have public copies")
        if failed:
            raise typer.Exit(PrivacyError.exit_code)

    app.add_typer(privacy_app, name="privacy")


def register_eval(eval_app: typer.Typer) -> None:
    """Add ``etle eval privacy`` to the ``eval`` group."""

    @eval_app.command("privacy")
    def privacy(
        truth: Path = typer.Argument(..., exists=True, dir_okay=False, help="Faces truth file (eval/truth/faces.yaml)."),
        heads: Optional[Path] = typer.Argument(None, help="Optional YOLO folder of labelled heads (e.g. the helmet set's test split): face recall on heads without a helmet."),
        limit: Optional[int] = typer.Option(None, "--limit", min=1, help="At most this many photos of the heads folder."),
        json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the figures to this JSON file."),
        no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
    ) -> None:
        """Face recall of the privacy blur on labelled frames of the shared clips: the face
        detector alone, with the heads of the vehicle detector's person boxes, and how many labelled
        faces the face detector still finds after blurring."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        from etle.privacy.evaluate import evaluate_frames, evaluate_heads, load_truth
        from etle.privacy.public import default_detectors

        out, err = _console(), _console(stderr=True)
        t = load_truth(truth)
        dets = default_detectors()
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), console=err,
                      transient=True, disable=no_progress) as bar:
            task = bar.add_task("frames", total=len(t.frames))
            report = evaluate_frames(t, dets.faces, dets.objects, progress=lambda: bar.advance(task))
            if heads is not None:
                from etle.privacy.evaluate import load_yolo_heads

                n = len(load_yolo_heads(heads, {}))
                task2 = bar.add_task("heads", total=min(n, limit or n))
                report.heads_set = evaluate_heads(heads, dets.faces, limit=limit, progress=lambda: bar.advance(task2))
        d = report.as_dict()
        n = d["faces"] or 1
        for f in report.frames:
            _say(out, f"  {f.clip} {f.at:5.1f} s: {f.faces} faces, detector {f.by_detector}, with heads {f.with_heads}, "
                      f"after blur {f.after_blur} ({f.ms:.0f} ms)")
        _say(out, f"face detector ({dets.names['faces']}): {d['found_by_detector']}/{d['faces']} = {d['found_by_detector'] / n:.1%} "
                  f"of the labelled faces")
        _say(out, f"with person heads: {d['found_with_heads']}/{d['faces']} = {d['found_with_heads'] / n:.1%}")
        _say(out, f"after blurring: the face detector still finds {d['found_after_blur']}/{d['faces']} labelled faces; "
                  f"{d['ms_per_frame']:.0f} ms/frame (faces + persons)")
        if report.heads_set is not None:
            h = report.heads_set
            rec = "-" if h["recall"] is None else f"{h['recall']:.1%}"
            _say(out, f"heads without a helmet ({h['folder']}, {h['images']} photos): face detector {h['found']}/{h['heads']} = {rec}")
        if json_path is not None:
            from etle.onnxrt import cpu

            try:
                json_path.parent.mkdir(parents=True, exist_ok=True)
                json_path.write_text(json.dumps({"kind": "privacy", "truth": str(truth), **d, "machine": cpu()}, indent=2) + "\n", encoding="utf-8")
            except OSError as exc:
                raise EtleError(f"cannot write {json_path}: {exc.strerror or exc}") from exc
