"""The site file of ``etle edge``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from etle.edge.site import SiteConfigError, load_site
from etle.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
CAMERA = REPO / "examples" / "cameras" / "intel_car_detection_parking.yaml"


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    (tmp_path / "cams").mkdir()
    shutil.copy(CAMERA, tmp_path / "cams" / "parking.yaml")
    return tmp_path


def write(d: Path, text: str) -> Path:
    p = d / "site.yaml"
    p.write_text(text)
    return p


def test_example_site_loads() -> None:
    site = load_site(REPO / "examples" / "site.yaml", env={})
    assert site.site == "demo-edge" and site.mqtt is not None and site.mqtt.port == 1883
    assert [cid for cid, _ in site.enabled_cameras] == ["sample-parking"]
    assert site.camera_path(site.cameras[0]).is_file()


def test_minimal_site_defaults_and_relative_camera_paths(site_dir: Path, monkeypatch) -> None:
    monkeypatch.chdir("/")
    site = load_site(write(site_dir, "cameras:\n  - {camera: cams/parking.yaml, source: 'rtsp://10.0.0.2/s'}\n"))
    assert site.camera_ids == ("sample-parking",)
    assert site.camera_path(site.cameras[0]) == site_dir / "cams" / "parking.yaml"
    assert site.mqtt is None and site.webhook is None and site.health.port == 9108
    assert site.live.queue_size == 8 and site.restart.max_s == 60


def test_environment_variables_fill_secrets(site_dir: Path) -> None:
    text = ("cameras:\n  - {camera: cams/parking.yaml, source: 'rtsp://${U}:${P}@cam/s'}\n"
            "mqtt: {host: '${BROKER:-127.0.0.1}', password: '${MQTT_PASS}'}\n")
    site = load_site(write(site_dir, text), env={"U": "admin", "P": "s3cret", "MQTT_PASS": "x"})
    assert site.cameras[0].source == "rtsp://admin:s3cret@cam/s"
    assert site.mqtt.host == "127.0.0.1" and site.mqtt.password == "x"
    with pytest.raises(SiteConfigError, match="environment variable P is not set"):
        load_site(write(site_dir, text), env={"U": "a", "MQTT_PASS": "x"})


@pytest.mark.parametrize("text, message", [
    ("cameras: []\n", "cameras"),
    ("site: x\n", "cameras: Field required"),
    ("cameras:\n  - {camera: cams/parking.yaml, source: 'rtsp://a'}\nbogus: 1\n", "bogus: unknown field"),
    ("cameras:\n  - {camera: cams/parking.yaml, source: 'rtsp://a'}\n  - {camera: cams/parking.yaml, source: 'rtsp://b'}\n",
     "share the id sample-parking"),
    ("cameras:\n  - {camera: cams/parking.yaml, source: 'rtsp://a', id: a}\n  - {camera: cams/parking.yaml, source: 'rtsp://b', id: a}\n",
     "unique"),
    ("cameras:\n  - {camera: cams/missing.yaml, source: 'rtsp://a'}\n", "camera file not found"),
    ("cameras:\n  - {camera: cams/parking.yaml, source: 'rtsp://a'}\nmqtt: {topic: 'etle/#'}\n", "wildcards"),
    ("cameras:\n  - {camera: cams/parking.yaml, source: 'rtsp://a'}\nmqtt: {topic: 'etle/{nope}'}\n", "placeholder"),
    ("cameras:\n  - {camera: cams/parking.yaml, source: 'rtsp://a'}\nwebhook: {url: 'ftp://x'}\n", "http"),
    ("cameras:\n  - {camera: cams/parking.yaml, source: 'rtsp://a', enabled: false}\n", "every camera is disabled"),
    ("cameras:\n  - {camera: cams/parking.yaml, source: 'rtsp://a'}\npipeline: {country: xx}\n", "unknown plate format 'xx'"),
    ("cameras: [\n", "not valid YAML"),
    ("- just\n- a list\n", "mapping"),
])
def test_bad_site_files_fail_with_one_line(site_dir: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_site(write(site_dir, text))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_missing_site_file(tmp_path: Path) -> None:
    with pytest.raises(SiteConfigError, match="site file not found"):
        load_site(tmp_path / "nope.yaml")


def test_two_cameras_with_ids(site_dir: Path) -> None:
    text = ("site: box-1\ncameras:\n"
            "  - {camera: cams/parking.yaml, source: 'rtsp://a', id: north}\n"
            "  - {camera: cams/parking.yaml, source: '/dev/video0', id: south, options: {framerate: 15}}\n")
    site = load_site(write(site_dir, text))
    assert site.camera_ids == ("north", "south") and site.cameras[1].options == {"framerate": "15"}
