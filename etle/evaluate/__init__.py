"""Measuring etle against ground truth (``etle eval ...``); the run path imports none of it.

* :mod:`etle.evaluate.violations` -- tickets against labelled events on real clips;
* :mod:`etle.evaluate.report` -- ``docs/accuracy.md`` written from the evals' JSON outputs.
"""
