"""The citizen's confirmation page: ``/konfirmasi`` (public, Indonesian first, made for a phone).

The letter's QR code opens ``/konfirmasi/<reference>``: a form with the reference filled in that
asks for the vehicle's plate.  Only the reference and the plate together open a ticket:

- there is no listing and nothing is looked up before both are sent; an unknown reference, a
  wrong plate, a malformed reference and a ticket that was rejected all get the same neutral
  answer (same status, same page), so references cannot be enumerated;
- failed tries are counted per client address and per reference (:class:`FailureLimiter`,
  :data:`FAIL_LIMIT` in :data:`FAIL_WINDOW_S`); past the limit every try gets 429 until the
  window passes, also with the right plate;
- a successful try sets a signed, short-lived cookie (:data:`SESSION_MAX_AGE_S`, HMAC-SHA256
  with a key derived from the app's secret) bound to that one ticket; the ticket page, its
  picture and the answer form need it and check that it names the ticket of the URL.

The ticket page shows the violation, time, place, plate, article, fine, the notice's deadline
and the owner's name masked (``B*** S******``), and only the blurred evidence picture made by
:func:`etle.privacy.public_image` (under ``<bundle>/public/``): if it cannot be made there is
no picture, and no original bundle file is ever served here.  On a notice_sent ticket the owner
answers "I was driving" or names the driver (name, and optionally address and ID number); the
answer goes through :func:`etle.settlement.record_confirmation` (``via="online"``, actor
:data:`ACTOR`), audited, and the page then shows the payment code.  Confirmed, paid, blocked and
not-yet-sent tickets get a plain message instead of the form.

Every form carries a CSRF token (the lookup form's is tied to a nonce cookie, the answer form's
to the session); every page gets the same security headers as the review app with a stricter
policy (no script at all).  Language: ``?lang=en`` / ``?lang=id`` (kept in the app's language
cookie), Indonesian by default.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from etle import articles
from etle.registry.base import normalise_plate
from etle.settlement import SettlementInputError, record_confirmation
from etle.store import lifecycle
from etle.store.repository import TicketStore, TicketView

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
LANGS: Final = ("id", "en")
LANG_COOKIE: Final = "etle_lang"
SESSION_COOKIE: Final = "etle_konfirmasi"
NONCE_COOKIE: Final = "etle_konfirmasi_pre"
COOKIE_PATH: Final = "/konfirmasi"
SESSION_MAX_AGE_S: Final = 15 * 60
"""How long a ticket stays open after the reference and plate were accepted."""
FAIL_LIMIT: Final = 5
FAIL_WINDOW_S: Final = 15 * 60.0
"""At most :data:`FAIL_LIMIT` failed tries per client address and per reference in this window."""
ACTOR: Final = "system:konfirmasi"
"""The audit-log actor of confirmations made on this page (the citizen has no user row)."""
PHOTO: Final = "overview.jpg"
"""The evidence picture shown (blurred) to the citizen: the one the letter prints."""
_REFERENCE = re.compile(r"^[A-Z][A-Z0-9]{0,15}(?:-[A-Z0-9]{1,16}){1,3}$")
"""A reference code as printed (``ETLE-20261128-7KQ4MZ``): never a bare id or a uid, which
the store would also accept."""
_CSP: Final = ("default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; form-action 'self'; "
               "frame-ancestors 'none'; base-uri 'none'")
_MONTHS_ID: Final = ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September",
                     "Oktober", "November", "Desember")
_MONTHS_EN: Final = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
                     "October", "November", "December")
_ZONES: Final = {7 * 3600: "WIB", 8 * 3600: "WITA", 9 * 3600: "WIT"}


def normalise_reference(text: str) -> str:
    """A typed reference as stored: capitals, no spaces (``etle-20261128-7kq4mz `` -> ``ETLE-20261128-7KQ4MZ``)."""
    return "".join(text.split()).upper()[:64]


def mask_name(name: str) -> str:
    """The owner's name with all but each word's first letter hidden (``Budi Santoso`` -> ``B*** S******``)."""
    return " ".join(w[0] + "*" * (len(w) - 1) for w in name.split())


class FailureLimiter:
    """Failed tries per key (a client address, a reference) in a sliding window, in memory.

    A small limiter of our own rather than a library: the app already runs one process per
    site, the login form counts the same way (:class:`etle.web.auth.RateLimiter`), and the
    maintained libraries (``slowapi``/``limits``) would add dependencies for less: they count
    requests, not failures.  Unlike the login limiter, keys here come from anyone on the
    internet, so empty windows are dropped and the table is bounded (:attr:`max_keys`; when full,
    the oldest keys go first).  Counts are per process: run one worker, or put the page behind
    a proxy that limits as well.  The client address is the request's: behind a reverse proxy,
    uvicorn takes it from ``X-Forwarded-For`` only for the proxies in ``FORWARDED_ALLOW_IPS``
    (default 127.0.0.1); a proxy elsewhere must be listed there, or all citizens would share
    the proxy's count.
    """

    def __init__(self, limit: int = FAIL_LIMIT, window_s: float = FAIL_WINDOW_S, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self._clock = clock
        self._fails: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _count(self, key: str, now: float) -> int:
        q = self._fails.get(key)
        if q is None:
            return 0
        while q and q[0] <= now - self.window_s:
            q.popleft()
        if not q:
            del self._fails[key]
            return 0
        return len(q)

    def blocked(self, *keys: str) -> bool:
        """Whether any of ``keys`` has reached the limit."""
        with self._lock:
            now = self._clock()
            return any(self._count(k, now) >= self.limit for k in keys)

    def fail(self, *keys: str) -> None:
        """Count a failed try against each of ``keys``."""
        with self._lock:
            now = self._clock()
            for k in keys:
                self._count(k, now)
                while len(self._fails) >= self.max_keys and k not in self._fails:
                    del self._fails[next(iter(self._fails))]
                self._fails.setdefault(k, deque()).append(now)


@dataclass(frozen=True, slots=True)
class CitizenSession:
    """What the signed cookie holds: the one ticket it opens, its CSRF token and expiry."""

    reference: str
    ticket_id: int
    csrf: str
    expires: float


class CitizenSigner:
    """Signs and reads the citizen cookie (HMAC-SHA256; the key is derived from the app secret so
    a citizen cookie can never pass as an officer's session, nor the reverse)."""

    def __init__(self, secret: bytes, max_age_s: int = SESSION_MAX_AGE_S) -> None:
        self._key = hmac.new(secret, b"etle:konfirmasi:session", hashlib.sha256).digest()
        self._nonce_key = hmac.new(secret, b"etle:konfirmasi:lookup", hashlib.sha256).digest()
        self.max_age_s = max_age_s

    def _mac(self, body: str) -> str:
        return base64.urlsafe_b64encode(hmac.new(self._key, body.encode(), hashlib.sha256).digest()).rstrip(b"=").decode()

    def dump(self, t: TicketView) -> tuple[str, CitizenSession]:
        s = CitizenSession(t.reference, t.id, secrets.token_urlsafe(24), time.time() + self.max_age_s)
        body = base64.urlsafe_b64encode(json.dumps(
            {"r": s.reference, "i": s.ticket_id, "c": s.csrf, "e": s.expires}).encode()).rstrip(b"=").decode()
        return f"{body}.{self._mac(body)}", s

    def load(self, cookie: str | None) -> CitizenSession | None:
        if not cookie or cookie.count(".") != 1 or len(cookie) > 1024:
            return None
        body, mac = cookie.split(".")
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        try:
            raw = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            s = CitizenSession(str(raw["r"]), int(raw["i"]), str(raw["c"]), float(raw["e"]))
        except (ValueError, KeyError, TypeError):
            return None
        return s if s.expires > time.time() else None

    def lookup_token(self, nonce: str) -> str:
        """The lookup form's CSRF token for the nonce cookie."""
        return hmac.new(self._nonce_key, nonce.encode(), hashlib.sha256).hexdigest()


def long_date(d: date, lang: str) -> str:
    months = _MONTHS_EN if lang == "en" else _MONTHS_ID
    return f"{d.day} {months[d.month - 1]} {d.year}"


def local_moment(t: TicketView, lang: str) -> str:
    """When the violation happened, in the camera's local time as recorded (``28 November 2026, 08.01 WIB``)."""
    try:
        moment = datetime.fromisoformat(t.local_time)
    except ValueError:
        moment = t.occurred_at.astimezone(timezone.utc)
    offset = moment.utcoffset()
    seconds = int(offset.total_seconds()) if offset is not None else 0
    zone = _ZONES.get(seconds) or ("UTC" if seconds == 0 else moment.strftime("UTC%z"))
    clock = moment.strftime("%H.%M" if lang == "id" else "%H:%M")
    return f"{long_date(moment.date(), lang)}, {clock} {zone}"


def register(
    app: FastAPI,
    *,
    store: TicketStore,
    secret: bytes,
    secure_cookies: bool,
    bundle_dir: Callable[[TicketView], Path | None],
    translator: Callable[[str], Callable[[str], str]],
    limiter: FailureLimiter | None = None,
) -> None:
    """Add the ``/konfirmasi`` routes to ``app`` (made by :func:`etle.web.app.create_app`).

    ``bundle_dir(t)`` is the ticket's evidence folder (inside the evidence root) or None;
    ``translator(lang)`` the app's catalogue lookup.  ``limiter`` defaults to a fresh
    :class:`FailureLimiter`; it is also ``app.state.citizen_limiter``.
    """
    signer = CitizenSigner(secret)
    limiter = limiter or FailureLimiter()
    app.state.citizen_limiter = limiter
    env = Environment(loader=FileSystemLoader(str(HERE / "templates")),
                      autoescape=select_autoescape(["html", "xml"], default=True))

    # -- helpers -------------------------------------------------------------------------------

    def lang_of(request: Request) -> str:
        asked = request.query_params.get("lang", "")
        if asked in LANGS:
            return asked
        lang = request.cookies.get(LANG_COOKIE, "id")
        return lang if lang in LANGS else "id"

    def set_cookie(resp: Response, name: str, value: str, max_age: int) -> None:
        resp.set_cookie(name, value, max_age=max_age, httponly=True, secure=secure_cookies, samesite="strict",
                        path=COOKIE_PATH)

    def render(request: Request, name: str, status_code: int = 200, **ctx: Any) -> HTMLResponse:
        lang = lang_of(request)
        html = env.get_template(name).render(
            t=translator(lang), lang=lang, other_lang="en" if lang == "id" else "id", path=request.url.path,
            rupiah=lambda v: "-" if v is None else "Rp " + f"{v:,}".replace(",", "."), **ctx)
        resp = HTMLResponse(html, status_code=status_code)
        resp.headers["Content-Security-Policy"] = _CSP
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["X-Robots-Tag"] = "noindex, nofollow"
        if request.query_params.get("lang") in LANGS:
            resp.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, httponly=True, secure=secure_cookies,
                            samesite="strict", path="/")
        return resp

    def client_key(request: Request) -> str:
        return "ip:" + (request.client.host if request.client else "unknown")

    def lookup_page(request: Request, reference: str = "", error: str = "", status_code: int = 200,
                    headers: dict[str, str] | None = None) -> HTMLResponse:
        nonce = request.cookies.get(NONCE_COOKIE, "")
        if not re.fullmatch(r"[A-Za-z0-9_-]{16,64}", nonce):
            nonce = secrets.token_urlsafe(16)
        shown = reference if _REFERENCE.fullmatch(reference) else ""
        resp = render(request, "citizen_lookup.html", status_code=status_code, reference=shown, error=error,
                      csrf=signer.lookup_token(nonce))
        set_cookie(resp, NONCE_COOKIE, nonce, 3600)
        for k, v in (headers or {}).items():
            resp.headers[k] = v
        return resp

    def session_for(request: Request, ref: str) -> tuple[CitizenSession, TicketView] | None:
        s = signer.load(request.cookies.get(SESSION_COOKIE))
        if s is None or s.reference != normalise_reference(ref):
            return None
        t = store.get(s.ticket_id)
        if t is None or t.reference != s.reference or t.status == lifecycle.REJECTED:
            return None
        return s, t

    def back_to_form(ref: str) -> RedirectResponse:
        """Where a request without a valid session for ``ref`` goes: the same for every reference."""
        ref = normalise_reference(ref)
        return RedirectResponse(f"/konfirmasi/{ref}" if _REFERENCE.fullmatch(ref) else "/konfirmasi", status_code=303)

    def public_photo(t: TicketView) -> Path | None:
        """The blurred copy of the evidence picture (made if missing), or None: never the original."""
        folder = bundle_dir(t)
        if folder is None or not folder.is_dir():
            return None
        if any(f.name == PHOTO and f.pruned_at is not None for f in t.evidence_files):
            return None
        try:
            from etle.privacy import public_image

            path = Path(public_image(folder, PHOTO)).resolve()
        except Exception as exc:  # noqa: BLE001 - no blurred copy means no picture, whatever failed
            log.warning("no public picture for %s: %s: %s", t.reference, type(exc).__name__, exc)
            return None
        public = (folder / "public").resolve()
        if not path.is_relative_to(public) or path == (folder / PHOTO).resolve() or not path.is_file():
            log.warning("no public picture for %s: %s is not a copy under %s", t.reference, path, public)
            return None
        return path

    def deadline_of(t: TicketView) -> date | None:
        sent = store.notices(ticket=t.id)
        return sent[-1].deadline if sent else None

    def ticket_page(request: Request, s: CitizenSession, t: TicketView, *, msg: str = "", error: str = "",
                    status_code: int = 200, form: dict[str, str] | None = None) -> HTMLResponse:
        lang = lang_of(request)
        art = articles.article_for(t.rule)
        title = ((art.title_en if lang == "en" else art.title_id) or t.rule) if art is not None else t.rule
        deadline = deadline_of(t)
        return render(request, "citizen_ticket.html", status_code=status_code, tk=t, csrf=s.csrf, msg=msg,
                      error=error, rule_title=title, when=local_moment(t, lang),
                      place=t.location or t.camera_name or t.camera_id,
                      deadline=long_date(deadline, lang) if deadline else "",
                      owner=mask_name(t.owner_name), photo=public_photo(t) is not None,
                      form=form or {})

    # -- routes --------------------------------------------------------------------------------

    @app.get("/konfirmasi", response_class=HTMLResponse, include_in_schema=False)
    def citizen_start(request: Request) -> HTMLResponse:
        return lookup_page(request, normalise_reference(request.query_params.get("ref", "")))

    @app.get("/konfirmasi/{ref}", response_class=HTMLResponse, include_in_schema=False)
    def citizen_link(ref: str, request: Request) -> HTMLResponse:
        """The QR code's link: the form with the reference filled in (nothing is looked up)."""
        return lookup_page(request, normalise_reference(ref))

    @app.post("/konfirmasi", include_in_schema=False)
    def citizen_open(request: Request, reference: str = Form(""), plate: str = Form(""),
                     csrf: str = Form("")) -> Response:
        ref = normalise_reference(reference)
        keys = (client_key(request), "ref:" + ref)
        if limiter.blocked(*keys):
            return lookup_page(request, ref, "citizen_too_many", 429, {"Retry-After": str(int(limiter.window_s))})
        nonce = request.cookies.get(NONCE_COOKIE, "")
        if not nonce or not csrf or not hmac.compare_digest(csrf, signer.lookup_token(nonce)):
            return lookup_page(request, ref, "citizen_form_expired", 400)
        t = store.get(ref) if _REFERENCE.fullmatch(ref) else None
        wanted = normalise_plate(plate)
        if (t is None or t.reference != ref or t.status == lifecycle.REJECTED or not wanted
                or not hmac.compare_digest(normalise_plate(t.plate_text).encode(), wanted.encode())):
            limiter.fail(*keys)
            return lookup_page(request, ref, "citizen_not_found", 400)
        cookie, _ = signer.dump(t)
        resp = RedirectResponse(f"/konfirmasi/{t.reference}/detail", status_code=303)
        set_cookie(resp, SESSION_COOKIE, cookie, signer.max_age_s)
        log.info("citizen page opened %s", t.reference)
        return resp

    @app.get("/konfirmasi/{ref}/detail", response_class=HTMLResponse, include_in_schema=False)
    def citizen_ticket(ref: str, request: Request) -> Response:
        found = session_for(request, ref)
        if found is None:
            return back_to_form(ref)
        s, t = found
        msg = request.query_params.get("msg", "")
        return ticket_page(request, s, t, msg=msg if msg == "confirmed" else "")

    @app.get("/konfirmasi/{ref}/bukti.jpg", include_in_schema=False)
    def citizen_photo(ref: str, request: Request) -> Response:
        found = session_for(request, ref)
        path = public_photo(found[1]) if found is not None else None
        if path is None:
            return Response("not found", status_code=404, media_type="text/plain",
                            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
        return FileResponse(path, media_type="image/jpeg",
                            headers={"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff",
                                     "Content-Security-Policy": "default-src 'none'"})

    @app.post("/konfirmasi/{ref}/jawab", include_in_schema=False)
    def citizen_answer(ref: str, request: Request, driver: str = Form(""), driver_name: str = Form(""),
                       driver_address: str = Form(""), driver_id: str = Form(""),
                       csrf: str = Form("")) -> Response:
        found = session_for(request, ref)
        if found is None:
            return back_to_form(ref)
        s, t = found
        form = {"driver": driver, "driver_name": driver_name[:200], "driver_address": driver_address[:300],
                "driver_id": driver_id[:20]}
        if not csrf or not hmac.compare_digest(csrf, s.csrf):
            return ticket_page(request, s, t, error="citizen_form_expired", status_code=403, form=form)
        if t.status != lifecycle.NOTICE_SENT:
            return ticket_page(request, s, t, status_code=409)
        if driver not in ("owner", "other"):
            return ticket_page(request, s, t, error="citizen_choose", status_code=400, form=form)
        if driver == "other" and not " ".join(driver_name.split()):
            return ticket_page(request, s, t, error="citizen_name_needed", status_code=400, form=form)
        try:
            t = record_confirmation(
                store, t.id, driver_is_owner=driver == "owner", via="online", actor=ACTOR,
                named_driver=driver_name if driver == "other" else None,
                driver_address=driver_address if driver == "other" else "",
                driver_id_number=driver_id if driver == "other" else "")
        except SettlementInputError:
            return ticket_page(request, s, t, error="citizen_bad_answer", status_code=400, form=form)
        except lifecycle.TransitionError:  # answered or blocked meanwhile
            fresh = store.get(t.id) or t
            return ticket_page(request, s, fresh, status_code=409)
        log.info("citizen confirmed %s", t.reference)
        return RedirectResponse(f"/konfirmasi/{t.reference}/detail?msg=confirmed", status_code=303)
