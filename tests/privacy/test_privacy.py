"""Privacy: blurred public copies of evidence pictures (etle.privacy).

Unit tests on synthetic images with fake detectors; real-model tests (slow, shared data) on the
Cilacap clip: the face detector on real frames, and a real ticket's letter photo where, after
blurring, neither the face detector finds a bystander's face nor the plate detector another
vehicle's plate, while `etle verify` still passes on the bundle.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from etle.errors import ConfigError, EtleError
from etle.evidence import EvidenceWriter, record_violation
from etle.evidence.builder import verify_bundle
from etle.evidence.signing import init_keys, load_signer, trusted_keys
from etle.evidence.storage import LocalEvidenceStorage
from etle.evidence.verify import verify_evidence
from etle.privacy import PrivacyError, make_public, public_image
from etle.privacy import public as pub
from etle.privacy.blur import FACE, HEAD, PLATE, Region, Scene, blur_regions, is_rider, owner_of, plan_blur
from etle.privacy.evaluate import coverage, covered, load_truth
from etle.privacy.faces import nms, person_heads, pyramid, square
from etle.store import TicketStore
from etle.types import Box, Detection

from conftest import REPO, require_model


# ---------------------------------------------------------------- the cascade's arithmetic


def test_nms_union_and_min() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [2, 2, 6, 6]], dtype=np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], dtype=np.float32)
    assert sorted(nms(boxes, scores, 0.5).tolist()) == [0, 2, 3]  # the small inner box has IoU < 0.5
    assert sorted(nms(boxes, scores, 0.7, "min").tolist()) == [0, 2]  # ... but lies wholly inside
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).size == 0


def test_square_and_pyramid() -> None:
    sq = square(np.array([[10, 10, 30, 20, 0.9]], dtype=np.float32))
    assert sq[0, 2] - sq[0, 0] == pytest.approx(sq[0, 3] - sq[0, 1]) == pytest.approx(20)
    assert sq[0, 4] == pytest.approx(0.9)
    scales = pyramid(360, 640, 12, 0.709)
    assert scales[0] == pytest.approx(1.0) and all(b < a for a, b in zip(scales, scales[1:]))
    assert 360 * scales[-1] >= 12 > 360 * scales[-1] * 0.709


def test_person_heads_are_the_top_of_the_box() -> None:
    (h,) = person_heads([Detection(Box(100, 50, 140, 250), "person", 0.8)], 640, 360)
    assert h.label == "head" and h.box.x1 == 100 and h.box.x2 == 140
    assert h.box.y1 < 50 and 100 <= h.box.y2 <= 120  # the top 30 % of 200 px
    assert person_heads([Detection(Box(0, 0, 0, 10), "person", 0.5)], 10, 10) == []


# ---------------------------------------------------------------- what is hidden


RIDER = Box(100, 40, 160, 220)
VEHICLE = Box(90, 120, 180, 300)
BYSTANDER = Box(300, 30, 350, 200)
BEHIND = Box(110, 0, 170, 90)  # a person behind the rider, whose box reaches the rider's face


def scene(**kw) -> Scene:
    base = dict(width=640, height=360, vehicle=VEHICLE, vehicle_label="motorcycle", plate=Box(120, 250, 150, 265),
                riders=(RIDER,), persons=(RIDER, BYSTANDER, BEHIND), vehicles=(VEHICLE, Box(280, 150, 380, 320)))
    base.update(kw)
    return Scene(**base)  # type: ignore[arg-type]


def test_rider_overlap_rule() -> None:
    assert is_rider(RIDER, VEHICLE)
    assert not is_rider(BYSTANDER, VEHICLE)
    assert not is_rider(Box(170, 100, 260, 300), VEHICLE)  # overlaps, but stands beside it


def test_a_face_belongs_to_the_person_whose_top_it_is_nearest() -> None:
    rider_face = Box(120, 45, 140, 70)  # inside the rider's and the person-behind's boxes
    assert owner_of(rider_face, [RIDER, BEHIND]) == 0
    assert owner_of(Box(125, 5, 145, 25), [RIDER, BEHIND]) == 1
    assert owner_of(Box(500, 5, 510, 15), [RIDER, BEHIND]) is None


def test_plan_hides_bystanders_and_other_plates_keeps_riders_and_the_ticketed_plate() -> None:
    faces = [Detection(Box(120, 45, 140, 70), "face", 0.99),  # the rider
             Detection(Box(315, 35, 335, 60), "face", 0.95),  # the bystander
             Detection(Box(125, 5, 145, 25), "face", 0.9),  # the person behind
             Detection(Box(500, 200, 520, 225), "face", 0.8)]  # nobody's box: hidden
    plates = [Detection(Box(121, 251, 151, 266), "plate", 0.7),  # the ticketed plate
              Detection(Box(310, 280, 345, 295), "plate", 0.6)]
    plan = plan_blur(scene(), faces, plates)
    hidden_faces = {r.box for r in plan.hide if r.kind == FACE}
    assert hidden_faces == {faces[1].box, faces[2].box, faces[3].box}
    assert {r.box for r in plan.keep} == {faces[0].box, plates[0].box}
    assert {r.box for r in plan.hide if r.kind == PLATE} == {plates[1].box}
    assert plan.count(HEAD) == 2  # the bystander and the person behind, never the rider


def test_plan_without_a_read_plate_keeps_the_best_plate_on_the_vehicle_only() -> None:
    plates = [Detection(Box(120, 250, 150, 265), "plate", 0.5), Detection(Box(125, 200, 150, 212), "plate", 0.3),
              Detection(Box(300, 280, 340, 295), "plate", 0.9)]
    plan = plan_blur(scene(plate=None), [], plates)
    assert [r.box for r in plan.keep] == [plates[0].box]
    assert plan.count(PLATE) == 2


def test_occupants_of_a_ticketed_car_keep_their_faces() -> None:
    inside = Detection(Box(120, 150, 135, 165), "face", 0.9)
    assert plan_blur(scene(vehicle_label="car", persons=(), riders=()), [inside], []).keep
    assert not plan_blur(scene(vehicle_label="motorcycle", persons=(), riders=()), [inside], []).keep


def test_blur_regions_copies_and_destroys_detail() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    image.flags.writeable = False
    box = Box(40, 30, 100, 90)
    out = blur_regions(image, [Region(box, FACE, "t", 1.0)])
    assert out is not image and out.shape == image.shape
    inner = out[35:85, 45:95].astype(float)
    assert inner.std() < image[35:85, 45:95].astype(float).std() / 3
    assert np.array_equal(out[:, 130:], image[:, 130:])  # outside the grown region: untouched
    shifted = blur_regions(image[20:, 20:], [Region(box, FACE, "t", 1.0)], offset=(20, 20))
    assert shifted[15:65, 25:75].astype(float).std() < image[35:85, 45:95].astype(float).std() / 3  # same place
    assert np.array_equal(shifted[:, 100:], image[20:, 120:])


def test_scene_from_manifest_names_riders_and_adds_detected_persons() -> None:
    manifest = {
        "key_frame": {"width": 640, "height": 360, "objects": [
            {"track_id": 8, "label": "motorcycle", "box": list(VEHICLE.as_tuple())},
            {"track_id": 1, "label": "person", "box": list(RIDER.as_tuple())},
            {"track_id": 3, "label": "person", "box": list(BYSTANDER.as_tuple())},
            {"track_id": 12, "label": "person", "box": [400, 10, 420, 100]},
        ]},
        "violation": {"track_id": 8, "vehicle_label": "motorcycle", "box": list(VEHICLE.as_tuple()),
                      "related_track_ids": [1], "details": {"riders": [1, 12]}},
        "plate": {"box": [120, 250, 150, 265]},
    }
    s = pub.scene_from_manifest(manifest, [Detection(Box(500, 0, 540, 100), "person", 0.5),
                                           Detection(Box(301, 31, 351, 201), "person", 0.5)])
    assert s.vehicle == VEHICLE and s.plate == Box(120, 250, 150, 265)
    assert set(s.riders) == {RIDER, Box(400, 10, 420, 100)}
    assert len(s.persons) == 4  # the duplicate of the bystander is merged


# ---------------------------------------------------------------- public copies of a bundle


class FakeFinder:
    def __init__(self, dets: list[Detection]) -> None:
        self.dets = dets
        self.calls = 0

    def detect(self, image: np.ndarray) -> list[Detection]:
        self.calls += 1
        return [d for d in self.dets if d.box.x2 <= image.shape[1] and d.box.y2 <= image.shape[0]]


def fake_detectors() -> pub.Detectors:
    # the synthetic bundles' frames are 64x48 with the violating motorcycle at (8, 8, 40, 40)
    return pub.Detectors(
        faces=FakeFinder([Detection(Box(44, 4, 60, 20), "face", 0.9)]),
        objects=FakeFinder([Detection(Box(42, 2, 62, 46), "person", 0.8)]),
        plates=FakeFinder([]),
        names={"faces": "fake", "objects": "fake", "plates": "fake"},
    )


@pytest.fixture
def signed_site(tmp_path: Path, make_evidence_request):
    info = init_keys(tmp_path / "keys")
    writer = EvidenceWriter(tmp_path / "ev", signer=load_signer(tmp_path / "keys"))
    store = TicketStore(f"sqlite:///{tmp_path / 'etle.db'}")
    store.register_site_key(info.key_id, info.public_key_b64)
    rec = record_violation(writer, store, make_evidence_request(1), {"run_id": "r1"})
    folder = Path(store.get(rec.ticket_id).evidence_path)
    yield store, folder, tmp_path
    store.close()


def _verify(store: TicketStore, root: Path):
    return verify_evidence(LocalEvidenceStorage(root / "ev"), store=store, keys=trusted_keys(root / "keys", store.site_keys()))


def test_public_copies_are_derived_files_with_their_own_record_and_verify_passes(signed_site) -> None:
    store, folder, root = signed_site
    originals = {p.name: p.read_bytes() for p in folder.iterdir()}
    dets = fake_detectors()
    made = make_public(folder, detectors=dets)
    assert made.made and made.faces == 1 and made.heads == 1
    public = folder / "public"
    record = json.loads((public / "manifest.json").read_text())
    signed = json.loads((folder / "manifest.json").read_text())
    assert set(record["files"]) == {"overview.jpg", "original.png", "closeup.jpg", "plate.jpg"}
    for name, entry in record["files"].items():
        data = (public / name).read_bytes()
        assert entry["bytes"] == len(data) and entry["source_sha256"] == signed["files"][name]["sha256"]
    assert (public / "overview.jpg").read_bytes() != originals["overview.jpg"]
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == originals  # originals untouched
    assert "public" not in json.dumps(signed["files"])
    assert verify_bundle(folder) == []
    report = _verify(store, root)
    assert report.ok, [f.line() for f in report.findings]
    # current copies are not made again
    again = make_public(folder, detectors=dets)
    assert not again.made and dets.faces.calls == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("damage, expected", [
    ("alter", "sha256 differs from its record"),
    ("extra", "not listed in the public record"),
    ("delete", "listed in its record is missing"),
    ("record", "record unparsable"),
])
def test_verify_reports_damaged_public_copies(signed_site, damage: str, expected: str) -> None:
    store, folder, root = signed_site
    make_public(folder, detectors=fake_detectors())
    public = folder / "public"
    if damage == "alter":
        data = bytearray((public / "overview.jpg").read_bytes())
        data[-10] ^= 0xFF
        (public / "overview.jpg").write_bytes(bytes(data))
    elif damage == "extra":
        shutil.copy(folder / "overview.jpg", public / "unblurred.jpg")
    elif damage == "delete":
        (public / "closeup.jpg").unlink()
    else:
        (public / "manifest.json").write_text("{")
    report = _verify(store, root)
    assert not report.ok
    assert any(f.kind == "public" and expected in f.detail for f in report.errors), [f.line() for f in report.findings]


def test_public_image_makes_on_demand_and_refuses_an_altered_original(signed_site, monkeypatch) -> None:
    store, folder, root = signed_site
    monkeypatch.setattr(pub, "default_detectors", fake_detectors)
    path = public_image(folder, "overview.jpg")
    assert path == folder / "public" / "overview.jpg" and path.is_file()
    assert public_image(folder, "overview.jpg") == path
    with pytest.raises(PrivacyError, match="no public copy"):
        public_image(folder, "clip.mp4")
    with pytest.raises(PrivacyError, match="not an evidence bundle"):
        public_image(root, "overview.jpg")
    (folder / "public" / "overview.jpg").write_bytes(b"stale")  # a stale copy is made again
    assert public_image(folder, "overview.jpg").read_bytes() != b"stale"
    original = folder / "original.png"
    image = cv2.imread(str(original))
    image[0, 0] = 255 - image[0, 0]
    cv2.imwrite(str(original), image)
    with pytest.raises(PrivacyError, match="differs from the bundle's manifest"):
        make_public(folder, detectors=fake_detectors(), force=True)


def test_a_missing_face_model_refuses_the_copy(signed_site, monkeypatch, tmp_path: Path) -> None:
    store, folder, root = signed_site
    monkeypatch.setenv("ETLE_MODEL_DIR", str(tmp_path / "empty-models"))
    pub._default_detectors.cache_clear()
    try:
        with pytest.raises(PrivacyError, match="cannot blur"):
            public_image(folder, "overview.jpg")
    finally:
        pub._default_detectors.cache_clear()
    assert not (folder / "public" / "overview.jpg").exists()


def test_retention_removes_public_copies(signed_site) -> None:
    from datetime import datetime, timedelta, timezone

    from etle.evidence.retention import prune_rejected

    store, folder, root = signed_site
    make_public(folder, detectors=fake_detectors())
    t = store.list()[0]
    store.add_user("rev")
    store.transition(t.id, "reject", actor="rev", reason="test")
    prune_rejected(store, LocalEvidenceStorage(root / "ev"), older_than=timedelta(0),
                   now=datetime.now(timezone.utc) + timedelta(seconds=1))
    assert not any((folder / "public").glob("*.jpg"))
    report = _verify(store, root)
    assert report.ok, [f.line() for f in report.findings]


def test_letters_batch_refuses_a_letter_whose_photo_cannot_be_blurred(tmp_path: Path, make_evidence_request, monkeypatch) -> None:
    pytest.importorskip("reportlab")
    from datetime import datetime, timezone

    import etle.letters.batch as letters
    from etle.store.repository import CameraIn

    store = TicketStore(f"sqlite:///{tmp_path / 'etle.db'}")
    store.register_camera(CameraIn("jbi-01", "Tugu Juang", "Kota Jambi", timezone="Asia/Jakarta"))
    store.add_user("rev", role="reviewer")
    writer = EvidenceWriter(tmp_path / "ev")
    approved = datetime(2026, 11, 28, 3, 0, tzinfo=timezone.utc)
    for track in (1, 2):
        ref = store.get(record_violation(writer, store, make_evidence_request(track, plate=f"BH{track}234AB")).ticket_id).reference
        store.transition(ref, "approve", actor="rev", at=approved)
        store.record_owner_lookup(ref, status="found", actor="system:registry", source="trial",
                                  owner={"owner_name": "Fiktif (CONTOH)", "owner_address": "Jl. Contoh 1", "make": "Honda",
                                         "vehicle_colour": "hitam", "vehicle_type": "motorcycle"})
    refused = store.list()[0].evidence_path

    def fake_public(bundle: Path, name: str) -> Path:
        if Path(bundle) == Path(refused):
            raise PrivacyError("no face model")
        return Path(bundle) / name

    monkeypatch.setattr(letters, "public_image", fake_public)
    res = letters.make_batch(store, approved.date(), tmp_path / "out.pdf", public_url="https://etle.example",
                             evidence_root=tmp_path / "ev", now=approved)
    assert len(res.notices) == 1
    assert any("letter refused: no face model" in s.reason for s in res.skipped)
    store.close()


# ---------------------------------------------------------------- CLI and truth file


def test_cli_privacy_blur(signed_site, monkeypatch) -> None:
    from etle.cli import app

    store, folder, root = signed_site
    monkeypatch.setattr(pub, "default_detectors", fake_detectors)
    runner = CliRunner()
    r = runner.invoke(app, ["privacy", "blur", str(root / "ev"), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "1 face(s), 1 head(s), 0 plate(s) hidden" in r.output and "1 of 1 bundle(s)" in r.output
    (folder / "original.png").write_bytes(b"x")
    r = runner.invoke(app, ["privacy", "blur", str(folder), "--force", "--no-progress"])
    assert r.exit_code == PrivacyError.exit_code
    assert "original.png" in r.output


def test_cli_privacy_blur_bad_folder_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "etle.cli", "privacy", "blur", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert done.stderr.strip().count("\n") == 0 and "no evidence bundle" in done.stderr


def test_truth_file_loads_and_rejects_malformed(tmp_path: Path) -> None:
    truth = load_truth(REPO / "eval" / "truth" / "faces.yaml")
    assert sum(len(f.faces) for f in truth.frames) >= 25 and truth.min_cover == 0.5
    bad = tmp_path / "bad.yaml"
    bad.write_text("clips: [{name: x}]\n")
    with pytest.raises(ConfigError, match="malformed"):
        load_truth(bad)
    assert covered([Box(0, 0, 10, 10)], [Box(0, 0, 10, 4), Box(0, 0, 10, 6)], 0.5) == [True]
    assert coverage(Box(0, 0, 10, 10), Box(5, 0, 10, 10)) == pytest.approx(0.5)
    assert issubclass(PrivacyError, EtleError)


# ---------------------------------------------------------------- real models on real footage


@pytest.mark.slow
@pytest.mark.shared_data
def test_mtcnn_on_onnx_finds_real_faces_without_torch(shared_data: Path) -> None:
    for name in ("face-mtcnn-pnet", "face-mtcnn-rnet", "face-mtcnn-onet"):
        require_model(name)
    script = f"""
