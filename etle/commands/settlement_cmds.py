"""CLI commands after the letter: ``tickets confirm``, ``tickets block-overdue``, ``payments import``.

The work lives in :mod:`etle.settlement`.  Bad input (a confirmation that says nothing, a
payment file without its header, a ``--now`` that is not an ISO time) is one line and exit 2
through :func:`etle.cli.main`; a ticket in the wrong status or an unusable database exit 5.
``payments import`` exits 1 when rows were refused (after listing them, one line each).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from etle.config.run import DEFAULT_DB  # noqa: E402
_ACTOR_HELP = "Who the audit log names (a user or system:<name>)."


def _console(stderr: bool = False) -> Console:
    c = Console(stderr=stderr)
    return c if c.is_terminal else Console(stderr=stderr, width=200)


def _say(console: Console, text: str) -> None:
    console.print(text, markup=False, highlight=False)


def parse_now(text: Optional[str]) -> datetime:
    """``--now``: an ISO 8601 time with its UTC offset (default: the present); not in the future."""
    from etle.settlement import SettlementInputError

    present = datetime.now(timezone.utc)
    if not text:
        return present
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise SettlementInputError(f"--now {text!r} is not an ISO 8601 time (e.g. 2026-12-09T00:00:00+07:00)") from None
    if moment.tzinfo is None:
        raise SettlementInputError(f"--now {text!r} has no UTC offset (e.g. +07:00)")
    if moment > present:
        raise SettlementInputError(f"--now {text!r} is in the future")
    return moment


def register(app: typer.Typer, tickets_app: typer.Typer) -> None:
    payments_app = typer.Typer(help="Payment records of confirmed and blocked tickets.", no_args_is_help=True)
    app.add_typer(payments_app, name="payments")

    @tickets_app.command("confirm")
    def tickets_confirm(
        ref: str = typer.Argument(..., help="Ticket reference code (or id)."),
        driver_is_owner: bool = typer.Option(False, "--driver-is-owner", help="The owner says they were driving."),
        named_driver: Optional[str] = typer.Option(None, "--named-driver", help="The driver the owner names."),
        via: str = typer.Option("in_person", "--via", help="How it came: online, in_person or post."),
        db: str = typer.Option(DEFAULT_DB, "--db", envvar="ETLE_DB", help="Ticket database (SQLAlchemy URL)."),
        actor: str = typer.Option("system:settlement", "--actor", envvar="ETLE_ACTOR", help=_ACTOR_HELP),
    ) -> None:
        """Record the owner's confirmation of a notice (notice_sent -> confirmed) and print the payment code."""
        from etle.settlement import record_confirmation
        from etle.store import open_store

        with open_store(db) as store:
            t = record_confirmation(store, ref, driver_is_owner=driver_is_owner, named_driver=named_driver,
                                    via=via, actor=actor)
        who = "the owner was driving" if driver_is_owner else f"driver: {' '.join((named_driver or '').split())}"
        _say(_console(), f"{t.reference}  confirmed ({who}, {via})  payment code {t.payment_code}  "
                         f"fine {t.fine if t.fine is not None else '-'}")

    @tickets_app.command("block-overdue")
    def tickets_block_overdue(
        now: Optional[str] = typer.Option(None, "--now", help="The time to judge deadlines at (ISO 8601 with offset; default now)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="List what would be blocked; change nothing."),
        db: str = typer.Option(DEFAULT_DB, "--db", envvar="ETLE_DB", help="Ticket database (SQLAlchemy URL)."),
        actor: str = typer.Option("system:settlement", "--actor", envvar="ETLE_ACTOR", help=_ACTOR_HELP),
        no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
    ) -> None:
        """Block every notice_sent ticket whose confirmation deadline has passed (one line each)."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        from etle.settlement import block_overdue
        from etle.store import open_store

        moment = parse_now(now)
        out, err = _console(), _console(stderr=True)
        progress = Progress(TextColumn("deadlines"), BarColumn(), MofNCompleteColumn(), console=err, transient=True,
                            disable=no_progress or not err.is_terminal)
        with open_store(db) as store, progress:
            task = progress.add_task("deadlines", total=None)
            result = block_overdue(store, moment, actor, dry_run=dry_run,
                                   on_ticket=lambda done, total: progress.update(task, completed=done, total=total))
        verb = "would block" if dry_run else "blocked"
        for t, n in result.blocked:
            _say(out, f"{t.reference}  {t.plate_text or '-':<10}  {verb}: no confirmation by {n.deadline.isoformat()}")
        for t in result.no_notice:
            _say(out, f"{t.reference}  {t.plate_text or '-':<10}  left alone: no notice in the register (deadline unknown)")
        for ref, why in result.lost:
            _say(out, f"{ref}  changed meanwhile, not blocked: {why}")
        _say(out, f"{moment.isoformat()}: {len(result.blocked)} {verb}, {result.waiting} within their deadline, "
                  f"{len(result.no_notice)} without a notice, {len(result.lost)} changed meanwhile")

    @payments_app.command("import")
    def payments_import(
        file: Path = typer.Argument(..., help="CSV with the header payment_code,amount,paid_at."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Check the file; change nothing."),
        db: str = typer.Option(DEFAULT_DB, "--db", envvar="ETLE_DB", help="Ticket database (SQLAlchemy URL)."),
        actor: str = typer.Option("system:payments", "--actor", envvar="ETLE_ACTOR", help=_ACTOR_HELP),
    ) -> None:
        """Mark the tickets a payment file pays as paid (confirmed or blocked -> paid, in one transaction).

        One line per refused or skipped row, then a summary; exit 1 when rows were refused (the
        others are still imported; importing the file again skips them).
        """
        from etle.settlement import import_payments
        from etle.store import open_store

        with open_store(db) as store:
            result = import_payments(store, file, actor, dry_run=dry_run)
        out, err = _console(), _console(stderr=True)
        for p in result.refused:
            _say(err, f"{file.name}:{p.line}: {p.payment_code or '-'}  refused ({p.kind}): {p.reason}"
                      + (f" [{p.reference}]" if p.reference else ""))
        for p in result.skipped:
            _say(out, f"{file.name}:{p.line}: {p.payment_code}  skipped: {p.reason} [{p.reference}]")
        verb = "would be paid" if dry_run else "paid"
        _say(out, f"{file.name}: {result.rows} row(s): {len(result.paid)} {verb}, {len(result.skipped)} already imported, "
                  f"{len(result.refused)} refused (sha256 {result.sha256[:12]})")
        if result.refused:
            raise typer.Exit(1)
