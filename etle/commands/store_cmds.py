"""CLI commands of the evidence and ticket store: ``keys``, ``verify``, ``sync``, ``tickets export``,
``evidence prune`` and ``db``.

:func:`register` adds them to the main Typer app (and ``export`` to its ``tickets`` group).
Like the rest of the CLI, commands raise :class:`etle.errors.EtleError` for bad input or an
unusable store, which ``etle.cli.main`` turns into one line and an exit code; ``verify`` and
``sync`` print a report and exit 1 when something is wrong.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from etle.errors import EtleError

from etle.config.run import DEFAULT_DB  # noqa: E402
DEFAULT_EVIDENCE = "etle-out"


def _console(stderr: bool = False) -> Console:
    c = Console(stderr=stderr)
    return c if c.is_terminal else Console(stderr=stderr, width=200)


def _parse_when(value: Optional[str], option: str) -> Optional[datetime]:
    """``YYYY-MM-DD`` or ISO 8601; a naive value is UTC."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{option} '{value}' is not a date (YYYY-MM-DD) or ISO 8601 time") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _keys_dir(value: Optional[Path]) -> Path:
    from etle.evidence.signing import default_keys_dir

    return value if value is not None else default_keys_dir()


# ---------------------------------------------------------------- keys

keys_app = typer.Typer(help="The site's Ed25519 key that signs evidence manifests.", no_args_is_help=True)


@keys_app.command("init")
def keys_init(
    keys_dir: Optional[Path] = typer.Option(None, "--dir", help="Key folder (default: $ETLE_KEYS_DIR or ./etle-keys)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing key (the old public key stays trusted)."),
    db: Optional[str] = typer.Option(None, "--db", help="Also register the public key in this ticket database."),
) -> None:
    """Create the site signing key (private key readable by its owner only)."""
    from etle.evidence.signing import init_keys

    info = init_keys(_keys_dir(keys_dir), force=force)
    if db:
        from etle.store import open_store

        with open_store(db) as store:
            store.register_site_key(info.key_id, info.public_key_b64)
    out = _console()
    out.print(f"site key {info.key_id} created: {info.private_path} (keep private), {info.public_path}")


@keys_app.command("show")
def keys_show(
    keys_dir: Optional[Path] = typer.Option(None, "--dir", help="Key folder (default: $ETLE_KEYS_DIR or ./etle-keys)."),
) -> None:
    """Print the site key's id and public key, and the trusted keys."""
    from etle.evidence.signing import load_signer, public_b64, trusted_keys

    folder = _keys_dir(keys_dir)
    signer = load_signer(folder)
    out = _console()
    out.print(f"site key {signer.key_id}: {signer.public_key_b64}")
    for kid, key in sorted(trusted_keys(folder).items()):
        out.print(f"trusted {kid}: {public_b64(key)}")


# ---------------------------------------------------------------- verify


