"""Whether this machine's clock is synchronised (NTP, PTP), as the kernel says.

A live camera's ticket is dated by the edge box's own clock (:mod:`etle.ingest.live`).  A box
without a battery-backed clock boots at the time it last shut down, or at 1970, until NTP sets
it; one whose uplink is down never gets set.  Every time daemon (chrony, ntpd,
systemd-timesyncd, ptp4l) tells the kernel when the clock is synchronised, and the kernel keeps
it in its time status (``adjtimex``: the ``TIME_ERROR`` state, ``STA_UNSYNC``), which it raises
again on its own when no daemon has confirmed the clock for a while.  So etle asks the kernel
rather than a daemon (``timedatectl`` needs systemd and D-Bus; ``chronyc`` only knows chrony).

Written by hand with :mod:`ctypes`: reading the kernel's time state is one read-only system
call (``adjtimex`` with ``modes = 0``), and no maintained Python package wraps it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

TIME_ERROR = 5
_libc: ctypes.CDLL | None = None


def system_clock_synchronized() -> bool | None:
    """True when the kernel holds the clock synchronised, False when it says it is not (no time
    daemon, or none has confirmed it lately), None where this cannot be read (not Linux)."""
    global _libc
    if not sys.platform.startswith("linux"):
        return None
    try:
        if _libc is None:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        timex = ctypes.create_string_buffer(512)  # struct timex (208 bytes on 64-bit), modes = 0: read only
        state = int(_libc.adjtimex(timex))
    except (OSError, AttributeError) as exc:
        log.debug("the kernel's clock state cannot be read: %s", exc)
        return None
    if state < 0:
        return None
    return state != TIME_ERROR
