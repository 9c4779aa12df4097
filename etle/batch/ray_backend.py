"""``etle batch`` on Ray: the only module of etle that imports ``ray`` (lazily, on first use).

The driver connects to a cluster (or starts a local Ray instance on this machine's cores),
starts one :class:`SegmentWorker` actor per CPU it may use (each loads the models once:
:class:`etle.batch.worker.SegmentProcessor`), and hands every actor one segment at a time until
none is left.  Workers report frames as they go to a small progress actor, which the driver
polls to draw one progress bar across the cluster.

Failures: an actor whose process dies (killed, out of memory) is restarted by Ray and its
segment retried (``max_restarts`` / ``max_task_retries``); a segment that fails with an error of
etle (a damaged clip, a camera file that does not load) fails its clip -- reported, the other
clips go on.  Tickets already stored by an interrupted attempt are found again by their
deterministic identity, so a retry or a new run adds none twice.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from etle.batch.jobs import ClipFailure
from etle.batch.worker import BatchOptions, SegmentResult, SegmentTask
from etle.errors import ConfigError, EtleError, MissingDependencyError

log = logging.getLogger(__name__)

#: how often a segment is tried again after its worker died (beyond Ray's own task retries)
SEGMENT_ATTEMPTS = 3


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise MissingDependencyError("ray", "cluster", "etle batch") from exc
    return ray


def connect(cluster: str | None, *, temp_dir: str | None = None) -> tuple[float, int]:
    """Connect to ``cluster`` (``auto``, ``ray://host:port``, ``host:port``), or start a local
    Ray instance on this machine's cores for ``None`` / ``local``; returns the cluster's CPUs
    and live nodes."""
    ray = _ray()
    if cluster not in (None, "", "local", "auto"):
        _probe(cluster)
    os.environ.setdefault("RAY_DISABLE_DOCKER_CPU_WARNING", "1")
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    kwargs: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False, "ignore_reinit_error": True}
    try:
        if cluster in (None, "", "local"):
            kwargs.update(num_cpus=os.cpu_count() or 1, include_dashboard=False)
            if temp_dir:
                kwargs["_temp_dir"] = temp_dir
            ray.init(**kwargs)
        else:
            _join(ray, cluster, kwargs)
    except ConnectionError as exc:
        raise ConfigError(f"cannot reach the Ray cluster {cluster!r}: {_reason(exc)}") from None
    except (ValueError, RuntimeError) as exc:
        text = str(exc).strip().splitlines()
        raise ConfigError(f"cannot start or join Ray ({cluster or 'local'}): {text[0] if text else type(exc).__name__}") from None
    cpus = float(ray.cluster_resources().get("CPU", 0.0))
    try:
        nodes = len([n for n in ray.nodes() if n.get("Alive")])
    except Exception:  # noqa: BLE001 - Ray Client may not answer it
        nodes = 0
    return cpus, nodes


#: how often a Ray Client connection is tried when the head answers but cannot start this
#: driver's server in time (a busy head node); each try starts a fresh one
CLIENT_ATTEMPTS = 3


def _join(ray: Any, cluster: str, kwargs: dict[str, Any], *, attempts: int = CLIENT_ATTEMPTS,
          wait_s: float = 5.0, sleep: Callable[[float], None] = time.sleep) -> None:
    """``ray.init(address=cluster)``; a ``ray://`` address is tried again after a
    ``ConnectionAbortedError`` (the head's client proxy refused the session: typically its
    per-driver server did not come up within ``RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S`` on a
    loaded head).  Other errors, and the last attempt's, go to the caller."""
    for attempt in range(1, attempts + 1):
        try:
            ray.init(address=cluster, **kwargs)
            return
        except ConnectionAbortedError as exc:
            if not cluster.startswith("ray://") or attempt == attempts:
                raise
            log.warning("Ray Client session refused by %s (%s); trying again in %.0f s (%d/%d)",
                        cluster, _reason(exc), wait_s * attempt, attempt, attempts)
            try:
                ray.shutdown()
            except Exception:  # noqa: BLE001 - a half-open client session; the next init replaces it
                pass
            sleep(wait_s * attempt)


def _reason(exc: BaseException) -> str:
    """One line for a Ray connection error: its first line, plus the server's own last line when
    Ray Client puts the server's traceback after a heading (``Initialization failure from server:``)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{lines[0]} {lines[-1]}"
    return lines[0]


def _probe(cluster: str, timeout_s: float = 5.0) -> None:
    """Fail at once, in one line, when ``host:port`` does not answer (Ray itself retries for minutes)."""
    import socket

    address = cluster.removeprefix("ray://")
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"--cluster {cluster!r}: expected auto, local, ray://HOST:PORT or HOST:PORT")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise ConfigError(f"cannot reach the Ray cluster {cluster!r}: {exc.strerror or exc}") from None


def shutdown() -> None:
    ray = _ray()
    if ray.is_initialized():
        ray.shutdown()


def _actor_classes() -> tuple[Any, Any]:
    ray = _ray()

    @ray.remote(num_cpus=0)
    class ProgressBoard:
        """Frames done per clip, as the workers report them."""

        def __init__(self) -> None:
            self.frames: dict[str, int] = defaultdict(int)

        def add(self, clip: str, frames: int) -> None:
            self.frames[clip] += frames

        def snapshot(self) -> dict[str, int]:
            return dict(self.frames)

    class SegmentWorker:
        """One worker: models loaded once, segments one after the other."""

        def __init__(self, db_url: str, evidence: str, options: BatchOptions) -> None:
            from etle.batch.worker import SegmentProcessor

            logging.basicConfig(level=logging.WARNING)
            self.processor = SegmentProcessor(db_url, evidence, options)

        def process(self, task: SegmentTask, board: Any) -> SegmentResult:
            def report(frames: int) -> None:
                board.add.remote(task.clip_sha256, frames)

            return self.processor.process(task, report)

        def pid(self) -> int:
            return os.getpid()

    return ProgressBoard, SegmentWorker


def run_on_ray(
    todo: Sequence[SegmentTask],
    *,
    db_url: str,
    evidence: str,
    options: BatchOptions,
    workers: int,
    on_progress: Callable[[dict[str, int], dict[str, int]], None] | None = None,
    on_result: Callable[[SegmentResult], None] | None = None,
    keys_dir: str | None = None,
) -> tuple[list[SegmentResult], list[ClipFailure]]:
    """Run ``todo`` on ``workers`` actors of the connected cluster.

    ``on_progress(frames per clip hash, segments done per clip hash)`` is called about three
    times a second; ``on_result`` after each finished segment.  Returns the results and the
    clips that failed (the remaining segments of a failed clip are not run).
    """
    ray = _ray()
    from ray.exceptions import RayActorError, RayTaskError

    ProgressBoard, SegmentWorker = _actor_classes()
    env = {"ETLE_THREADS": str(max(1, options.threads)), "OMP_NUM_THREADS": str(max(1, options.threads))}
    for name in ("ETLE_MODEL_DIR", "ETLE_MODEL_MANIFEST", "ETLE_KEYS_DIR", "ETLE_ARTICLES", "ETLE_ORT_SPIN"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    if keys_dir:
        env["ETLE_KEYS_DIR"] = keys_dir  # the site key as the workers see it (see run_batch)
    n = max(1, min(workers, len(todo)))
    gpus = float(ray.cluster_resources().get("GPU", 0.0)) if options.device != "cpu" else 0.0
    env["ETLE_DEVICE"] = options.device
    # workers share the cluster's GPUs (a fraction each); without GPUs they run on the CPU
    per_gpu = round(min(1.0, gpus / n), 4) if gpus else 0.0
    remote_worker = ray.remote(num_cpus=1, num_gpus=per_gpu, max_restarts=-1, max_task_retries=2)(SegmentWorker).options(
        runtime_env={"env_vars": env}
    )
    board = ProgressBoard.remote()
    actors = [remote_worker.remote(db_url, evidence, options) for _ in range(n)]
    queue = list(todo)
    idle = list(actors)
    running: dict[Any, tuple[SegmentTask, Any, int]] = {}
    attempts: dict[tuple[str, str], int] = defaultdict(int)
    failed: dict[str, ClipFailure] = {}
    results: list[SegmentResult] = []
    done_by_clip: dict[str, int] = defaultdict(int)
    last_poll = 0.0
    try:
        while queue or running:
            while queue and idle:
                task = queue.pop(0)
                if task.clip_sha256 in failed:
                    continue
                actor = idle.pop(0)
                ref = actor.process.remote(task, board)
                running[ref] = (task, actor, attempts[(task.clip_sha256, task.segment.key)])
            if not running:
                continue
            ready, _ = ray.wait(list(running), num_returns=1, timeout=0.3)
            for ref in ready:
                task, actor, _n = running.pop(ref)
                key = (task.clip_sha256, task.segment.key)
                try:
                    result = ray.get(ref)
                except RayTaskError as exc:
                    cause = getattr(exc, "cause", None)
                    if isinstance(cause, EtleError):
                        message = str(cause)
                    else:
                        message = f"{type(cause).__name__ if cause else 'error'}: {cause or exc}"
                    message = " ".join(message.split())
                    log.info("%s failed: %s", task.label, message)  # reported in the table and the exit line
                    failed.setdefault(task.clip_sha256, ClipFailure(task.clip, message))
                    idle.append(actor)
                    continue
                except RayActorError as exc:
                    attempts[key] += 1
                    log.warning("%s: worker died (%s); %s", task.label, str(exc).splitlines()[0] if str(exc) else "",
                                "retrying" if attempts[key] < SEGMENT_ATTEMPTS else "giving up")
                    if attempts[key] < SEGMENT_ATTEMPTS:
                        queue.insert(0, task)
                    else:
                        failed.setdefault(task.clip_sha256, ClipFailure(task.clip, "its worker died on every attempt"))
                    # Ray restarts the actor (max_restarts); start a fresh one if it is gone for good
                    try:
                        ray.get(actor.pid.remote(), timeout=120)
                        idle.append(actor)
                    except Exception:  # noqa: BLE001 - any failure: replace the actor
                        idle.append(remote_worker.remote(db_url, evidence, options))
                    continue
                results.append(result)
                done_by_clip[task.clip_sha256] += 1
                idle.append(actor)
                if on_result is not None:
                    on_result(result)
            now = time.monotonic()
            if on_progress is not None and (now - last_poll >= 0.3 or not (queue or running)):
                last_poll = now
                try:
                    frames = ray.get(board.snapshot.remote(), timeout=10)
                except Exception:  # noqa: BLE001 - progress is cosmetic
                    frames = {}
                on_progress(frames, dict(done_by_clip))
    finally:
        for actor in actors:
            try:
                ray.kill(actor)
            except Exception:  # noqa: BLE001
                pass
    return results, list(failed.values())
