"""``etle edge``: run every camera of a site live, unattended (see :mod:`etle.edge`).

:func:`register` adds the command to the main Typer app.  Bad site or camera files raise
:class:`etle.errors.ConfigError` before anything starts; SIGTERM/SIGINT stop the run gracefully
(pending evidence is finished; a second signal stops without waiting).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from etle.errors import EtleError

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _console() -> Console:
    c = Console()
    return c if c.is_terminal else Console(width=200)


def edge(
    site: Path = typer.Option(..., "--site", "-s", help="Site file: the cameras of this box and where events go."),
    max_seconds: Optional[float] = typer.Option(None, "--max-seconds", min=0.1, help="Stop gracefully after this many seconds (tests, soak runs)."),
    no_plates: bool = typer.Option(False, "--no-plates", help="Do not read plates (overrides the site file)."),
    health_port: Optional[int] = typer.Option(None, "--health-port", min=0, max=65535, help="Port of /health and /metrics (overrides the site file; 0: any free port)."),
    no_health: bool = typer.Option(False, "--no-health", help="Do not serve /health and /metrics."),
    check: bool = typer.Option(False, "--check", help="Validate the site and camera files, list the cameras, and exit."),
    status: bool = typer.Option(False, "--status", help="Show the running etle edge of this site (its /health: cameras, disk, sync, clock) and exit: 0 ok, 1 degraded."),
    json_out: bool = typer.Option(False, "--json", help="With --status: print its /health JSON."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write a JSON report of the run (per camera counters, tickets, events) here."),
    log_level: str = typer.Option("info", "--log-level", help="Log level of the supervisor and the camera workers: debug, info, warning, error."),
) -> None:
    """Run every camera of a site on its live stream: one process per camera, restarted when it
    dies; /health and Prometheus /metrics; violation events over MQTT and a webhook; tickets and
    evidence pushed to the central store, and synced media removed when the disk runs low."""
    from etle.edge.site import load_site
    from etle.edge.supervisor import Supervisor
    from etle.ingest.sources import _redact

    level = _LEVELS.get(log_level.lower())
    if level is None:
        raise typer.BadParameter(f"--log-level must be one of {', '.join(_LEVELS)}")
    cfg = load_site(site)
    if health_port is not None:
        cfg = cfg.model_copy(update={"health": cfg.health.model_copy(update={"port": health_port})})
    out = _console()
    if status:
        _status(cfg, out, json_out)
        return
    if check:
        table = Table(title=f"site {cfg.site}")
        for col in ("camera", "file", "source", "enabled"):
            table.add_column(col)
        for cid, entry in zip(cfg.camera_ids, cfg.cameras):
            table.add_row(cid, str(cfg.camera_path(entry)), _redact(entry.source), "yes" if entry.enabled else "no")
        out.print(table)
        sinks = [s for s, v in (("mqtt", cfg.mqtt), ("webhook", cfg.webhook)) if v is not None]
        out.print(f"output {cfg.output_dir}, database {_redact(cfg.db_url)}, events: {', '.join(sinks) or 'none'}")
        from etle.edge.upkeep import sync_target

        target = sync_target(cfg)
        st = cfg.storage
        out.print(f"central store: {_redact(target.db_url) + ' + ' + _redact(target.evidence) if target else 'none (tickets stay on this box)'}; "
                  f"disk: offload synced media below {st.offload_below_gb:g} GB free (to {st.offload_to_gb:g} GB), "
                  f"no clips below {st.clips_below_gb:g} GB, no evidence below {st.reserve_gb:g} GB")
        return
    root = logging.getLogger()
    root.setLevel(level)
    if not root.handlers:
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    sup = Supervisor(cfg, max_seconds=max_seconds, log_level=level,
                     pipeline_overrides={"read_plates": False} if no_plates else None)

    def on_signal(signum: int, _frame: Any) -> None:
        sup.request_stop()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        result = sup.run(health=False if no_health else None)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    table = Table(title=f"etle edge {cfg.site}: {result.elapsed_s:.0f} s")
    for col in ("camera", "frames", "dropped", "reconnects", "restarts", "tickets"):
        table.add_column(col, justify="right" if col != "camera" else "left")
    for cid, c in result.cameras.items():
        s = c.get("last_stats") or {}
        live = s.get("live") or {}
        table.add_row(cid, str(s.get("processed", 0)), str(live.get("frames_dropped", 0)), str(live.get("reconnects", 0)),
                      str(c["restarts"]), str(c["tickets"]))
    out.print(table)
    for name, st in result.publishers.items():
        out.print(f"{name}: {st.get('published', 0)} event(s) delivered, {st.get('pending', 0)} kept for retry")
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps({"site": cfg.site, "elapsed_s": result.elapsed_s, "tickets": result.tickets,
                                      "cameras": result.cameras, "events": result.events, "publishers": result.publishers},
                                     default=str, indent=1), encoding="utf-8")


def _status(cfg: Any, out: Console, json_out: bool) -> None:
    """``etle edge --status``: the running site's /health, for whoever is on the box."""
    import urllib.error
    import urllib.request

    host = "127.0.0.1" if cfg.health.host in ("0.0.0.0", "", "::") else cfg.health.host
    url = f"http://{host}:{cfg.health.port}/health"
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            body = json.load(r)
    except urllib.error.HTTPError as exc:  # 503 while degraded, with the same JSON
        body = json.load(exc)
    except (OSError, ValueError) as exc:
        raise EtleError(f"no etle edge answers at {url} ({getattr(exc, 'reason', exc)}): is it running "
                        "(systemctl status etle-edge)? --health-port if it serves another port") from None
    if json_out:
        out.print_json(json.dumps(body))
    else:
        table = Table(title=f"site {body.get('site')}: {body.get('status')}, up {body.get('uptime_s', 0):.0f} s")
        for col in ("camera", "ok", "state", "fps", "last frame s", "dropped", "reconnects", "restarts", "tickets",
                    "not recorded", "last error"):
            table.add_column(col, justify="left" if col in ("camera", "state", "last error", "ok") else "right")
        for cid, c in (body.get("cameras") or {}).items():
            age = c.get("last_frame_age_s")
            table.add_row(cid, "yes" if c.get("ok") else "NO", str(c.get("state")), f"{c.get('fps') or 0:.1f}",
                          "-" if age is None else f"{age:.1f}", str(c.get("frames_dropped") or 0),
                          str(c.get("reconnects") or 0), str(c.get("restarts") or 0), str(c.get("tickets") or 0),
                          str(c.get("not_recorded") or 0), str(c.get("last_error") or "")[:60])
        out.print(table)
        disk = body.get("storage") or {}
        if disk:
            out.print(f"disk: {disk.get('free_gb')} GB free ({disk.get('state')}) on {disk.get('path')}; "
                      f"{disk.get('offloaded_tickets', 0)} synced ticket(s) offloaded since start")
        sync = body.get("sync") or {}
        if sync.get("enabled"):
            age = sync.get("last_success_age_s")
            out.print(f"sync to {sync.get('target')}: {'reachable' if sync.get('reachable') else 'NOT reachable'}, "
                      f"{sync.get('pending')} ticket(s) pending, last complete round "
                      f"{'never' if age is None else f'{age:.0f} s ago'}"
                      + (f"; last error: {sync['last_error']}" if sync.get("last_error") else ""))
        elif sync:
            out.print("sync: no central store (tickets stay on this box)")
        clock = (body.get("clock") or {}).get("synchronized")
        if clock is not None:
            out.print("clock: synchronised" if clock else "clock: NOT synchronised (run chrony or systemd-timesyncd): live tickets are dated by it")
        for name, st in (body.get("events") or {}).items():
            out.print(f"{name}: {st.get('published', 0)} event(s) delivered, {st.get('pending', 0)} waiting")
    if body.get("status") != "ok":
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``etle edge`` to the main Typer app."""
    app.command("edge")(edge)
