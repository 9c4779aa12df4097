"""``etle eval plates``: measure the plate readers (and the plate detector) on labelled images.

Plate crops (``labels.csv``: ``filename, plate_text``): per reader, exact-match accuracy (also on
the ``all_agree`` rows of a ``--crosscheck`` file), character accuracy, the most frequent
character confusions (label char -> read char), validity lines parsed and milliseconds per plate
(reading only; loading the model is not counted).

Full photos (``--full-image``; ``labels.csv``: ``filename, plate_text, x, y, w, h``): the plate
detector runs on the whole photo; detector recall (a labelled box matched by a detection at IoU
>= 0.5, and >= 0.3), mean IoU, then end-to-end exact reads of the top detection (and of the
best-matching one) and milliseconds per image (detect + read).

The metrics live in :mod:`etle.plate.evaluate`; :func:`register` adds the command to the main
Typer app (``etle.cli`` wires it in).  Bad input raises :class:`etle.errors.EtleError`, which the
CLI turns into one line and a non-zero exit code.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from etle.errors import ConfigError, EtleError, ModelError, SourceError

__all__ = ["register", "resolve_readers"]


def _console(stderr: bool = False) -> Console:
    c = Console(stderr=stderr)
    return c if c.is_terminal else Console(stderr=stderr, width=200)


def resolve_readers(spec: str) -> list[str]:
    """Reader names for ``--reader``: ``all`` (every registered reader) or a comma-separated list;
    an unknown name raises :class:`ModelError`."""
    from etle.plate import readers

    known = list(readers._READERS)
    if spec.strip().lower() == "all":
        return known
    names = [n.strip().lower() for n in spec.split(",") if n.strip()]
    if not names:
        raise ModelError("--reader is empty; known: all, " + ", ".join(sorted(known)))
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ModelError(f"unknown plate reader '{unknown[0]}'; known: all, {', '.join(sorted(known))}")
    return names


def _why_unavailable(name: str) -> str | None:
    """Why a registered reader cannot run here (without loading it), or None."""
    from etle.plate.readers import available_readers

    try:
        status = available_readers().get(name)
    except EtleError:  # one reader's manifest entry is broken: loading the reader will tell
        return None
    return None if status in (None, "ok") else status


@contextmanager
def _progress(console: Console, enabled: bool, description: str, total: int) -> Iterator[Callable[[], None]]:
    if not enabled:
        yield lambda: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]:.1f} img/s"),
        TimeRemainingColumn(), console=console, transient=True,
    ) as bar:
        task = bar.add_task(description[:40], total=total, rate=0.0)
        t0 = time.perf_counter()
        done = [0]

        def tick() -> None:
            done[0] += 1
            bar.update(task, completed=done[0], rate=done[0] / max(time.perf_counter() - t0, 1e-6))

        yield tick


def _say(console: Console, text: str) -> None:
    """Print plain text (no rich markup: '[id]' is a format name, not a style)."""
    console.print(text, markup=False, highlight=False)


def _fmt_confusions(conf: Sequence[tuple[str, str, int]]) -> str:
    if not conf:
        return "none"
    return ", ".join(f"{a or '-'}->{b or '-'} {c}" for a, b, c in conf)


def _limit(labels: dict[str, Any], limit: Optional[int]) -> dict[str, Any]:
    if limit is None:
        return labels
    return dict(sorted(labels.items())[:limit])


def register(app: typer.Typer) -> None:
    """Add ``etle eval plates`` to the main app."""
    eval_app = typer.Typer(help="Measure the models on labelled data.", no_args_is_help=True)

    @eval_app.command("plates")
    def plates(
        images: Path = typer.Argument(..., help="Folder of images (or a data-set folder holding images/)."),
        labels: Path = typer.Option(..., "--labels", help="CSV: filename, plate_text (+ x, y, w, h with --full-image)."),
        reader: str = typer.Option("all", "--reader", help="rapidocr, rapidocr+crnn, crnn, easyocr (any registered reader), a comma list, or all."),
        country: str = typer.Option("id", "--country", help="Plate format: id (TNKB grammar) or generic."),
        crosscheck: Optional[Path] = typer.Option(None, "--crosscheck", help="CSV with filename, agreement: also report the all_agree rows."),
        full_image: bool = typer.Option(False, "--full-image", help="Images are whole photos: run the plate detector first."),
        plate_detector: Optional[str] = typer.Option(None, "--plate-detector", help="Plate detector for --full-image: tnkb, onnx, pt, cascade; default: tnkb for --country id, onnx otherwise."),
        errors: bool = typer.Option(False, "--errors", help="List every misread plate."),
        json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the figures to this JSON file."),
        top: int = typer.Option(8, "--top", min=0, help="How many confusion pairs to show."),
        limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N labelled images (by file name)."),
        no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
    ) -> None:
        """Accuracy, character confusions and speed of the plate readers on labelled images."""
        from etle.plate import evaluate as ev
        from etle.plate.tnkb import available_formats

        out, err = _console(), _console(stderr=True)
        folder = ev.images_folder(images)
        if country.lower() not in available_formats():
            raise ConfigError(f"unknown --country '{country}'; known: {', '.join(available_formats())}")
        country = country.lower()
        box_labels = ev.read_box_labels(labels) if full_image else None
        text_labels = ev.read_labels(labels) if not full_image else None
        agreement = ev.read_agreement(crosscheck) if crosscheck is not None else {}
        names = resolve_readers(reader)
        table_labels: dict[str, Any] = _limit(box_labels if full_image else text_labels, limit)  # type: ignore[arg-type]
        present = [n for n in table_labels if (folder / n).is_file()]
        if not present:
            raise SourceError(f"{folder}: none of the {len(table_labels)} labelled images is there (first: {next(iter(table_labels))})")
        missing = len(table_labels) - len(present)
        if missing:
            err.print(f"warning: {missing} labelled image(s) missing from {folder}")
            table_labels = {k: table_labels[k] for k in present}
        detector = None
        if full_image:
            from etle.plate.detector import default_plate_detector, load_plate_detector

            plate_detector = plate_detector or default_plate_detector(country)
            detector = load_plate_detector(plate_detector)
        explicit = reader.strip().lower() != "all"
        report: dict[str, Any] = {
            "images": str(folder), "labels": str(labels), "country": country, "mode": "full_image" if full_image else "crops",
            "plate_detector": plate_detector if full_image else None, "n_labels": len(table_labels), "readers": [],
        }
        ran = 0
        unreadable: list[str] = []
        for name in names:
            why = _why_unavailable(name)
            if why is not None and explicit:
                raise ModelError(f"plate reader '{name}' cannot run here: {why}")
            entry: dict[str, Any] = {"reader": name}
            report["readers"].append(entry)
            if why is not None:
                _say(out, f"{name}: unavailable: {why}")
                entry["status"] = f"unavailable: {why}"
                continue
            from etle.plate.readers import load_reader

            try:
                rdr = load_reader(name, country=country)
            except EtleError as exc:
                if explicit:
                    raise
                _say(out, f"{name}: unavailable: {exc}")
                entry["status"] = f"unavailable: {exc}"
                continue
            entry["status"] = "ok"
            ran += 1
            with _progress(err, not no_progress, f"{name} {folder.parent.name}/{folder.name}", len(table_labels)) as tick:
                if full_image:
                    rows = ev.evaluate_full_images(detector, rdr, folder, table_labels, on_row=tick, on_unreadable=unreadable.append)
                else:
                    rows = ev.evaluate_crops(rdr, folder, table_labels, on_row=tick, on_unreadable=unreadable.append)
            if full_image:
                _report_full(out, name, country, plate_detector, rows, agreement, top, errors, entry)
            else:
                _report_crops(out, name, country, rows, agreement, top, errors, entry)
        if unreadable:
            err.print(f"warning: {len(set(unreadable))} image(s) could not be read: {', '.join(sorted(set(unreadable))[:5])}")
        if json_path is not None:
            try:
                json_path.parent.mkdir(parents=True, exist_ok=True)
                json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            except OSError as exc:
                raise EtleError(f"cannot write {json_path}: {exc.strerror or exc}") from exc
            _say(out, f"figures written to {json_path}")
        if ran == 0:
            raise ModelError("no plate reader could run here (see above)")

    app.add_typer(eval_app, name="eval")


def _report_crops(out: Console, name: str, country: str, rows: list[Any], agreement: dict[str, str], top: int,
                  errors: bool, entry: dict[str, Any]) -> None:
    from etle.plate import evaluate as ev

    subsets = [("all", rows)]
    if agreement:
        subsets.append(("all_agree", [r for r in rows if agreement.get(r.filename) == "all_agree"]))
    sums = [ev.summarise(rs, reader=name, subset=sub, top_k=top) for sub, rs in subsets]
    table = Table(title=f"plate reader {name} [{country}]")
    for col in ("rows", "n", "exact", "accuracy", "char acc", "ms/plate", "median ms", "validity parsed", "unread"):
        table.add_column(col, justify="left" if col == "rows" else "right")
    for s in sums:
        table.add_row(s.subset, str(s.n), str(s.exact), f"{s.accuracy:.1%}", f"{s.char_accuracy:.1%}", f"{s.mean_ms:.1f}",
                      f"{s.median_ms:.1f}", f"{s.validity}/{s.n}", str(s.unread))
    out.print(table)
    for s in sums:
        _say(out, f"{name} [{country}] {s.subset}: exact {s.exact}/{s.n} = {s.accuracy:.1%}, char accuracy {s.char_accuracy:.1%}, "
                  f"{s.mean_ms:.1f} ms/plate (median {s.median_ms:.1f}), validity parsed {s.validity}/{s.n}")
    _say(out, f"  confusions (label -> read, '-' = dropped/extra): {_fmt_confusions(sums[0].confusions)}")
    _say(out, "  plate colours: " + ", ".join(f"{k} {v}" for k, v in sorted(sums[0].colours.items(), key=lambda kv: -kv[1])))
    entry["summaries"] = [s.as_dict() for s in sums]
    bad = [r for r in rows if r.pred != r.label]
    entry["errors"] = [{"filename": r.filename, "label": r.label, "read": r.pred} for r in bad]
    if errors:
        for r in bad:
            _say(out, f"    {r.filename}: label {r.label} read {r.pred or '-'}")


def _report_full(out: Console, name: str, country: str, detector: str, rows: list[Any], agreement: dict[str, str], top: int,
                 errors: bool, entry: dict[str, Any]) -> None:
    from etle.plate import evaluate as ev

    subsets = [("all", rows)]
    if agreement:
        subsets.append(("all_agree", [r for r in rows if agreement.get(r.filename) == "all_agree"]))
    sums = [(sub, ev.summarise_full(rs, reader=name, top_k=top)) for sub, rs in subsets]
    for sub, s in sums:
        n = s.n or 1
        _say(out, f"plate detector {detector} on {s.n} photos ({sub}): recall IoU>=0.5 {s.recall_50}/{s.n} = {s.recall_50 / n:.1%}, "
                  f"IoU>=0.3 {s.recall_30}/{s.n} = {s.recall_30 / n:.1%}, mean IoU {s.mean_iou:.3f}, "
                  f"top detection IoU>=0.5 {s.top_hits_50}/{s.n}, {s.detections_per_image:.2f} detections/photo")
        _say(out, f"{name} [{country}] end-to-end ({sub}): exact {s.exact}/{s.n} = {s.exact / n:.1%} "
                  f"(best-matching detection {s.exact_matched}/{s.n} = {s.exact_matched / n:.1%}), char accuracy {s.char_accuracy:.1%}, "
                  f"{s.ms_per_image:.1f} ms/photo (detect {s.detect_ms:.1f} + read {s.read_ms:.1f})")
    _say(out, f"  confusions (label -> read, '-' = dropped/extra): {_fmt_confusions(sums[0][1].confusions)}")
    entry["summaries"] = [{"subset": sub, **s.as_dict()} for sub, s in sums]
    bad = [r for r in rows if r.pred != r.label]
    entry["errors"] = [{"filename": r.filename, "label": r.label, "read": r.pred, "best_iou": round(r.best_iou, 3)} for r in bad]
    if errors:
        for r in bad:
            _say(out, f"    {r.filename}: label {r.label} read {r.pred or '-'} (best IoU {r.best_iou:.2f}, {r.detections} detection(s))")
