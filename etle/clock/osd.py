"""The date and time a camera burns into its picture (its on-screen display, OSD), read to date a
recording.

A ticket states when the violation happened.  A recorder's export rarely says when it was
recorded: its container's ``creation_time`` is absent or the time of the export or of a later
re-encode (the shared Cilacap clip's says 2023-08-05; its picture shows 2019-02-13), and the
file's modification time is when it was copied.  The camera's own clock is in the picture.

Reading it: PP-OCR's text detector and recogniser (the ONNX models inside the ``rapidocr`` wheel,
run by ``rapidocr`` itself) find the text lines of a frame, and :func:`parse_osd` keeps the one
that holds a date and a time.  Later frames are read in the neighbourhood of the first find.

Turning readings into a start: the OSD shows whole seconds, so a reading ``S`` on the frame at
``pts`` says the recording started within ``[S - pts, S + 1 - pts)``.  Readings at frames of
different sub-second phases narrow that interval (:func:`clock_start`); readings that do not
fit the rest (a misread digit, a cut in edited footage) are outvoted, and a clock that jumps
(two groups that each hold several readings) is reported.  The date order of an ambiguous date
(``03-04-2025``) comes from the camera file, else from a weekday shown beside it, else the
reading is not used: a ticket dated on a guess costs a citizen.

Written here because no library reads a camera's clock: OSD formats are a handful of date and
time layouts, parsed with regular expressions after the OCR's usual digit confusions.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Iterable, Literal, Sequence

import cv2
import numpy as np

from etle.types import Frame

log = logging.getLogger(__name__)

DateOrder = Literal["ymd", "dmy", "mdy"]

_MONTHS = {
    "JAN": 1, "FEB": 2, "PEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "MEI": 5, "JUN": 6, "JUL": 7, "AUG": 8, "AGU": 8,
    "AGS": 8, "AGT": 8, "SEP": 9, "OCT": 10, "OKT": 10, "NOV": 11, "NOP": 11, "DEC": 12, "DES": 12,
}
#: weekday abbreviations (English, Indonesian) -> Monday = 0
_WEEKDAYS = {
    "MON": 0, "TUE": 1, "WED": 2, "THU": 3, "FRI": 4, "SAT": 5, "SUN": 6,
    "SEN": 0, "SEL": 1, "RAB": 2, "KAM": 3, "JUM": 4, "SAB": 5, "MIN": 6, "AHA": 6,
}
_DIGITISH = str.maketrans({"O": "0", "o": "0", "D": "0", "Q": "0", "I": "1", "l": "1", "|": "1", "i": "1",
                           "Z": "2", "S": "5", "s": "5", "B": "8", "g": "9"})
_YMD = re.compile(r"(?<!\d)(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})")
_XXY = re.compile(r"(?<!\d)(\d{1,2})[-/.](\d{1,2})[-/.](\d{4}|\d{2})")
_NAMED_DATE = re.compile(r"(?<!\d)(\d{1,2})[-/. ]?([A-Z]{3})[A-Z]*[-/. ,]?(\d{4})|([A-Z]{3})[A-Z]*[-/. ]?(\d{1,2})[-/. ,]+(\d{4})")
#: a time; OCR may run it into the date before it ('2019-02-1311:59:54'), so no look-behind
_TIME = re.compile(r"(\d{1,2})([:.]|\s)(\d{2})([:.]|\s)(\d{2})(?!\d)\s*([AP]M)?", re.IGNORECASE)
#: the OCR engine is shared by the process's readers and called one at a time
_ENGINE_LOCK = threading.Lock()
#: pixels: a region around a clock found before is read enlarged to about this height
REGION_HEIGHT = 240


def _digits_in_numbers(text: str) -> str:
    """OCR's letter-for-digit slips, undone inside runs that are mostly digits and separators."""
    def fix(m: re.Match[str]) -> str:
        run = m.group(0)
        digits = sum(c.isdigit() for c in run)
        return run.translate(_DIGITISH) if digits >= len(run.replace("-", "").replace(":", "")) / 2 else run

    return re.sub(r"[0-9OoDQIl|iZSsBg:\-/.]{4,}", fix, text)


