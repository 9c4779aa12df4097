"""CLI commands of the review web app: ``serve`` and ``users add|list|token``.

Wire with ``from etle.commands.web_cmds import register; register(app)`` in :mod:`etle.cli`.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from typing import Optional

import typer

from etle.errors import EtleError, StoreError

from etle.config.run import DEFAULT_DB  # noqa: E402
from etle.config.settings import settings  # noqa: E402
ROLES = ("reviewer", "supervisor", "admin")


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    env = settings().user_password
    if env:
        return env
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


def register(app: typer.Typer) -> None:
    users_app = typer.Typer(help="Accounts of the review web app.", no_args_is_help=True)
    app.add_typer(users_app, name="users")

    @app.command("serve")
    def serve(
        host: str = typer.Option("127.0.0.1", help="Address to listen on."),
        port: int = typer.Option(8000, help="Port to listen on."),
        db: str = typer.Option(DEFAULT_DB, "--db", envvar="ETLE_DB", help="Ticket store URL."),
        evidence: Optional[Path] = typer.Option(None, "--evidence", envvar="ETLE_EVIDENCE_ROOT",
                                                help="Evidence root; bundles outside it are never served."),
        insecure_cookies: bool = typer.Option(False, "--insecure-cookies",
                                              help="Session cookies without the Secure flag (plain-HTTP development only)."),
        public_url: str = typer.Option("", envvar="ETLE_WEB_PUBLIC_URL", help="Base URL printed on letters (QR code)."),
        confirm_days: int = typer.Option(8, "--confirm-days", min=1, envvar="ETLE_CONFIRM_DAYS",
                                         help="Days from the notice date to the confirmation deadline printed on letters."),
    ) -> None:
        """Start the officer's review web app over the ticket store and evidence store."""
        import uvicorn

        from etle.web.app import WebConfig, create_app

        secret = settings().web_secret
        config = WebConfig(db_url=db, evidence_root=evidence,
                           secret=secret.encode() if secret else secrets.token_bytes(32),
                           secure_cookies=not insecure_cookies, public_url=public_url,
                           confirm_days=confirm_days)
        uvicorn.run(create_app(config), host=host, port=port, log_level="info")

    @users_app.command("add")
    def users_add(
        name: str = typer.Argument(..., help="Username."),
        role: str = typer.Option("reviewer", help="reviewer | supervisor | admin"),
        display_name: str = typer.Option("", help="Full name."),
        db: str = typer.Option(DEFAULT_DB, "--db", envvar="ETLE_DB", help="Ticket store URL."),
        password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
    ) -> None:
        """Add a user with a password (prompted; or ETLE_USER_PASSWORD / --password-stdin)."""
        from etle.store.repository import TicketStore
        from etle.web import auth

        if role not in ROLES:
            raise EtleError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        password = _read_password(password_stdin)
        if len(password) < 8:
            raise EtleError("a password needs at least 8 characters")
        with TicketStore(db) as store:
            store.add_user(name, display_name=display_name, role=role)
            auth.set_password(store.engine, name.strip(), password)
        typer.echo(f"user {name} added ({role})")

    @users_app.command("list")
    def users_list(db: str = typer.Option(DEFAULT_DB, "--db", envvar="ETLE_DB", help="Ticket store URL.")) -> None:
        """List users and roles."""
        from etle.store.repository import TicketStore

        with TicketStore(db) as store:
            for u in store.users():
                typer.echo(f"{u.username}\t{u.role}\t{'active' if u.active else 'inactive'}\t{u.created_at:%Y-%m-%d}")

    @users_app.command("token")
    def users_token(
        name: str = typer.Argument(..., help="Username the token acts as."),
        label: str = typer.Option("", help="What the token is for."),
        db: str = typer.Option(DEFAULT_DB, "--db", envvar="ETLE_DB", help="Ticket store URL."),
    ) -> None:
        """Create an API token (printed once) for the JSON API."""
        from etle.store.repository import TicketStore
        from etle.web import auth

        with TicketStore(db) as store:
            if name not in {u.username for u in store.users()}:
                raise StoreError(f"no user {name!r}")
            typer.echo(auth.new_api_token(store.engine, name, label))
