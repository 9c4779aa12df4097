"""etle.plate: licence-plate detection, reading and per-track consensus.

Modules (import what you need; none imports torch, ultralytics or easyocr at import time):

* :mod:`etle.plate.tnkb` -- plate formats (``id`` TNKB grammar + region table, ``generic``),
  normalisation, confusion fixes, validity line ``MM.YY``.
* :mod:`etle.plate.ctc` -- greedy and grammar-constrained CTC decoding.
* :mod:`etle.plate.lines` -- registration / validity line split, deskew.
* :mod:`etle.plate.detector` -- ``PlateDetector`` and ``load_plate_detector`` (onnx, ultralytics, cascade).
* :mod:`etle.plate.readers` -- ``PlateReader`` and ``load_reader`` (rapidocr+crnn default for
  Indonesian plates, rapidocr otherwise; crnn, easyocr).
* :mod:`etle.plate.consensus` -- ``PlateConsensus`` and ``crop_quality``.
* :mod:`etle.plate.stage` -- ``PlateStage`` and the pure ``select_tracks``.
* :mod:`etle.plate.colour` -- ``classify_colour``: the plate's background colour (the category
  it stands for is data, ``data/categories_id.yaml``, read by ``tnkb.category_of``).
* ``.pt`` models load through :mod:`etle.detect.ultralytics_adapter`.

The metrics of ``etle eval plates`` live in :mod:`etle.evaluate.plates`, the synthetic plates
used to train and calibrate in :mod:`etle.train.synth` (apart from the run path).
"""