def _valid(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d) if 1990 <= y <= 2100 else None
    except ValueError:
        return None


def _dates(text: str, order: DateOrder | None) -> list[tuple[date, int, int]]:
    """The dates ``text`` may mean, with where each was found (start, end)."""
    found: list[tuple[date, int, int]] = []
    for m in _YMD.finditer(text):
        v = _valid(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        if v is not None:
            found.append((v, m.start(), m.end()))
    if found:
        return found
    for m in _XXY.finditer(text):
        a, b, c = int(m.group(1)), int(m.group(2)), m.group(3)
        if len(c) == 2 and order is None:  # '13-02-19': 2019-02-13 or 2013-02-19? declared only
            continue
        y = int(c) + (2000 if len(c) == 2 else 0)
        options = {"dmy": [(y, b, a)], "mdy": [(y, a, b)], None: [(y, b, a), (y, a, b)]}.get(order, [])
        for yy, mo, d in dict.fromkeys(options):
            v = _valid(yy, mo, d)
            if v is not None and all(v != f[0] for f in found):
                found.append((v, m.start(), m.end()))
    upper = text.upper()
    for m in _NAMED_DATE.finditer(upper):
        if m.group(1):
            d, name, y = int(m.group(1)), m.group(2), int(m.group(3))
        else:
            name, d, y = m.group(4), int(m.group(5)), int(m.group(6))
        month = _MONTHS.get(name)
        v = _valid(y, month, d) if month else None
        if v is not None:
            found.append((v, m.start(), m.end()))
    return found


def parse_osd(text: str, date_order: DateOrder | None = None) -> list[datetime]:
    """The date-times (naive, the camera's local time) a line of OSD text may mean: one where the
    text says it plainly, several where the date's order is ambiguous and nothing settles it,
    none where there is no whole date and time.  A weekday in the text must match the date."""
    clean = _digits_in_numbers(text.strip())
    dates = _dates(clean, date_order)
    if not dates:
        return []
    _, d0, d1 = dates[0]
    rest = clean[:d0] + " " * (d1 - d0) + clean[d1:]  # the time is not inside the date
    # a colon read as a space ('11:59 59') is taken; three numbers apart by spaces alone are not
    tm = next((m for m in _TIME.finditer(rest) if (m.group(2) + m.group(4)).strip()), None)
    if tm is None:
        return []
    hh, mm, ss = int(tm.group(1)), int(tm.group(3)), int(tm.group(5))
    if tm.group(6):  # 12-hour clock
        if not 1 <= hh <= 12:
            return []
        hh = hh % 12 + (12 if tm.group(6).upper() == "PM" else 0)
    if hh > 23 or mm > 59 or ss > 59:
        return []
    weekday = None
    for word in re.findall(r"[A-Za-z]{3,}", clean):
        if word[:3].upper() in _WEEKDAYS and word.upper()[:3] not in _MONTHS:
            weekday = _WEEKDAYS[word[:3].upper()]
    out: list[datetime] = []
    for d, _, _ in dates:
        if weekday is not None and d.weekday() != weekday:
            continue
        dt = datetime(d.year, d.month, d.day, hh, mm, ss)
        if dt not in out:
            out.append(dt)
    return out


@dataclass(frozen=True, slots=True)
class OsdRead:
    """What the OSD said on one frame."""

    pts: float
    text: str
    time: datetime  # naive, the camera's local time
    score: float
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 of the text line in the frame


def _with_rows(lines: list[tuple[str, float, tuple[int, int, int, int]]]) -> list[tuple[str, float, tuple[int, int, int, int]]]:
    """The detected text lines, and beside them each row of lines side by side joined left to
    right (the detector may find an OSD's date and time as two lines)."""
    rows: list[list[tuple[str, float, tuple[int, int, int, int]]]] = []
    for line in sorted(lines, key=lambda ln: ln[2][0]):
        _, _, (_, y1, _, y2) = line
        for row in rows:
            _, _, (_, ry1, _, ry2) = row[-1]
            if min(y2, ry2) - max(y1, ry1) > 0.5 * min(y2 - y1, ry2 - ry1):
                row.append(line)
                break
        else:
            rows.append([line])
    joined = [(" ".join(t for t, _, _ in row), min(sc for _, sc, _ in row),
               (min(b[0] for _, _, b in row), min(b[1] for _, _, b in row), max(b[2] for _, _, b in row), max(b[3] for _, _, b in row)))
              for row in rows if len(row) > 1]
    return list(lines) + joined


class OsdReader:
    """Finds and reads the date-time line of a frame (PP-OCR detection + recognition, from the
    ``rapidocr`` wheel).  After a find, the next frames are read around it first."""

    def __init__(self, *, date_order: DateOrder | None = None, min_score: float = 0.8,
                 regions: Sequence[tuple[int, int, int, int]] = (), max_searches: int = 6) -> None:
        """``regions``: boxes (x1, y1, x2, y2) where the caller knows text is burned in:
        searched before the whole frame.  ``max_searches``: whole frames
        searched before giving up (footage without a clock costs that many detector runs)."""
        self.date_order = date_order
        self.min_score = min_score
        self.max_searches = max_searches
        self._hints = list(regions)
        self._found = False
        self._searches = 0
        #: a date-time line seen whose date's order nothing settled (None: none seen)
        self.ambiguous: str | None = None

    def _ocr(self, image: np.ndarray) -> list[tuple[str, float, tuple[int, int, int, int]]]:
        with _ENGINE_LOCK:  # one engine per process, one call at a time
            result = _engine()(image, use_cls=False)
        if result is None or result.txts is None:
            return []
        lines = []
        for box, text, score in zip(result.boxes, result.txts, result.scores):
            pts = np.asarray(box)
            x1, y1 = (int(v) for v in pts.min(axis=0))
            x2, y2 = (int(v) for v in pts.max(axis=0))
            lines.append((str(text), float(score), (x1, y1, x2, y2)))
        return lines

    def _search(self, image: np.ndarray, region: tuple[int, int, int, int] | None) -> OsdRead | None:
        h, w = image.shape[:2]
        ox = oy = 0
        view = image
        if region is not None:
            x1, y1, x2, y2 = region
            mx, my = max(8, (x2 - x1) // 4), max(8, (y2 - y1))
            ox, oy = max(0, x1 - mx), max(0, y1 - my)
            view = image[oy:min(h, y2 + my), ox:min(w, x2 + mx)]
            if view.size == 0:
                return None
        # a region is enlarged to a height the detector finds a line of text in reliably
        f = min(4.0, max(1.0, REGION_HEIGHT / view.shape[0])) if region is not None else 1.0
        if f > 1.0:
            view = cv2.resize(view, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)
        best: OsdRead | None = None
        for text, score, (x1, y1, x2, y2) in _with_rows(self._ocr(view)):
            x1, y1, x2, y2 = (int(round(v / f)) for v in (x1, y1, x2, y2))
            if score < self.min_score:
                continue
            times = parse_osd(text, self.date_order)
            if len(times) != 1:  # none, or an order nothing settles
                if len(times) > 1:
                    self.ambiguous = text
                continue
            box = (x1 + ox, y1 + oy, x2 + ox, y2 + oy)
            if best is None or score > best.score:
                best = OsdRead(0.0, text, times[0], score, box)
        return best

    def read(self, frame: Frame) -> OsdRead | None:
        """The OSD date-time on ``frame``, or None where none is legible.  The whole frame is
        searched only until the clock has been found once: an OSD does not move, and a frame
        without it there (a zoom, a cut to another view) has none to find."""
        for region in self._hints:
            found = self._search(frame.image, region)
            if found is not None:
                self._hints = [found.box] + [r for r in self._hints if r != region]
                self._found = True
                return OsdRead(frame.pts, found.text, found.time, found.score, found.box)
        if self._found or self._searches >= self.max_searches:
            return None
        self._searches += 1
        found = self._search(frame.image, None)
        if found is None:
            return None
        self._hints = [found.box] + self._hints
        self._found = True
        return OsdRead(frame.pts, found.text, found.time, found.score, found.box)


@functools.lru_cache(maxsize=1)
def _engine():  # type: ignore[no-untyped-def]
    """rapidocr's engine on the detector and recogniser files the manifest names (hash-checked),
    loaded once per process (a folder of recordings reads each one's clock)."""
    from etle.errors import MissingDependencyError
    from etle.models import registry

    try:
        from rapidocr import RapidOCR
    except ImportError as exc:
        raise MissingDependencyError("rapidocr", "core", "reading the picture's clock") from exc
    det = registry.resolve("ocr-rapidocr-det")
    rec = registry.resolve("ocr-rapidocr-rec")
    # the detector on the frame at most 960 px on its longer side (rapidocr's default scales the
    # shorter side up to 736: more memory, no better read of a clock's large characters), and
    # lines recognised one by one (an OSD is one or two lines)
    return RapidOCR(params={"Global.use_cls": False, "Global.log_level": "error",
                            "Det.model_path": str(det), "Rec.model_path": str(rec),
                            "Det.limit_type": "max", "Det.limit_side_len": 960, "Rec.rec_batch_num": 1})


@dataclass(frozen=True, slots=True)
class ClockFix:
    """A recording's start from its picture's clock."""

    start: datetime  # aware, the camera's time zone
    readings: tuple[OsdRead, ...]  # those that agree
    others: tuple[OsdRead, ...]  # those that do not (misreads, or the clock jumped)
    uncertainty_s: float  # half the width of the interval the agreeing readings leave

    @property
    def jumps(self) -> bool:
        """Whether the readings that disagree hold a clock of their own (edited footage, a clock
        set during the recording) rather than a stray misread."""
        return len(self.others) >= 2 and _largest_group(self.others)[1] >= 2

    def describe(self) -> str:
        text = (f"{len(self.readings)} readings of the picture's clock agree within "
                f"{2 * self.uncertainty_s:.2f} s")
        if self.others:
            text += f", {len(self.others)} do not" + (" (the clock jumps: edited footage?)" if self.jumps else "")
        return text


def _interval(r: OsdRead) -> tuple[float, float]:
    """Seconds since the epoch (of the naive local time) at which the recording may have begun."""
    t = (r.time - datetime(1970, 1, 1)).total_seconds()
    return t - r.pts, t + 1.0 - r.pts


def _largest_group(reads: Sequence[OsdRead]) -> tuple[tuple[float, float], int, list[int]]:
    """The interval most readings share (a small slack for frame timing), their count and indices."""
    slack = 0.05
    spans = [_interval(r) for r in reads]
    best: tuple[tuple[float, float], int, list[int]] = ((0.0, 0.0), 0, [])
    for lo, _ in spans:
        members = [i for i, (a, b) in enumerate(spans) if a - slack <= lo < b + slack]
        if len(members) > best[1]:
            a = max(spans[i][0] for i in members)
            b = min(spans[i][1] for i in members)
            best = ((a, max(a, b)), len(members), members)
    return best


def clock_start(reads: Sequence[OsdRead], tz: tzinfo, *, min_readings: int = 3) -> ClockFix | None:
    """The start of a recording from readings of its clock: the interval that most of them share,
    where they are a majority and at least ``min_readings``; else None."""
    if len(reads) < min_readings:
        return None
    (lo, hi), n, members = _largest_group(reads)
    if n < min_readings or n * 2 <= len(reads):
        return None
    mid = (lo + hi) / 2.0
    start = (datetime(1970, 1, 1) + timedelta(seconds=mid)).replace(tzinfo=tz)
    agree = tuple(reads[i] for i in members)
    others = tuple(r for i, r in enumerate(reads) if i not in set(members))
    return ClockFix(start, agree, others, (hi - lo) / 2.0)


def sample_frames(frames: Iterable[Frame], *, every_s: float = 1.37, count: int = 12) -> Iterable[Frame]:
    """Up to ``count`` frames about ``every_s`` apart (a spacing that is no multiple of common
    frame intervals, so the readings fall at different fractions of the clock's second)."""
    due = 0.0
    taken = 0
    for frame in frames:
        if frame.pts + 1e-9 >= due:
            yield frame
            taken += 1
            if taken >= count:
                return
            due = frame.pts + every_s


@dataclass(frozen=True, slots=True)
class ClockResult:
    """What reading a recording's clock gave: the start (None: no agreeing readings), every
    reading, and a date-time line seen whose date's order nothing settled."""

    fix: ClockFix | None
    reads: tuple[OsdRead, ...]
    ambiguous: str | None = None

    def note(self, name: str, container: datetime | None = None) -> str | None:
        """What a run says about dating ``name`` by its picture's clock (None: nothing to say)."""
        fix = self.fix
        if fix is None:
            if self.ambiguous is not None and not self.reads:
                return (f"{name}: the picture shows '{self.ambiguous}', a date whose order of day and month "
                        "nothing settles: set the camera file's clock.date_order (ymd, dmy or mdy) to date it by it")
            if self.reads:
                return (f"{name}: the clock in the picture was read {len(self.reads)} time(s) but the readings do "
                        "not agree on a start; not used")
            return None
        local = fix.start.strftime("%Y-%m-%d %H:%M:%S.%f")[:-5] + " " + (fix.start.tzname() or "")
        text = f"{name}: recorded from {local}, by the clock in the picture ({fix.describe()})"
        if container is not None and abs((container - fix.start).total_seconds()) > 60:
            text += f"; the file's creation_time ({container.isoformat()}) is not used"
        return text


def read_clock(frames: Iterable[Frame], tz: tzinfo, *, date_order: DateOrder | None = None,
               regions: Sequence[tuple[int, int, int, int]] = (), every_s: float = 1.37, count: int = 12,
               reader: OsdReader | None = None) -> ClockResult:
    """Read the clock on frames sampled from ``frames`` and the start the readings give."""
    reader = reader or OsdReader(date_order=date_order, regions=regions)
    reads: list[OsdRead] = []
    for frame in sample_frames(frames, every_s=every_s, count=count):
        r = reader.read(frame)
        if r is not None:
            reads.append(r)
    return ClockResult(clock_start(reads, tz), tuple(reads), reader.ambiguous)


def clock_of_file(path: str, tz: tzinfo, *, date_order: DateOrder | None = None, frame_rate: float | None = None,
                  every_s: float = 1.37, count: int = 12) -> ClockResult:
    """:func:`read_clock` on the first frames of the video file ``path`` (about ``every_s *
    count`` seconds of it)."""
    from etle.ingest.sources import VideoFileSource

    src = VideoFileSource(path, frame_rate=frame_rate, max_seconds=every_s * count + 1.0)
    return read_clock(src.frames(), tz, date_order=date_order, every_s=every_s, count=count)


#: what a recording's evidence names as the origin of a start read off its picture
OSD_ORIGIN = "the clock in the picture (OSD)"


#: how far the picture's clock at a ticket's frame may be from the ticket's own time, seconds
#: (it shows the whole second: ``floor(t)``, so ``t - 1 < shown <= t``; a little slack beyond)
CLOCK_TOLERANCE_S = (-2.0, 1.0)


def clock_at_frame(reader: OsdReader, frame: Frame, tz: tzinfo) -> dict[str, object]:
    """What the picture's clock shows on a ticket's frame, for its details: ``picture_clock``
    (the time read), and ``picture_clock_differs_s`` where that is not the ticket's own time
    (footage dated wrongly, an edited clip, a camera or box clock that drifted).  Empty where
    the picture shows no legible clock."""
    read = reader.read(frame)
    if read is None:
        return {}
    out: dict[str, object] = {"picture_clock": read.time.isoformat(sep=" ")}
    if frame.wall_start is not None:
        own = frame.timestamp.astimezone(tz).replace(tzinfo=None)
        diff = (read.time - own).total_seconds()
        if not CLOCK_TOLERANCE_S[0] <= diff <= CLOCK_TOLERANCE_S[1]:
            out["picture_clock_differs_s"] = round(diff)
    return out
