"""The configuration tree: every option and default of etle, declared once.

* :mod:`etle.config.run` -- what a pipeline runs (:class:`~etle.config.run.StageOptions`: detector,
  stride, plates, clip, device) and where one run writes (:class:`~etle.config.run.RunOptions`);
  ``etle run``, ``etle bench``, ``etle batch``, ``etle eval`` and the edge site's ``pipeline:``
  section all take these.
* :mod:`etle.config.settings` -- the ``ETLE_*`` environment, read in this one place.
* The camera file (zones, signal, view guard, rules) is :mod:`etle.camera.config`, each rule's
  options owned by its rule module; the edge site file is :mod:`etle.edge.site`.

This package sits below the stages and their assembly (:func:`etle.runner.build_pipeline`) and
imports none of them.
"""