import sys, cv2
from etle.privacy.evaluate import frame_at
from etle.privacy.faces import MtcnnConfig, MtcnnFaceDetector
from pathlib import Path
img = frame_at(Path({str(shared_data / 'videos' / 'id_etle_cilacap_alun_motorcycles.mp4')!r}), 2.0)
faces = MtcnnFaceDetector(MtcnnConfig(upscale=2.0)).detect(img)
assert "torch" not in sys.modules, "the run path imported torch"
print(len(faces), [tuple(round(v) for v in f.box.as_tuple()) for f in faces])
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    n = int(done.stdout.split()[0])
    assert n >= 3  # the ojek rider, the hooded rider and the boy of the zoomed-in view


@pytest.mark.slow
@pytest.mark.shared_data
def test_real_ticket_letter_photo_hides_bystanders_and_verify_passes(tmp_path: Path, shared_data: Path, monkeypatch) -> None:
    """Acceptance: the no-helmet ticket of the Cilacap clip (fast profile); its letter photo (the
    public copy of the overview) shows no bystander's face to the face detector and no plate but
    the ticketed one to the plate detector, and `etle verify` passes on the bundle with it."""
    for name in ("vehicle-detector-int8", "plate-detector-tnkb", "face-mtcnn-pnet", "face-mtcnn-rnet", "face-mtcnn-onet"):
        require_model(name)
    from etle.config.run import RunOptions, StageOptions
    from etle.runner import run_sources
    from etle.store import open_store

    from fixtures.clips import CLP, camera_file

    info = init_keys(tmp_path / "keys")
    monkeypatch.setenv("ETLE_KEYS_DIR", str(tmp_path / "keys"))
    cam = camera_file(tmp_path, shared_data, CLP)
    run_sources(str(shared_data / "videos" / f"{CLP}.mp4"), cam,
                RunOptions.of(StageOptions.fast(), out_dir=tmp_path / "ev", db_url=f"sqlite:///{tmp_path}/t.db", max_seconds=14.0),
                progress=False)
    (t,) = open_store(f"sqlite:///{tmp_path}/t.db").list()
    bundle = Path(t.evidence_path)
    photo = public_image(bundle, "overview.jpg")
    record = json.loads((bundle / "public" / "manifest.json").read_text())
    assert record["hidden"]["plates"] >= 2 and record["hidden"]["faces"] + record["hidden"]["heads"] >= 3

    dets = pub.default_detectors()
    manifest = json.loads((bundle / "manifest.json").read_text())
    frame = cv2.imread(str(bundle / "original.png"))
    scene, _ = pub.analyse(frame, manifest, dets)
    blurred = cv2.imread(str(photo))[: frame.shape[0]]  # the scene above the caption panel
    # faces: before blurring the detector sees bystanders; after, only riders' faces remain
    before = [f for f in dets.faces.detect(frame) if owner_of(f.box, list(scene.riders) + list(scene.persons)) not in range(len(scene.riders))]
    after = [f for f in dets.faces.detect(blurred) if owner_of(f.box, list(scene.riders) + list(scene.persons)) not in range(len(scene.riders))]
    assert before and not after, (before, after)
    # plates: of the other vehicles' plates the detector finds on the original, none is found on
    # the letter photo or on the public copy of the original (the overview's drawn tags, which
    # the detector sometimes takes for plates, are not plates); the ticketed plate still is
    assert scene.plate is not None
    plates_before = pub.find_plates(frame, scene.vehicles, dets.plates)
    others = [p for p in plates_before if p.box.iou(scene.plate) < 0.3 and p.confidence >= 0.3]
    assert len(others) >= 2, plates_before
    for name, image in (("overview", blurred), ("original", cv2.imread(str(public_image(bundle, "original.png"))))):
        after = pub.find_plates(image, scene.vehicles, dets.plates)
        still = [(o, a) for o in others for a in after if a.box.iou(o.box) >= 0.3]
        assert not still, (name, still)
        assert any(a.box.iou(scene.plate) >= 0.3 for a in after), name  # the ticketed plate stays readable
    # the court's bundle: untouched and verified, with the public copies checked too
    with TicketStore(f"sqlite:///{tmp_path}/t.db", create=False) as store:
        store.register_site_key(info.key_id, info.public_key_b64)
        keys = trusted_keys(tmp_path / "keys", store.site_keys())
        report = verify_evidence(LocalEvidenceStorage(tmp_path / "ev"), store=store, keys=keys)
    assert report.ok, [f.line() for f in report.findings]
    assert verify_bundle(bundle, manifest_sha256=t.manifest_sha256) == []


