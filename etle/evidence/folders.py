"""Bundle folders being written or thrown away: the prefix that hides them and their removal.

Below both the builder (:mod:`etle.evidence.builder`) and the chain (:mod:`etle.evidence.chain`),
which removes a bundle written before a crash, so neither imports the other for it.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from pathlib import Path

from etle.errors import StoreError

log = logging.getLogger(__name__)

PARTIAL_PREFIX = ".partial-"
"""Folders whose name starts so are being written (or removed) and are not evidence yet."""


def discard_bundle(path: Path | str) -> None:
    """Remove a written bundle: hidden by an atomic rename first, then deleted."""
    folder = Path(path)
    hidden = folder.with_name(f"{PARTIAL_PREFIX}discard-{secrets.token_hex(4)}-{folder.name}")
    try:
        os.replace(folder, hidden)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"cannot remove evidence bundle {folder}: {exc}") from exc
    shutil.rmtree(hidden, ignore_errors=True)
    log.info("evidence bundle removed: %s", folder)
