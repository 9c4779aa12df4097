#!/usr/bin/env python
"""Measure plate readers on labelled images: a thin wrapper of ``etle eval plates``.

    python scripts/eval_plates.py IMAGES_DIR --labels labels.csv [--reader rapidocr|easyocr|all]
                                  [--country id|generic] [--crosscheck crosscheck.csv] [--full-image]
                                  [--errors] [--json out.json]

is the same as ``etle eval plates IMAGES_DIR ...`` (see ``etle eval plates --help``); the metrics
live in :mod:`etle.evaluate.plates`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> None:
    from etle.cli import main as etle_main

    args = list(sys.argv[1:] if argv is None else argv)
    if "-v" in args or "--verbose" in args:  # the old script's flag is a global option of etle
        args = [a for a in args if a not in ("-v", "--verbose")]
        args = ["-v", *args]
    head = [a for a in args if a == "-v"]
    rest = [a for a in args if a != "-v"]
    sys.argv = ["etle", *head, "eval", "plates", *rest]
    etle_main()


if __name__ == "__main__":
    main()
