"""CLI commands of the letters for the post: ``letters batch`` and ``letters register``.

:func:`register` adds the ``letters`` group to the main Typer app.  Bad input (a date that is
not ``YYYY-MM-DD``, an output that exists, no public URL) is :class:`etle.errors.ConfigError`:
one line and exit 2 through :func:`etle.cli.main`; an unusable database is exit 5.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from etle.config.run import DEFAULT_DB  # noqa: E402


def _console(stderr: bool = False) -> Console:
    c = Console(stderr=stderr)
    return c if c.is_terminal else Console(stderr=stderr, width=200)


def _say(console: Console, text: str) -> None:
    console.print(text, markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    letters_app = typer.Typer(help="Confirmation letters for the post and the notice register.",
                              no_args_is_help=True)
    app.add_typer(letters_app, name="letters")

    @letters_app.command("batch")
    def letters_batch(
        day: str = typer.Option(..., "--date", help="Approval day (YYYY-MM-DD, in each camera's time zone)."),
        db: str = typer.Option(DEFAULT_DB, "--db", envvar="ETLE_DB", help="Ticket database (SQLAlchemy URL)."),
        evidence: Optional[Path] = typer.Option(None, "--evidence", "-e", envvar="ETLE_EVIDENCE_ROOT",
                                                help="Evidence root (the letters' photos; never read outside it)."),
        output: Optional[Path] = typer.Option(None, "--output", "-o",
                                              help="The PDF to write (default letters-YYYY-MM-DD.pdf; never overwritten)."),
        public_url: str = typer.Option("", "--public-url", envvar="ETLE_WEB_PUBLIC_URL",
                                       help="Base URL printed on letters and in their QR code (…/konfirmasi/<reference>)."),
        confirm_days: int = typer.Option(8, "--confirm-days", envvar="ETLE_CONFIRM_DAYS",
                                         help="Days from the notice date to the confirmation deadline."),
        lang: str = typer.Option("id", "--lang", help="Letter language: id (default) or en."),
        actor: str = typer.Option("system:letters", "--actor", help="Who the audit log names (a user or system:<name>)."),
        no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
    ) -> None:
        """One PDF of a day's letters for the post (tickets with a registered owner only).

        Registers each letter and marks its ticket notice_sent.  Tickets without an owner or
        with a registry mismatch are listed as skipped; tickets sent before as already sent.
        """
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        from etle.errors import ConfigError
        from etle.letters import make_batch, parse_day
        from etle.store import open_store

        when = parse_day(day)
        if lang not in ("id", "en"):
            raise ConfigError(f"--lang {lang!r}: id or en")
        out, err = _console(), _console(stderr=True)
        progress = Progress(TextColumn("letters"), BarColumn(), MofNCompleteColumn(), console=err, transient=True,
                            disable=no_progress or not err.is_terminal)
        with open_store(db) as store, progress:
            task = progress.add_task("letters", total=None)

            def step(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            result = make_batch(store, when, output, public_url=public_url, evidence_root=evidence,
                                confirm_days=confirm_days, actor=actor, lang=lang, on_ticket=step)
        for n in result.notices:
            _say(out, f"{n.reference}  letter   {n.addressee_name}  (deadline {n.deadline.isoformat()})")
        for s in result.already_sent:
            _say(out, f"{s.reference}  {s.plate or '-':<10}  {s.reason}")
        for s in result.skipped:
            _say(out, f"{s.reference}  {s.plate or '-':<10}  skipped: {s.reason}")
        where = f"{result.path} (sha256 {result.sha256})" if result.path else "no file (no letter due)"
        _say(out, f"{day}: {len(result.notices)} letter(s) in {where}, {len(result.skipped)} skipped, "
                  f"{len(result.already_sent)} already sent")

    @letters_app.command("register")
    def letters_register(
        day: Optional[str] = typer.Option(None, "--date", help="Only letters with this notice date (YYYY-MM-DD)."),
        db: str = typer.Option(DEFAULT_DB, "--db", envvar="ETLE_DB", help="Ticket database (SQLAlchemy URL)."),
        json_out: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """The notice register: every letter produced for posting, oldest first."""
        from etle.letters import parse_day, register_rows
        from etle.store import open_store

        when = parse_day(day) if day else None
        with open_store(db) as store:
            rows = store.notices(notice_date=when)
        out = _console()
        if json_out:
            out.print_json(json.dumps(register_rows(rows)))
            return
        for n in rows:
            address = " ".join(n.addressee_address.split())
            _say(out, f"{n.notice_date.isoformat()}  {n.reference}  deadline {n.deadline.isoformat()}  "
                      f"{n.batch_file} {n.batch_sha256[:12]}  {n.addressee_name}, {address}  "
                      f"[{n.actor} {n.created_at.strftime('%Y-%m-%d %H:%M:%S')} UTC]")
        _say(out, f"{len(rows)} letter(s) in the register")
