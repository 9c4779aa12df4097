"""Review-app routes after the letter: record a confirmation, import payments, block overdue tickets.

:data:`router` is included by :func:`etle.web.app.create_app`; its routes use the app's shared
login, role, CSRF and rendering helpers (:mod:`etle.web.deps`).  The work is done by
:mod:`etle.settlement`; every change is audited with the logged-in user.  Recording a
confirmation is for any role; importing payments and blocking are for supervisors and admins.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel

from etle.errors import StoreError
from etle.settlement import (
    VIA,
    BlockResult,
    PaymentImport,
    SettlementInputError,
    block_overdue,
    import_payments_text,
    record_confirmation,
)
from etle.store import lifecycle
from etle.store.repository import TicketStore, TicketView
from etle.web.deps import (
    Actor,
    WebContext,
    api_actor,
    check_csrf,
    get_ctx,
    need,
    page_actor,
)
from etle.web.routers.api import ticket_out

MAX_UPLOAD = 5 * 1024 * 1024
"""The largest payment file accepted (bytes)."""

router = APIRouter()


class ConfirmIn(BaseModel):
    driver_is_owner: bool = False
    named_driver: str | None = None
    via: str = "online"


def import_dict(r: PaymentImport) -> dict[str, Any]:
    return {
        "file": r.source, "sha256": r.sha256, "rows": r.rows, "dry_run": r.dry_run, "ok": r.ok,
        "paid": [{"line": row.line, "payment_code": row.payment_code, "reference": t.reference, "amount": row.amount}
                 for row, t in r.paid],
        "skipped": [{"line": p.line, "payment_code": p.payment_code, "kind": p.kind, "reason": p.reason,
                     "reference": p.reference} for p in r.skipped],
        "refused": [{"line": p.line, "payment_code": p.payment_code, "kind": p.kind, "reason": p.reason,
                     "reference": p.reference} for p in r.refused],
    }


def block_dict(r: BlockResult) -> dict[str, Any]:
    return {
        "now": r.now.isoformat(), "dry_run": r.dry_run, "waiting": r.waiting,
        "blocked": [{"reference": t.reference, "deadline": n.deadline.isoformat()} for t, n in r.blocked],
        "no_notice": [t.reference for t in r.no_notice],
        "lost": [{"reference": ref, "reason": why} for ref, why in r.lost],
    }


def confirm(store: TicketStore, t: TicketView, actor: Actor, *, driver_is_owner: bool, named_driver: str | None,
            via: str) -> TicketView:
    need(actor, "reviewer")
    try:
        return record_confirmation(store, t.id, driver_is_owner=driver_is_owner, named_driver=named_driver,
                                   via=via, actor=actor.username)
    except SettlementInputError as exc:
        raise HTTPException(400, str(exc)) from exc
    except lifecycle.TransitionError as exc:
        raise HTTPException(409, str(exc)) from exc


async def read_upload(upload: UploadFile) -> str:
    data = await upload.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise HTTPException(413, f"payment file larger than {MAX_UPLOAD // (1024 * 1024)} MB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(400, "the payment file is not UTF-8 text") from None


def payments(store: TicketStore, text: str, name: str, actor: Actor, dry_run: bool) -> PaymentImport:
    need(actor, "supervisor")
    safe = "".join(c for c in (name or "upload.csv") if c.isalnum() or c in "._-")[:128] or "upload.csv"
    try:
        return import_payments_text(store, text, source=safe, actor=actor.username, dry_run=dry_run)
    except SettlementInputError as exc:
        raise HTTPException(400, str(exc)) from exc
    except lifecycle.TransitionError as exc:
        raise HTTPException(409, str(exc)) from exc
    except StoreError as exc:
        raise HTTPException(400, str(exc)) from exc


def block(store: TicketStore, actor: Actor, dry_run: bool) -> BlockResult:
    need(actor, "supervisor")
    return block_overdue(store, datetime.now(timezone.utc), actor.username, dry_run=dry_run)


# -- pages ---------------------------------------------------------------------------------------

@router.post("/tickets/{ref}/confirm", include_in_schema=False)
def confirm_form(ref: str, driver: str = Form(""), named_driver: str = Form(""), via: str = Form("in_person"),
                 csrf: str = Form(""), actor: Actor = Depends(page_actor),
                 ctx: WebContext = Depends(get_ctx)) -> Response:
    check_csrf(actor, csrf)
    if driver not in ("owner", "other"):
        raise HTTPException(400, "say whether the owner was driving")
    t = confirm(ctx.store, ctx.ticket_or_404(ref), actor, driver_is_owner=driver == "owner",
                named_driver=named_driver if driver == "other" else None, via=via)
    return RedirectResponse(f"/tickets/{t.reference}?msg=confirmed", status_code=303)


@router.get("/settlement", response_class=HTMLResponse, include_in_schema=False)
def settlement_page(request: Request, actor: Actor = Depends(page_actor),
                    ctx: WebContext = Depends(get_ctx)) -> HTMLResponse:
    need(actor, "supervisor")
    return ctx.render(request, "settlement.html", actor, payments=None, blocked=None,
                      waiting=len(ctx.store.awaiting_confirmation()))


@router.post("/settlement/payments", response_class=HTMLResponse, include_in_schema=False)
async def settlement_payments(request: Request, file: UploadFile = File(...), csrf: str = Form(""),
                              dry_run: str = Form(""), actor: Actor = Depends(page_actor),
                              ctx: WebContext = Depends(get_ctx)) -> HTMLResponse:
    check_csrf(actor, csrf)
    need(actor, "supervisor")
    result = payments(ctx.store, await read_upload(file), file.filename or "", actor, bool(dry_run))
    return ctx.render(request, "settlement.html", actor, payments=result, blocked=None,
                      waiting=len(ctx.store.awaiting_confirmation()))


@router.post("/settlement/block-overdue", response_class=HTMLResponse, include_in_schema=False)
def settlement_block(request: Request, csrf: str = Form(""), dry_run: str = Form(""),
                     actor: Actor = Depends(page_actor), ctx: WebContext = Depends(get_ctx)) -> HTMLResponse:
    check_csrf(actor, csrf)
    result = block(ctx.store, actor, bool(dry_run))
    return ctx.render(request, "settlement.html", actor, payments=None, blocked=result,
                      waiting=len(ctx.store.awaiting_confirmation()))


# -- JSON API ------------------------------------------------------------------------------------

@router.post("/api/v1/tickets/block-overdue", tags=["settlement"])
def api_block_overdue(dry_run: bool = False, actor: Actor = Depends(api_actor),
                      ctx: WebContext = Depends(get_ctx)) -> dict[str, Any]:
    """Block every notice_sent ticket whose confirmation deadline has passed (supervisors)."""
    return block_dict(block(ctx.store, actor, dry_run))


@router.post("/api/v1/tickets/{ref}/confirm", tags=["settlement"])
def api_confirm(ref: str, body: ConfirmIn, actor: Actor = Depends(api_actor),
                ctx: WebContext = Depends(get_ctx)) -> dict[str, Any]:
    """Record the owner's confirmation (notice_sent -> confirmed); returns the ticket and its payment code."""
    if body.via not in VIA:
        raise HTTPException(400, f"via: one of {', '.join(VIA)}")
    t = confirm(ctx.store, ctx.ticket_or_404(ref), actor, driver_is_owner=body.driver_is_owner,
                named_driver=body.named_driver, via=body.via)
    return {**ticket_out(t).model_dump(mode="json"), "payment_code": t.payment_code}


@router.post("/api/v1/payments/import", tags=["settlement"])
async def api_payments_import(file: UploadFile = File(...), dry_run: bool = False,
                              actor: Actor = Depends(api_actor), ctx: WebContext = Depends(get_ctx)) -> dict[str, Any]:
    """Import a payment CSV (payment_code,amount,paid_at; supervisors): the paid, skipped and refused rows."""
    need(actor, "supervisor")
    return import_dict(payments(ctx.store, await read_upload(file), file.filename or "", actor, dry_run))
