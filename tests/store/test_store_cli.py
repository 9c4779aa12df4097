"""The store commands (``keys``, ``verify``, ``sync``, ``tickets export``, ``evidence prune``, ``db``)
on a Typer app built with :func:`etle.commands.store_cmds.register`, as ``etle.cli`` does: help for
every command, outputs, and typed errors (one line, no traceback) for bad input."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from etle.commands.store_cmds import register
from etle.errors import EtleError, StoreError
from etle.evidence import EvidenceWriter, record_violation
from etle.evidence.signing import load_signer
from etle.store import TicketStore


@pytest.fixture
def app() -> typer.Typer:
    main, tickets = typer.Typer(), typer.Typer()
    main.add_typer(tickets, name="tickets")
    register(main, tickets)
    return main


def invoke(app: typer.Typer, *args: str):
    return CliRunner().invoke(app, list(args))


COMMANDS = [["keys"], ["keys", "init"], ["keys", "show"], ["verify"], ["sync"], ["tickets", "export"], ["evidence", "offload"],
            ["evidence"], ["evidence", "prune"], ["db"], ["db", "upgrade"], ["db", "current"]]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c))
def test_every_command_has_help(app: typer.Typer, cmd: list[str]) -> None:
    res = invoke(app, *cmd, "--help")
    assert res.exit_code == 0 and "Usage" in res.output


def test_keys_sync_export_prune_flow(app: typer.Typer, tmp_path: Path, make_evidence_request, monkeypatch) -> None:
    monkeypatch.setenv("ETLE_KEYS_DIR", str(tmp_path / "keys"))
    db = f"sqlite:///{tmp_path / 'edge.db'}"
    res = invoke(app, "keys", "init", "--db", db)
    assert res.exit_code == 0 and "site key" in res.output
    res = invoke(app, "keys", "init")
    assert isinstance(res.exception, StoreError) and "--force" in str(res.exception)
    assert "trusted" in invoke(app, "keys", "show").output

    writer = EvidenceWriter(tmp_path / "ev", signer=load_signer(tmp_path / "keys"))
    with TicketStore(db) as store:
        store.add_user("officer1")
        ids = [record_violation(writer, store, make_evidence_request(i, clip=False)).ticket_id for i in (1, 2)]
        store.transition(ids[1], "reject", actor="officer1", reason="emergency vehicle")

    res = invoke(app, "tickets", "export", "--db", db, "--format", "json")
    assert res.exit_code == 0
    assert [t["track_id"] for t in json.loads(res.stdout)] == [1, 2]
    out = tmp_path / "tickets.csv"
    res = invoke(app, "tickets", "export", "--db", db, "--status", "rejected", "-o", str(out))
    assert res.exit_code == 0 and [r["status"] for r in csv.DictReader(io.StringIO(out.read_text()))] == ["rejected"]
    assert invoke(app, "tickets", "export", "--db", db, "--format", "xml").exit_code == 2

    central = f"sqlite:///{tmp_path / 'central.db'}"
    res = invoke(app, "sync", "--db", db, "--evidence", str(tmp_path / "ev"), "--central-db", central,
                 "--central-evidence", str(tmp_path / "central-ev"), "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["tickets_pushed"] == 2
    res = invoke(app, "verify", "--evidence", str(tmp_path / "central-ev"), "--db", central)
    assert res.exit_code == 0 and "verify OK" in res.output

    res = invoke(app, "evidence", "prune", "--db", db, "--evidence", str(tmp_path / "ev"), "--older-than-days", "0", "--dry-run")
    assert res.exit_code == 0 and "would remove 4 file(s)" in res.output
    res = invoke(app, "evidence", "prune", "--db", db, "--evidence", str(tmp_path / "ev"), "--older-than-days", "0")
    assert res.exit_code == 0 and "removed 4 file(s)" in res.output
    assert invoke(app, "verify", "--evidence", str(tmp_path / "ev"), "--db", db).exit_code == 0

    res = invoke(app, "db", "current", "--db", db)
    assert res.exit_code == 0 and "revision 0008 (newest 0008)" in res.output


def test_errors_are_typed_one_liners(app: typer.Typer, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("ETLE_CENTRAL_DB", raising=False)
    monkeypatch.delenv("ETLE_CENTRAL_EVIDENCE", raising=False)
    cases = [
        (["sync", "--db", f"sqlite:///{tmp_path / 'e.db'}"], "no central store"),
        (["verify", "--evidence", str(tmp_path / "none")], "does not exist"),
        (["verify", "--evidence", str(tmp_path), "--db", f"sqlite:///{tmp_path / 'none.db'}"], "no ticket database"),
        (["tickets", "export", "--db", "postgresql+psycopg://u:pw@127.0.0.1:1/x"], "cannot open ticket database"),
        (["keys", "show", "--dir", str(tmp_path / "nokeys")], "no site key"),
        (["evidence", "prune", "--db", "nosuch://x"], "invalid ticket database URL"),
    ]
    for args, needle in cases:
        res = invoke(app, *args)
        assert isinstance(res.exception, EtleError), (args, res.output, res.exception)
        assert needle in str(res.exception) and "\n" not in str(res.exception) and "pw" not in str(res.exception)
    res = invoke(app, "verify", "--since", "yesterday", "--no-db", "--evidence", str(tmp_path))
    assert res.exit_code == 2
    unreachable = invoke(app, "sync", "--db", f"sqlite:///{tmp_path / 'e.db'}", "--evidence", str(tmp_path),
                         "--central-db", "postgresql+psycopg://u@127.0.0.1:1/x", "--central-evidence", str(tmp_path / "c"))
    assert unreachable.exit_code == 1 and "UNREACHABLE" in unreachable.output
