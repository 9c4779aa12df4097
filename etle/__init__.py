"""etle: an open electronic traffic-law-enforcement (E-TLE) vision pipeline.

Pipeline stages live in sub-packages, in the order a frame flows through them:

``ingest`` -> ``detect`` -> ``track`` -> ``camera`` (view guard, zones) -> ``rules``
-> ``plate`` -> ``evidence`` -> ``store``.  ``pipeline`` wires them together and ``cli`` is
the command-line boundary.
"""

__version__ = "0.1.0"