def verify(
    camera: Optional[str] = typer.Option(None, "--camera", help="Only this camera id."),
    since: Optional[str] = typer.Option(None, "--since", help="Only evidence and tickets from this date/time (UTC unless an offset is given)."),
    evidence: str = typer.Option(DEFAULT_EVIDENCE, "--evidence", "-e", help="Evidence location: a folder or s3://bucket/prefix."),
    db: str = typer.Option(DEFAULT_DB, "--db", help="Ticket database (SQLAlchemy URL)."),
    no_db: bool = typer.Option(False, "--no-db", help="Check the evidence alone (no ticket cross-checks)."),
    keys_dir: Optional[Path] = typer.Option(None, "--keys", help="Folder of trusted public keys (default: the site key folder)."),
    allow_unsigned: bool = typer.Option(False, "--allow-unsigned", help="Do not report unsigned manifests."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Recompute every hash, check the chains, signatures and tickets; exit 1 when anything is wrong."""
    from etle.evidence.signing import trusted_keys
    from etle.evidence.storage import open_evidence_storage
    from etle.evidence.verify import verify_evidence

    since_at = _parse_when(since, "--since")
    storage = open_evidence_storage(evidence)
    if not str(evidence).startswith("s3://") and not Path(evidence.removeprefix("file://")).is_dir():
        raise EtleError(f"evidence folder {evidence} does not exist")
    store = None
    if not no_db:
        from etle.store import TicketStore

        store = TicketStore(db, create=False)
    try:
        keys = trusted_keys(_keys_dir(keys_dir), store.site_keys() if store is not None else None)
        report = verify_evidence(storage, store=store, keys=keys, camera=camera, since=since_at,
                                 require_signatures=not allow_unsigned)
    finally:
        if store is not None:
            store.close()
    out = _console()
    if json_out:
        body = {k: v for k, v in asdict(report).items() if k != "findings"}
        body["ok"] = report.ok
        body["findings"] = [asdict(f) for f in report.findings]
        out.print_json(json.dumps(body))
    else:
        if report.findings:
            table = Table(title=f"findings ({len(report.errors)} errors, {len(report.warnings)} warnings)")
            for col in ("severity", "kind", "item", "detail"):
                table.add_column(col)
            for f in report.findings:
                table.add_row(f.severity, f.kind, f.item, f.detail)
            out.print(table)
        verdict = "OK" if report.ok else "FAILED"
        out.print(
            f"verify {verdict}: {report.cameras} camera(s), {report.bundles} bundle(s), {report.files} file(s) hashed, "
            f"{report.tickets} ticket(s), {report.pruned_files} pruned file(s), {report.offloaded_files} offloaded file(s); "
            f"{len(report.errors)} error(s), {len(report.warnings)} warning(s)"
        )
    if not report.ok:
        raise typer.Exit(1)


# ---------------------------------------------------------------- sync


def sync(
    db: str = typer.Option(DEFAULT_DB, "--db", help="Local ticket database (SQLAlchemy URL)."),
    evidence: str = typer.Option(DEFAULT_EVIDENCE, "--evidence", "-e", help="Local evidence folder."),
    central_db: Optional[str] = typer.Option(None, "--central-db", help="Central ticket database URL (default: $ETLE_CENTRAL_DB)."),
    central_evidence: Optional[str] = typer.Option(None, "--central-evidence", help="Central evidence location, folder or s3:// (default: $ETLE_CENTRAL_EVIDENCE)."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Push local tickets and evidence to the central store once (idempotent); exit 1 when not all went."""
    from etle.store import open_store
    from etle.sync import StoreAndForward, SyncTarget

    env_target = SyncTarget.from_env()
    target_db = central_db or (env_target.db_url if env_target else None)
    target_ev = central_evidence or (env_target.evidence if env_target else None)
    if not target_db or not target_ev:
        raise EtleError("no central store: pass --central-db and --central-evidence (or set ETLE_CENTRAL_DB and ETLE_CENTRAL_EVIDENCE)")
    with open_store(db) as local:
        forward = StoreAndForward(local, Path(evidence), SyncTarget(target_db, target_ev))
        try:
            report = forward.run_once()
        finally:
            forward.close()
    out = _console()
    if json_out:
        out.print_json(json.dumps({**asdict(report), "ok": report.ok}))
    else:
        state = "reachable" if report.reachable else "UNREACHABLE"
        out.print(
            f"sync to {forward.target_name} ({state}): {report.tickets_pushed} ticket(s) pushed, "
            f"{report.tickets_present} already there, {report.files_uploaded} file(s) uploaded, "
            f"{report.actions_pushed} audit entr(ies) pushed, {report.heads} chain head(s); {report.pending} pending"
        )
        for line in report.failed:
            out.print(f"failed: {line}")
        if report.error:
            out.print(f"error: {report.error}")
    if not report.ok:
        raise typer.Exit(1)


# ---------------------------------------------------------------- tickets export


def tickets_export(
    fmt: str = typer.Option("csv", "--format", "-f", help="csv or json."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="File to write (default: standard output)."),
    db: str = typer.Option(DEFAULT_DB, "--db", help="Ticket database (SQLAlchemy URL)."),
    status: Optional[str] = typer.Option(None, "--status", help="Only this status."),
    camera: Optional[str] = typer.Option(None, "--camera", help="Only this camera id."),
    since: Optional[str] = typer.Option(None, "--since", help="From this date/time."),
    until: Optional[str] = typer.Option(None, "--until", help="Until this date/time (exclusive)."),
) -> None:
    """Export tickets (with plate reads and audit log in JSON) for reporting or hand-over."""
    from etle.store import TicketStore
    from etle.store.export import FORMATS, write_export

    if fmt not in FORMATS:
        raise typer.BadParameter(f"--format must be one of {', '.join(FORMATS)}, not '{fmt}'")
    t_since, t_until = _parse_when(since, "--since"), _parse_when(until, "--until")
    with TicketStore(db, create=False) as store:
        records = store.records(status=status, camera=camera, since=t_since, until=t_until)
        if output is None:
            n = write_export(records, sys.stdout, fmt)  # type: ignore[arg-type]
        else:
            tmp = output.with_name(f".{output.name}.tmp")
            try:
                with open(tmp, "w", encoding="utf-8", newline="") as fh:
                    n = write_export(records, fh, fmt)  # type: ignore[arg-type]
                tmp.replace(output)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise EtleError(f"cannot write {output}: {exc.strerror or exc}") from exc
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            _console(stderr=True).print(f"{n} ticket(s) written to {output}")


# ---------------------------------------------------------------- evidence prune

evidence_app = typer.Typer(help="Evidence retention and disk space.", no_args_is_help=True)


@evidence_app.command("prune")
def evidence_prune(
    db: str = typer.Option(DEFAULT_DB, "--db", help="Ticket database (SQLAlchemy URL)."),
    evidence: str = typer.Option(DEFAULT_EVIDENCE, "--evidence", "-e", help="Evidence location: a folder or s3://bucket/prefix."),
    older_than_days: int = typer.Option(90, "--older-than-days", min=0, help="Prune tickets rejected at least this many days ago."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only report what would be removed."),
) -> None:
    """Remove the media of rejected tickets after the retention period (manifests, signatures and the audit log stay)."""
    from etle.evidence.retention import prune_rejected
    from etle.evidence.storage import open_evidence_storage
    from etle.store import TicketStore

    with TicketStore(db, create=False) as store:
        report = prune_rejected(store, open_evidence_storage(evidence), older_than=timedelta(days=older_than_days),
                                dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    _console().print(f"{verb} {report.files} file(s), {report.bytes} bytes, of {report.tickets} rejected ticket(s)")


@evidence_app.command("offload")
def evidence_offload(
    db: str = typer.Option(DEFAULT_DB, "--db", help="Local ticket database (SQLAlchemy URL)."),
    evidence: Path = typer.Option(Path(DEFAULT_EVIDENCE), "--evidence", "-e", help="Local evidence folder."),
    free_gb: Optional[float] = typer.Option(None, "--free-gb", min=0, help="Remove until this many GB are free on the evidence folder's disk."),
    all_synced: bool = typer.Option(False, "--all", help="Remove the media of every synced ticket."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only report what would be removed."),
) -> None:
    """Free disk space on an edge box: remove the pictures and clips of tickets already synced to the
    central store, oldest first (manifests, signatures, tickets and audit log stay; never a ticket
    that is not synced). 'etle edge' does this by itself below its site file's storage.offload_below_gb."""
    from etle.evidence.offload import GB, disk_free, offload_synced
    from etle.evidence.storage import LocalEvidenceStorage
    from etle.store import TicketStore
    from etle.sync import SyncTarget

    if (free_gb is None) == (not all_synced):
        raise EtleError("say how much to remove: --free-gb N (until N GB are free) or --all (every synced ticket)")
    if not evidence.is_dir():
        raise EtleError(f"{evidence}: no evidence folder here")
    target = SyncTarget.from_env()
    with TicketStore(db, create=False) as store:
        report = offload_synced(
            store, LocalEvidenceStorage(evidence), free_target=None if all_synced else int(free_gb * GB),  # type: ignore[operator]
            free_bytes=lambda: disk_free(evidence), central=target.evidence if target else "",
            reason="etle evidence offload", dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    free = f"; {report.free_bytes / GB:.2f} GB free" + (" (estimated)" if dry_run else "") if report.free_bytes is not None else ""
    short = "" if report.reached else f"; short of {free_gb} GB: no other synced ticket has media here"
    _console().print(f"{verb} {report.files} file(s), {report.bytes} bytes, of {report.tickets} synced ticket(s){free}{short}")


# ---------------------------------------------------------------- db

db_app = typer.Typer(help="The ticket database schema.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(db: str = typer.Option(DEFAULT_DB, "--db", help="Ticket database (SQLAlchemy URL).")) -> None:
    """Create or migrate the ticket database to the newest schema."""
    from etle.store import open_store
    from etle.store.migrate import head_revision

    with open_store(db) as store:
        _console().print(f"{store.url}: schema at revision {head_revision()}")


@db_app.command("current")
def db_current(db: str = typer.Option(DEFAULT_DB, "--db", help="Ticket database (SQLAlchemy URL).")) -> None:
    """Show the schema revision of the ticket database (and the newest one)."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import SQLAlchemyError

    from etle.errors import StoreError
    from etle.store.migrate import current_revision, head_revision

    try:
        engine = create_engine(db)
        with engine.connect() as conn:
            found = current_revision(conn)
        engine.dispose()
    except (SQLAlchemyError, ImportError) as exc:
        first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
        raise StoreError(f"cannot read ticket database: {first}") from exc
    _console().print(f"revision {found or 'none'} (newest {head_revision()})")


# ---------------------------------------------------------------- registration


def register(app: typer.Typer, tickets_app: typer.Typer) -> None:
    """Add these commands to the ``etle`` app: ``keys``, ``verify``, ``sync``, ``evidence``,
    ``db``, and ``tickets export`` (on ``tickets_app``, the existing ``tickets`` group)."""
    app.add_typer(keys_app, name="keys")
    app.add_typer(evidence_app, name="evidence")
    app.add_typer(db_app, name="db")
    app.command("verify")(verify)
    app.command("sync")(sync)
    tickets_app.command("export")(tickets_export)
