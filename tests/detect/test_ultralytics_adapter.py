"""The Ultralytics adapter leaves Pillow as it found it (ultralytics patches ``PIL.Image.open``)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

SCRIPT = """
import io
import numpy as np
from PIL import Image

buf = io.BytesIO()
Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(buf, format="PNG")
png = buf.getvalue()
original = Image.open

from etle.detect.ultralytics_adapter import import_ultralytics
import_ultralytics()
import ultralytics.utils.patches  # noqa: F401  (the module that patches Image.open)

assert Image.open is original, Image.open
with Image.open(fp=io.BytesIO(png)) as im:  # pypdf and reportlab call it by keyword
    assert im.size == (4, 4)
print("ok")
"""


@pytest.mark.skipif(importlib.util.find_spec("ultralytics") is None, reason="ultralytics not installed")
def test_import_ultralytics_restores_pillow_open() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("ok")
