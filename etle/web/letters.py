"""Confirmation letters as PDF (reportlab) with the evidence photo and a QR code (segno)."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import segno
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas

CONFIRM_DAYS = 8
"""Days from the letter to the confirmation deadline (DOMAIN: blocked when not confirmed by day 8)."""


def _rupiah(amount: int | None) -> str:
    return "-" if amount is None else "Rp " + f"{amount:,}".replace(",", ".")


def _draw_letter(c: Canvas, t: Any, *, tr: Callable[[str], str], lang: str, rule_title: str,
                 photo: Path | None, confirm_url: str, issued: datetime, reviewer: str) -> None:
    width, height = A4
    x0, y = 20 * mm, height - 22 * mm
    c.setFont("Helvetica-Bold", 14)
    c.drawString(x0, y, tr("letter_title"))
    y -= 7 * mm
    c.setFont("Helvetica", 10)
    c.drawString(x0, y, tr("letter_subtitle"))
    c.drawRightString(width - 20 * mm, y, f"{tr('reference')}: {t.reference}")
    y -= 4 * mm
    c.line(x0, y, width - 20 * mm, y)
    y -= 8 * mm
    c.drawString(x0, y, tr("letter_intro"))
    y -= 9 * mm
    deadline = (issued + timedelta(days=CONFIRM_DAYS)).date().isoformat()
    rows = [
        (tr("plate"), t.plate_text or "-"),
        (tr("time"), t.local_time or t.occurred_at.isoformat()),
        (tr("location"), t.location or t.camera_name or t.camera_id),
        (tr("camera"), f"{t.camera_name or ''} ({t.camera_id})"),
        (tr("rule"), rule_title),
        (tr("article"), f"UU 22/2009 Pasal {t.article}" if t.article else "-"),
        (tr("fine"), _rupiah(t.fine)),
        (tr("letter_deadline"), deadline),
        (tr("reference"), t.reference),
    ]
    for label, value in rows:
        c.setFont("Helvetica-Bold", 10)
        c.drawString(x0, y, label)
        c.setFont("Helvetica-Bold" if label == tr("plate") else "Helvetica", 12 if label == tr("plate") else 10)
        c.drawString(x0 + 45 * mm, y, str(value)[:90])
        y -= 6.5 * mm
    y -= 3 * mm
    if photo is not None and photo.is_file():
        c.setFont("Helvetica-Bold", 10)
        c.drawString(x0, y, tr("letter_evidence"))
        y -= 3 * mm
        img = ImageReader(str(photo))
        iw, ih = img.getSize()
        w = width - 40 * mm
        h = min(w * ih / iw, 95 * mm)
        w = h * iw / ih
        c.drawImage(img, x0, y - h, w, h)
        y -= h + 8 * mm
    qr = segno.make(confirm_url, error="m")
    buf = io.BytesIO()
    qr.save(buf, kind="png", scale=6, border=2)
    buf.seek(0)
    size = 32 * mm
    c.drawImage(ImageReader(buf), width - 20 * mm - size, 18 * mm, size, size)
    c.setFont("Helvetica", 9)
    text_y = 44 * mm
    c.drawString(x0, text_y, tr("letter_confirm"))
    c.setFont("Helvetica-Bold", 9)
    c.drawString(x0, text_y - 5 * mm, confirm_url)
    c.setFont("Helvetica", 9)
    c.drawString(x0, text_y - 12 * mm, tr("letter_note"))
    c.drawString(x0, text_y - 19 * mm, f"{tr('letter_reviewed_by')}: {reviewer}   {issued.date().isoformat()}")


def render_letters(items: Sequence[dict[str, Any]], *, tr: Callable[[str], str], lang: str) -> bytes:
    """One page per item: ``{"ticket", "rule_title", "photo", "confirm_url", "issued", "reviewer"}``."""
    out = io.BytesIO()
    c = Canvas(out, pagesize=A4)
    c.setTitle(tr("letter_title"))
    c.setAuthor("etle")
    for item in items:
        _draw_letter(c, item["ticket"], tr=tr, lang=lang, rule_title=item["rule_title"], photo=item["photo"],
                     confirm_url=item["confirm_url"], issued=item["issued"], reviewer=item["reviewer"])
        c.showPage()
    if not items:
        c.setFont("Helvetica", 11)
        c.drawString(20 * mm, A4[1] - 30 * mm, "-")
        c.showPage()
    c.save()
    return out.getvalue()
