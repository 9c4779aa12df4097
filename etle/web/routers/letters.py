"""Confirmation letters as PDF: one approved ticket's (``/tickets/<ref>/letter.pdf``) and all the
tickets approved on a day (``/letters/<YYYY-MM-DD>.pdf``).

A letter prints only the blurred public copy of the evidence photo
(:func:`etle.privacy.public_image`; none can be made: 503), and the dates of the notice as
registered for the post when there is one.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response

from etle.i18n import translator
from etle.letters.dates import notice_dates, ticket_zone
from etle.letters.pdf import render_letters
from etle.privacy import PrivacyError, public_image
from etle.store import lifecycle
from etle.store.models import PENDING_REVIEW
from etle.store.repository import TicketView
from etle.web.deps import Actor, WebContext, get_ctx, lang_of, page_actor, rule_title

router = APIRouter()


def reviewer_of(ctx: WebContext, t: TicketView) -> str:
    for a in reversed(ctx.store.actions(t.id)):
        if a.action == "approve":
            return a.actor
    return "-"


def letter_items(ctx: WebContext, tickets: list[TicketView], request: Request) -> list[dict[str, Any]]:
    store, config = ctx.store, ctx.config
    lang = lang_of(request)
    base = (config.public_url or str(request.base_url)).rstrip("/")
    items = []
    for t in tickets:
        photo = None
        try:
            photo = ctx.evidence_file(t, "overview.jpg")
        except HTTPException:
            pass
        if photo is not None:  # a letter leaves the desk: only the blurred public copy
            try:
                photo = public_image(photo.parent, "overview.jpg")
            except PrivacyError as exc:
                raise HTTPException(503, f"letter refused: no blurred copy of the evidence photo ({exc})") from exc
        issued = t.status_changed_at or datetime.now(timezone.utc)
        sent = store.notices(ticket=t.id)
        if sent:  # the letter as registered for the post: its dates, not today's
            notice, deadline = sent[-1].notice_date, sent[-1].deadline
        else:
            zone = ticket_zone(store.camera_timezone(t.camera_id), t.local_time)
            notice, deadline = notice_dates(datetime.now(timezone.utc), zone, config.confirm_days)
        items.append({"ticket": t, "rule_title": rule_title(t.rule, lang), "photo": photo,
                      "confirm_url": f"{base}/konfirmasi/{t.reference}", "issued": issued,
                      "reviewer": reviewer_of(ctx, t), "notice_date": notice, "deadline": deadline})
    return items


def pdf_response(data: bytes, filename: str) -> Response:
    return Response(data, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"',
                             "Cache-Control": "no-store"})


@router.get("/tickets/{ref}/letter.pdf", include_in_schema=False)
def letter(ref: str, request: Request, actor: Actor = Depends(page_actor),
           ctx: WebContext = Depends(get_ctx)) -> Response:
    t = ctx.ticket_or_404(ref)
    if t.status in (PENDING_REVIEW, lifecycle.REJECTED):
        raise HTTPException(409, "letters are made for approved tickets only")
    data = render_letters(letter_items(ctx, [t], request), tr=translator(lang_of(request)), lang=lang_of(request))
    return pdf_response(data, f"{t.reference}.pdf")


@router.get("/letters/{day}.pdf", include_in_schema=False)
def day_letters(day: str, request: Request, actor: Actor = Depends(page_actor),
                ctx: WebContext = Depends(get_ctx)) -> Response:
    try:
        d = date.fromisoformat(day)
    except ValueError:
        raise HTTPException(400, "not a date") from None
    start = datetime.combine(d, time(), tzinfo=timezone.utc)
    approved = [t for t in ctx.store.list(status=lifecycle.APPROVED, limit=10000)
                if t.status_changed_at and start <= t.status_changed_at.replace(
                    tzinfo=t.status_changed_at.tzinfo or timezone.utc) < start + timedelta(days=1)]
    approved.sort(key=lambda t: t.reference)
    data = render_letters(letter_items(ctx, approved, request), tr=translator(lang_of(request)), lang=lang_of(request))
    return pdf_response(data, f"etle-letters-{d.isoformat()}.pdf")