def test_review_app_letter_refused_without_a_blurred_photo(signed_site, monkeypatch) -> None:
    pytest.importorskip("fastapi")
    import re

    from argon2 import PasswordHasher
    from fastapi.testclient import TestClient

    import etle.web.routers.letters as web_letters
    from etle.web import WebConfig, auth, create_app

    store, folder, root = signed_site
    t = store.list()[0]
    store.add_user("rev", role="reviewer")
    store.transition(t.id, "approve", actor="rev")
    monkeypatch.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    auth.set_password(store.engine, "rev", "correct horse battery")
    monkeypatch.setattr(pub, "default_detectors", fake_detectors)
    app = create_app(WebConfig(db_url=store.url, evidence_root=root / "ev", secret=b"k" * 32, secure_cookies=False,
                               public_url="https://etle.example"), store=store)
    c = TestClient(app, base_url="http://testserver", follow_redirects=False)
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text).group(1)
    assert c.post("/login", data={"username": "rev", "password": "correct horse battery", "csrf": token}).status_code == 303
    ok = c.get(f"/tickets/{t.reference}/letter.pdf")
    assert ok.status_code == 200 and ok.content.startswith(b"%PDF")
    assert (folder / "public" / "overview.jpg").is_file()

    def refuse(bundle: Path, name: str) -> Path:
        raise PrivacyError("no face model")

    monkeypatch.setattr(web_letters, "public_image", refuse)
    r = c.get(f"/tickets/{t.reference}/letter.pdf")
    assert r.status_code == 503 and "letter refused" in r.text


