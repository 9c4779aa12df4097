"""etle.signal stage: the traffic-signal state per frame (fixed plan, lamp colour, controller feed).

Its configuration (the camera file's ``signal`` section) is :mod:`etle.signal.config`; the
sources are in :mod:`etle.signal.source` and, for the controller's HTTP / MQTT messages,
:mod:`etle.signal.feed`.
"""

from etle.signal.source import FixedPlanSignal, RoiColourSignal, SignalSource, build_signal

__all__ = ["FixedPlanSignal", "RoiColourSignal", "SignalSource", "build_signal"]
