"""CLI commands of the vehicle registry: ``registry lookup`` and ``tickets lookup-owners``.

:func:`register` adds them to the main Typer app (and ``lookup-owners`` to its ``tickets``
group).  A bad registry spec or file is a :class:`etle.errors.ConfigError` (exit 2); a registry
that does not answer is :class:`etle.errors.RegistryError` (exit 6) for a single lookup, and
exit 6 after the batch for ``lookup-owners`` (the tickets it could not look up stay waiting,
so running it again later picks them up).
"""

from __future__ import annotations

import json
from typing import Optional

import typer
from rich.console import Console

from etle.errors import RegistryError

from etle.config.run import DEFAULT_DB  # noqa: E402
_REGISTRY_HELP = ("Vehicle registry: a .csv file, sqlite:///file.db, an http(s):// base URL, or 'trial' "
                  "(the shipped fictitious one); default $ETLE_REGISTRY.")


def _console(stderr: bool = False) -> Console:
    c = Console(stderr=stderr)
    return c if c.is_terminal else Console(stderr=stderr, width=200)


def _open(spec: Optional[str], timeout: float, retries: int):  # type: ignore[no-untyped-def]
    from etle.registry import open_registry

    return open_registry(spec or "", timeout_s=timeout, retries=retries)


def register(app: typer.Typer, tickets_app: typer.Typer) -> None:
    registry_app = typer.Typer(help="Look up registered owners in the vehicle registry.", no_args_is_help=True)
    app.add_typer(registry_app, name="registry")

    @registry_app.command("lookup")
    def registry_lookup(
        plate: str = typer.Argument(..., help="The plate (spaces and case do not matter)."),
        registry: Optional[str] = typer.Option(None, "--registry", "-r", envvar="ETLE_REGISTRY", help=_REGISTRY_HELP),
        timeout: float = typer.Option(5.0, "--timeout", min=0.1, help="Seconds to wait for an HTTP registry."),
        retries: int = typer.Option(2, "--retries", min=0, help="Retries of an HTTP registry that does not answer."),
        json_out: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Look up one plate; exit 1 when it is not registered, 6 when the registry does not answer."""
        reg = _open(registry, timeout, retries)
        result = reg.lookup(plate)
        out = _console()
        if json_out:
            out.print_json(json.dumps({
                "plate": result.plate, "status": result.status, "source": result.source, "reason": result.reason,
                "checked_at": result.checked_at.isoformat(),
                "record": result.record.as_dict() if result.record is not None else None,
            }))
        if result.unavailable:
            raise RegistryError(f"registry {result.source} did not answer for {result.plate}: {result.reason}")
        if result.record is None:
            if not json_out:
                out.print(f"{result.plate}: not in the registry ({result.source})", markup=False, highlight=False)
            raise typer.Exit(1)
        if not json_out:
            r = result.record
            out.print(f"{r.plate}: {r.owner_name or '-'}, {r.owner_address or '-'}", markup=False, highlight=False)
            out.print(f"  vehicle: {r.vehicle_type or '-'} {r.make or ''} ({r.vehicle_colour or '-'}), "
                      f"plate colour {r.plate_colour or '-'}, valid until {r.valid_until or '-'}, "
                      f"status {r.status or '-'}  [{result.source}]", markup=False, highlight=False)

    @tickets_app.command("lookup-owners")
    def lookup_owners(
        db: str = typer.Option(DEFAULT_DB, "--db", envvar="ETLE_DB", help="Ticket database (SQLAlchemy URL)."),
        registry: Optional[str] = typer.Option(None, "--registry", "-r", envvar="ETLE_REGISTRY", help=_REGISTRY_HELP),
        status: str = typer.Option("approved", "--status", help="Look up tickets in this status."),
        again: bool = typer.Option(False, "--again", help="Also tickets whose owner was already looked up."),
        limit: int = typer.Option(1000, "--limit", min=1, help="At most this many tickets."),
        actor: str = typer.Option("system:registry", "--actor", help="Who the audit log names (a user or system:<name>)."),
        timeout: float = typer.Option(5.0, "--timeout", min=0.1, help="Seconds to wait for an HTTP registry."),
        retries: int = typer.Option(2, "--retries", min=0, help="Retries of an HTTP registry that does not answer."),
        no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
    ) -> None:
        """Look up the registered owner of each approved ticket that has none yet (one line each).

        A registered vehicle that disagrees with the camera's is flagged for review; no status
        changes.  Exit 6 when the registry did not answer for some tickets (run again later).
        """
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        from etle.registry import lookup_ticket
        from etle.store import STATUSES, open_store

        if status not in STATUSES:
            raise typer.BadParameter(f"--status '{status}' is not one of {', '.join(STATUSES)}")
        reg = _open(registry, timeout, retries)
        out, err = _console(), _console(stderr=True)
        counts = {"found": 0, "not_found": 0, "unavailable": 0, "mismatch": 0}
        with open_store(db) as store:
            tickets = store.awaiting_owner(status=status, again=again, limit=limit)
            progress = Progress(TextColumn("looking up owners"), BarColumn(), MofNCompleteColumn(),
                                console=err, transient=True, disable=no_progress or not err.is_terminal)
            with progress:
                task = progress.add_task("lookup", total=len(tickets))
                for t in tickets:
                    result, mismatch = lookup_ticket(store, reg, t, actor=actor)
                    counts[result.status] += 1
                    if result.record is not None:
                        r = result.record
                        line = f"{r.owner_name or '-'} ({r.make or '-'}, {r.vehicle_colour or '-'})"
                        if mismatch:
                            counts["mismatch"] += 1
                            line += f"  MISMATCH, to review: {mismatch}"
                    elif result.unavailable:
                        line = f"registry unavailable: {result.reason}"
                    else:
                        line = "not in the registry, to review"
                    out.print(f"{t.reference}  {t.plate_text:<10}  {result.status:<11}  {line}",
                              markup=False, highlight=False)
                    progress.advance(task)
        out.print(f"{len(tickets)} ticket(s): {counts['found']} found ({counts['mismatch']} mismatched), "
                  f"{counts['not_found']} not found, {counts['unavailable']} unavailable ({reg.source})",
                  markup=False, highlight=False)
        if counts["unavailable"]:
            raise typer.Exit(RegistryError.exit_code)