@pytest.mark.slow
def test_face_detector_export_matches_the_torch_nets(tmp_path: Path, monkeypatch) -> None:
    """`etle models prepare` exports the three MTCNN nets; ONNX Runtime gives the torch outputs."""
    pytest.importorskip("torch")
    pytest.importorskip("facenet_pytorch")
    require_model("face-mtcnn-pnet-pt")
    import torch

    from etle.models import registry
    from etle.train.export import FACE_NETS, _mtcnn_module, export_face_detector
    from etle.onnxrt import inference_session

    monkeypatch.setenv("ETLE_MODEL_DIR", str(tmp_path))
    paths = export_face_detector(force=True)
    assert [p.parent for p in paths] == [tmp_path / "face"] * 3
    rng = np.random.default_rng(0)
    for name, path, shape in zip(FACE_NETS, paths, [(1, 3, 61, 83), (5, 3, 24, 24), (3, 3, 48, 48)]):
        net = _mtcnn_module(name)
        net.load_state_dict(torch.load(str(registry.resolve(str(registry.spec(name).source["from"]))), weights_only=True))
        net.eval()
        x = rng.uniform(-1, 1, shape).astype(np.float32)
        with torch.no_grad():
            want = [t.numpy() for t in net(torch.from_numpy(x))]
        sess = inference_session(path)
        got = sess.run(None, {sess.get_inputs()[0].name: x})
        for w, g in zip(want, got):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    assert registry.status("face-mtcnn-onet").ok
