"""Plate colour and category: the classifier on synthetic crops, the category table, the
consensus vote, the plate stage, and the colour on tickets (store round trip, export, CLI list)."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest

from etle.plate.colour import COLOURS, classify_colour
from etle.plate.consensus import PlateConsensus, WeightedRead, vote_colour
from etle.plate.tnkb import category_of, plate_categories
from etle.types import PlateRead

# BGR plate backgrounds and contrasting texts
WHITE, BLACK = (235, 235, 235), (25, 25, 25)
YELLOW, RED, GREEN = (20, 200, 235), (35, 35, 190), (50, 140, 30)
SOFT_BLACK, SOFT_WHITE = (30, 30, 30), (245, 245, 245)


def plate(bg: tuple[int, int, int], fg: tuple[int, int, int], *, text: str = "BH 1234 AB", size: tuple[int, int] = (64, 200),
          noise: float = 8.0, seed: int = 0, blur: bool = True, body: tuple[int, int, int] | None = (90, 90, 90),
          strip: tuple[int, int, int] | None = None) -> np.ndarray:
    """A synthetic plate crop: background, a two-line text, a 6 % rim of vehicle body, noise."""
    h, w = size
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = bg
    if strip is not None:
        img[int(h * 0.8):, :] = strip
    scale = h / 60.0
    cv2.putText(img, text, (int(w * 0.06), int(h * 0.58)), cv2.FONT_HERSHEY_SIMPLEX, 0.95 * scale, fg, max(2, int(3 * scale)), cv2.LINE_AA)
    cv2.putText(img, "08.27", (int(w * 0.38), int(h * 0.78)), cv2.FONT_HERSHEY_SIMPLEX, 0.35 * scale, fg, 1, cv2.LINE_AA)
    if body is not None:  # the plate stage pads the detector box: some vehicle around the plate
        py, px = max(1, int(h * 0.06)), max(1, int(w * 0.06))
        framed = np.zeros((h + 2 * py, w + 2 * px, 3), np.uint8)
        framed[:] = body
        framed[py:py + h, px:px + w] = img
        img = framed
    rng = np.random.default_rng(seed)
    out = img.astype(np.float32) + rng.normal(0, noise, img.shape)
    out = np.clip(out, 0, 255).astype(np.uint8)
    return cv2.GaussianBlur(out, (3, 3), 0) if blur else out


CASES = [
    ("white", WHITE, BLACK),
    ("black", BLACK, SOFT_WHITE),
    ("yellow", YELLOW, BLACK),
    ("yellow", YELLOW, SOFT_WHITE),
    ("red", RED, SOFT_WHITE),
    ("red", RED, BLACK),
    ("green", GREEN, SOFT_WHITE),
    ("green", GREEN, BLACK),
]


@pytest.mark.parametrize(("colour", "bg", "fg"), CASES, ids=lambda v: str(v))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_background_colour_of_synthetic_plates(colour: str, bg, fg, seed: int) -> None:
    res = classify_colour(plate(bg, fg, seed=seed, noise=6.0 + 4 * seed))
    assert res.colour == colour, res
    assert 0.0 < res.confidence <= 1.0


@pytest.mark.parametrize(("colour", "bg", "fg"), CASES, ids=lambda v: str(v))
def test_colour_survives_heavy_noise_small_crops_and_dim_light(colour: str, bg, fg) -> None:
    assert classify_colour(plate(bg, fg, noise=20.0, seed=5)).colour == colour
    assert classify_colour(plate(bg, fg, size=(22, 70), noise=8.0, seed=3)).colour == colour
    dim = (plate(bg, fg, seed=4).astype(np.float32) * 0.55).astype(np.uint8)  # dusk: darker, same hue
    assert classify_colour(dim).colour == colour


def test_polarity_decides_white_and_black_under_a_colour_cast() -> None:
    # night LEDs tint a black plate blue; a white plate in shade goes bluish: no plate is blue
    assert classify_colour(plate((110, 50, 25), (250, 225, 205))).colour == "black"
    assert classify_colour(plate((215, 190, 170), (40, 30, 25))).colour == "white"
    # a grey plate with darker text is a dirty white plate, with lighter text a faded black one
    assert classify_colour(plate((150, 150, 150), (40, 40, 40))).colour == "white"
    assert classify_colour(plate((70, 70, 70), (200, 200, 200))).colour == "black"


def test_white_plate_with_a_blue_strip_is_white_blue_but_a_blue_car_is_not() -> None:
    ev = plate(WHITE, BLACK, strip=(170, 90, 20), body=(90, 90, 90))
    assert classify_colour(ev).colour == "white_blue"
    assert classify_colour(ev, ev_strip=False).colour == "white"
    blue_car = plate(WHITE, BLACK, body=(170, 90, 20))  # a white plate on a blue car body
    assert classify_colour(blue_car).colour == "white"


def test_undecidable_inputs_give_none() -> None:
    assert classify_colour(None).colour is None
    assert classify_colour(np.zeros((3, 3, 3), np.uint8)).colour is None
    grey = cv2.cvtColor(cv2.cvtColor(plate(YELLOW, BLACK), cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    assert classify_colour(grey).colour is None  # an infrared camera: yellow looks white there
    assert classify_colour(plate((200, 40, 180), (250, 250, 250), body=None)).colour in (None, "black")  # magenta: no plate


def test_category_table_maps_every_colour() -> None:
    table = plate_categories()
    assert set(COLOURS) <= set(table)
    assert {c: category_of(c) for c in COLOURS} == {
        "white": "private", "black": "private", "yellow": "public_transport", "red": "government",
        "green": "free_trade_zone", "white_blue": "electric",
    }
    assert category_of("purple") is None and category_of(None) is None
    assert category_of("red", "B1RI") == "state_official"  # a special series wins over the colour
    assert category_of("white", "CD1234") == "diplomatic"
    assert table["yellow"].odd_even_exempt and not table["white"].odd_even_exempt


# ---------------------------------------------------------------- consensus


def read(text: str, colour: str | None, conf: float = 0.9, frame: int = 0) -> PlateRead:
    return PlateRead(text=text, confidence=conf, frame_index=frame, colour=colour)


def test_colour_vote_is_weighted() -> None:
    reads = [WeightedRead(read("BH1234AB", "white"), 1.0, 0.2), WeightedRead(read("BH1234AB", "white"), 1.0, 0.2),
             WeightedRead(read("BH1234AB", "yellow"), 1.0, 0.9), WeightedRead(read("BH1234AB", None), 1.0, 5.0)]
    assert vote_colour(reads) == "yellow"  # 0.9 > 0.2 + 0.2; a read without colour does not vote
    assert vote_colour(reads[:2] + [WeightedRead(read("BH1234AB", "yellow"), 1.0, 0.3)]) == "white"
    assert vote_colour([WeightedRead(read("X", None), 1.0, 1.0)]) is None
    zero = [WeightedRead(read("X", "red"), 0.0, 0.0), WeightedRead(read("X", "red"), 0.0, 0.0), WeightedRead(read("X", "green"), 0.0, 0.0)]
    assert vote_colour(zero) == "red"  # all weightless: counted


def test_consensus_puts_the_voted_colour_and_category_on_the_result() -> None:
    c = PlateConsensus()
    c.add(1, read("BH1234AB", "yellow", 0.9, 1), quality=1.0)
    c.add(1, read("BH1234AB", "yellow", 0.8, 2), quality=1.0)
    c.add(1, read("BH1234AB", "white", 0.95, 3), quality=0.5)
    res = c.result(1)
    assert (res.text, res.colour, res.category) == ("BH1234AB", "yellow", "public_transport")
    c.add(2, read("BH99AB", None, 0.9, 1))
    assert (c.result(2).colour, c.result(2).category) == (None, None)
    g = PlateConsensus("generic")
    g.add(1, read("AB123CD", "white"))
    assert (g.result(1).colour, g.result(1).category) == ("white", None)  # categories are Indonesian


def test_plate_stage_classifies_the_colour_for_any_reader() -> None:
    from etle.plate.stage import PlateStage
    from etle.types import Box, Detection, Frame, TrackedObject

    crop = plate(RED, SOFT_WHITE, size=(60, 180), body=None)

    class Det:
        def detect(self, image):
            return [Detection(Box(40, 100, 220, 160), "plate", 0.9)]

    class Reader:  # a reader that knows nothing of colours
        name = "fake"

        def read(self, pixels):
            return PlateRead(text="BH1AB", confidence=0.9)

    img = np.full((300, 300, 3), 90, np.uint8)
    img[100:160, 40:220] = crop
    img.setflags(write=False)
    frame = Frame(image=img, index=0, pts=0.0, source="s")
    stage = PlateStage(Det(), Reader(), plate_pad=0.0)
    reads = stage.process(frame, [TrackedObject(track_id=7, box=Box(0, 0, 300, 300), label="car", confidence=0.9)])
    assert len(reads) == 1 and reads[0].colour == "red" and reads[0].category == "government"
    res = stage.result(7)
    assert (res.colour, res.category) == ("red", "government")


# ---------------------------------------------------------------- tickets

T0 = datetime(2026, 11, 28, 3, 0, tzinfo=timezone.utc)


def test_ticket_round_trip_export_and_list(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from etle.cli import app
    from etle.store import TicketIn, TicketStore
    from etle.store.export import CSV_COLUMNS

    url = f"sqlite:///{tmp_path / 't.db'}"
    with TicketStore(url) as store:
        a = store.add(TicketIn(camera_id="c", rule="red_light", track_id=1, occurred_at=T0, plate_text="BH1234AB",
                               plate_confidence=0.9, plate_colour="yellow", plate_category="public_transport"))
        b = store.add(TicketIn(camera_id="c", rule="red_light", track_id=2, occurred_at=T0, plate_text="BH99AB"))
        ta, tb = store.get(a), store.get(b)
        assert (ta.plate_colour, ta.plate_category) == ("yellow", "public_transport")
        assert (tb.plate_colour, tb.plate_category) == ("", "")
    assert "plate_colour" in CSV_COLUMNS and "plate_category" in CSV_COLUMNS
    res = CliRunner().invoke(app, ["tickets", "export", "--db", url, "--format", "csv"])
    assert res.exit_code == 0, res.output
    rows = {r["track_id"]: r for r in csv.DictReader(io.StringIO(res.stdout))}
    assert (rows["1"]["plate_colour"], rows["1"]["plate_category"]) == ("yellow", "public_transport")
    assert rows["2"]["plate_colour"] == ""
    res = CliRunner().invoke(app, ["tickets", "export", "--db", url, "--format", "json"])
    data = {d["track_id"]: d for d in json.loads(res.stdout)}
    assert data[1]["plate_colour"] == "yellow"
    res = CliRunner().invoke(app, ["tickets", "list", "--db", url])
    assert res.exit_code == 0 and "colour" in res.stdout and "yellow" in res.stdout and "public_transport" in res.stdout
    res = CliRunner().invoke(app, ["tickets", "list", "--db", url, "--json"])
    assert {d["track_id"]: d["plate_colour"] for d in json.loads(res.stdout)} == {1: "yellow", 2: ""}


def test_ticket_from_request_carries_the_plate_colour() -> None:
    from etle.evidence import CameraMeta, EvidenceRequest, ticket_from_request
    from etle.types import Box, Frame, PlateResult, TrackedObject, Violation

    frame = Frame(source="a.mp4", index=0, pts=0.0, image=np.zeros((32, 32, 3), np.uint8), wall_start=T0)
    obj = TrackedObject(track_id=3, box=Box(1, 1, 20, 20), label="car", confidence=0.9)
    violation = Violation(rule="red_light", track_id=3, label="car", frame_index=0, pts=0.0, timestamp=frame.timestamp, box=obj.box)

    def request(plate: PlateResult) -> EvidenceRequest:
        return EvidenceRequest(violation=violation, camera=CameraMeta(id="c", name="c", timezone="Asia/Jakarta"), key_frame=frame,
                               key_objects=(obj,), clip=((frame, (obj,)),), plate=plate, article="287(2)", fine=1)

    t = ticket_from_request(request(PlateResult("BH1AB", 0.9, colour="red", category="government")))
    assert (t.plate_colour, t.plate_category) == ("red", "government")
    t = ticket_from_request(request(PlateResult("BH1AB", 0.9)))
    assert (t.plate_colour, t.plate_category) == ("", "")


def test_review_page_shows_the_plate_colour_next_to_the_plate(tmp_path: Path, make_evidence_request, monkeypatch) -> None:
    import dataclasses
    import re

    pytest.importorskip("fastapi")
    from argon2 import PasswordHasher
    from fastapi.testclient import TestClient

    from etle.evidence import EvidenceWriter, record_violation
    from etle.store import TicketStore
    from etle.web import WebConfig, auth, create_app

    monkeypatch.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    store = TicketStore(f"sqlite:///{tmp_path / 'etle.db'}")
    writer = EvidenceWriter(tmp_path / "ev")
    req = make_evidence_request(1, plate="BH1234AB")
    req = dataclasses.replace(req, plate=dataclasses.replace(req.plate, colour="yellow", category="public_transport"))
    ref = store.get(record_violation(writer, store, req).ticket_id).reference
    plain = store.get(record_violation(writer, store, make_evidence_request(2)).ticket_id).reference
    store.add_user("rev", role="reviewer")
    auth.set_password(store.engine, "rev", "correct horse battery")
    app = create_app(WebConfig(db_url=store.url, evidence_root=tmp_path / "ev", secret=b"k" * 32, secure_cookies=False), store=store)
    c = TestClient(app, base_url="http://testserver", follow_redirects=False)
    page = c.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    assert c.post("/login", data={"username": "rev", "password": "correct horse battery", "csrf": csrf}).status_code == 303
    html = c.get(f"/tickets/{ref}").text
    m = re.search(r'id="plate-text">BH1234AB</dd>\s*<dt>[^<]+</dt><dd id="plate-colour" data-colour="yellow" data-category="public_transport">([^<]+)</dd>', html)
    assert m, html[html.find("plate-text") - 200:html.find("plate-text") + 600]
    assert m.group(1).split()[0] in ("kuning", "yellow")
    assert 'id="plate-colour"' not in c.get(f"/tickets/{plain}").text  # unknown colour: nothing shown
    store.close()
