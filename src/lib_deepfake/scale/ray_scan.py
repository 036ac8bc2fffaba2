"""A scan spread over a Ray cluster: the same rows, files and report as ``lib-infer``, from many GPUs or machines.

Pipeline (Ray Data)::

    ray.data.from_items([{"path": p} ...])                 # one row per video (never Ray's frame-by-frame reader)
      .map_batches(RayScanWorker, compute=ActorPoolStrategy(size=N), num_gpus=G, num_cpus=C, batch_size=k)
      .iter_rows()                                          # streamed back to the driver as videos finish

Each actor (``ray_worker``) loads its decoder, face detector and classifier engine once and runs
:class:`~lib_deepfake.pipeline.scanner.VideoScanner` - the code of a local scan - on ``k`` videos per call. This
driver keeps only that loop: the :class:`~lib_deepfake.pipeline.session.ScanSession` of a local scan discovers the
inputs, writes every outcome, run.json and report.html, and handles ``--resume`` (across local and Ray runs) and
Ctrl-C. Attaching to Ray is ``ray_connection``.

A worker that dies mid-video (segfault, OOM kill, lost node): Ray restarts the actor and retries the call (Ray Data's
defaults for actor pools, ``max_restarts=-1, max_task_retries=-1``); a
:class:`~lib_deepfake.scale.planning.CrashLedger` actor bounds the retries per video - the video is scanned alone,
and after ``video_retries`` more deaths it becomes an error row (``error_kind`` "WorkerCrashError"). The scan
always finishes; a video that somehow has no row at the end also gets an error row.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from lib_deepfake.pipeline.config import ScanConfig
from lib_deepfake.pipeline.inputs import Discovery, discover
from lib_deepfake.pipeline.outcomes import VideoOutcome, error_outcome
from lib_deepfake.pipeline.session import ProgressCallback, ScanResult, ScanSession
from lib_deepfake.scale.planning import (
    DEFAULT_VIDEO_RETRIES,
    CrashLedger,
    PoolPlan,
    RayScanError,
    blocks_for,
    plan_pool,
)
from lib_deepfake.scale.ray_connection import connect, is_ray_client
from lib_deepfake.scale.ray_worker import WORKER_LOST, RayScanWorker

logger = logging.getLogger(__name__)


def _ship_artifacts(config: ScanConfig) -> dict[str, Any]:
    """Put the model (and detector weights) with their sidecar files (``NAME.json`` manifest, ``NAME.data``
    external weights: every sibling whose name starts with the artifact's name) in the object store."""
    import ray

    out: dict[str, Any] = {}
    for field_name in ("model", "detector_model"):
        path = getattr(config, field_name)
        if path is None or not Path(path).is_file():
            continue
        path = Path(path)
        files = {p.name: p.read_bytes() for p in sorted(path.parent.iterdir())
                 if p.is_file() and p.name.startswith(path.name)}  # fmt: skip
        out[field_name] = {"ref": ray.put(files), "size": path.stat().st_size}
    return out


def discover_inputs(inputs: Iterable[str | Path], *, all_files: bool = False) -> Discovery:
    """Local inputs through :func:`lib_deepfake.pipeline.inputs.discover`, URL inputs through
    :func:`lib_deepfake.scale.remote.expand_urls` (``Discovery.urls``; ``scan_keys()`` lists paths first, then URLs)."""
    from lib_deepfake.scale.remote import expand_urls, is_url

    items = [str(i) for i in inputs]
    found = discover([i for i in items if not is_url(i)], all_files=all_files)
    found.urls = expand_urls([i for i in items if is_url(i)], all_files=all_files)
    return found


def scan_with_ray(
    config: ScanConfig,
    inputs: Iterable[str | Path],
    out_dir: Path | str,
    *,
    address: str = "auto",
    workers: int | None = None,
    gpus_per_worker: float | None = None,
    cpus_per_worker: float | None = None,
    videos_per_call: int | None = None,
    video_retries: int = DEFAULT_VIDEO_RETRIES,
    resume: bool = False,
    overwrite: bool = False,
    labels: Path | str | None = None,
    all_files: bool = False,
    on_outcome: ProgressCallback | None = None,
    scanner_factory: Callable[[ScanConfig], Any] | None = None,
    ship_model: bool | None = None,
    progress_bars: bool = False,
    init_kwargs: dict[str, Any] | None = None,
    dedupe: bool = True,
    cache: Path | str | None = None,
) -> ScanResult:
    """Scan ``inputs`` on Ray into ``out_dir``: the same files as :func:`lib_deepfake.pipeline.run.run_scan`.

    Args:
        config: scan settings (``device`` "cuda" -> GPU actors; "cpu" -> CPU actors).
        inputs: files, folders, list files (as ``lib-infer``), and URLs (``s3://``, ``gs://``, ``http(s)://``,
            ``file://``; a URL ending in "/" is a prefix, listed recursively). Local paths must exist on every node
            that runs a worker (a shared filesystem) - only the driver lists them.
        out_dir: output folder on the driver.
        address: "auto", "local" or a cluster address (see :func:`connect`).
        workers: actors (None: one per GPU, or one per 2 CPUs).
        gpus_per_worker: GPUs per actor (None: 1 on CUDA).
        cpus_per_worker: CPUs per actor (None: an even share, see :func:`~lib_deepfake.scale.planning.plan_pool`).
        videos_per_call: videos per actor call (None: twice the actor's decode processes, at least 4 on GPU, 2 on CPU).
        video_retries: a video whose worker dies is retried alone this many times, then becomes an error row.
        resume, overwrite, labels, all_files, on_outcome, dedupe, cache: as
            :func:`~lib_deepfake.pipeline.run.run_scan` (copies and cached rows are settled on the driver).
        scanner_factory: ``fn(config) -> object with outcomes(paths) and close()`` run in each actor instead of
            :class:`~lib_deepfake.pipeline.scanner.VideoScanner` (must be picklable; tests use it to kill a worker).
        ship_model: send the model files through the object store (None: when the cluster has more than one node
            or is reached through Ray Client). Workers that see the same file locally still use their own.
        progress_bars: Ray Data's progress bars on stderr.
        init_kwargs: extra :func:`connect` arguments for a new local cluster (num_cpus, object_store_memory, ...).

    Returns:
        The summary (also in run.json) with a ``ray`` section (pool plan, worker crashes), and the run.json header
        around it (its ``ray`` section also lists the workers seen); the result reads as the summary.

    Raises:
        MissingDependencyError: Ray is not installed.
        RayScanError: the cluster cannot be reached, cannot hold the pool, or the Ray job failed (finished videos
            are saved; ``--resume`` continues).
        InputError, OutputError: as a local scan.
    """
    from lib_deepfake.pipeline.components import resolve_choices
    from lib_deepfake.pipeline.engine_choice import choose_engine, pin_engine

    ray_info: dict[str, Any] = {"address": address, "workers_seen": []}
    crash_stats: dict[str, Any] = {}
    totals: dict[str, float] = {}

    def details() -> dict[str, Any]:
        ray_info["crashes"] = crash_stats
        return {"stages": totals, "ray": {k: v for k, v in ray_info.items() if k != "workers_seen"}}

    with ScanSession(config, inputs, out_dir, resume=resume, overwrite=overwrite, labels=labels, all_files=all_files,
                     on_outcome=on_outcome, discover=discover_inputs, dedupe=dedupe,
                     cache=cache) as session:  # fmt: skip
        config = session.config  # the threshold settled (None: the model card's), as the workers need it
        # The engine is chosen once, here (auto may probe): every worker runs that one and none probes again.
        config = pin_engine(config, choose_engine(config))
        session.start(resolve_choices(config), details=details, ray=ray_info)
        todo = list(session.todo())
        failure: RayScanError | None = None
        if todo:
            with connect(address, log_to_driver=logger.isEnabledFor(logging.DEBUG), **(init_kwargs or {})) as conn:
                cpus, gpus, nodes = conn.resources()
                plan = plan_pool(cpus, gpus, on_cuda=config.on_cuda, workers=workers, gpus_per_worker=gpus_per_worker,
                                 cpus_per_worker=cpus_per_worker, threads=config.threads,
                                 decode_workers=config.workers, videos_per_call=videos_per_call,
                                 strict=conn.mode != "cluster")  # fmt: skip
                if ship_model is None:
                    ship_model = nodes > 1 or is_ray_client()
                ray_info.update({**conn.describe(), "cluster": {"cpus": cpus, "gpus": gpus, "nodes": nodes},
                                 "plan": plan.as_dict(), "video_retries": video_retries,
                                 "model_shipped": bool(ship_model)})  # fmt: skip
                session.write_header()
                logger.info("Ray: %d node(s), %g CPU, %g GPU; %d worker(s) x (%g CPU, %g GPU), %d video(s) per call",
                            nodes, cpus, gpus, plan.workers, plan.cpus_per_worker, plan.gpus_per_worker,
                            plan.videos_per_call)  # fmt: skip
                try:
                    for outcome, meta in _run_dataset(config, todo, plan, video_retries, scanner_factory, ship_model,
                                                      progress_bars, crash_stats):  # fmt: skip
                        if meta:
                            _note_meta(meta, session.header, totals)
                        session.append(outcome)
                except RayScanError as exc:
                    failure = exc
                except Exception as exc:  # noqa: BLE001 - Ray's own errors: report them as one line, keep the rows
                    failure = RayScanError(f"the Ray job failed: {explain_ray_error(exc)}")
            if failure is None:
                # The ledger guarantees rows; this is the last line of defence so the scan is always complete.
                for k in todo:
                    if not session.has_row(k):
                        session.append(error_outcome(k, "no result came back from the Ray workers", WORKER_LOST,
                                                     threshold=config.threshold))  # fmt: skip
        result = session.finish(complete=failure is None)
    if failure is not None:
        raise RayScanError(f"{failure} ({session.count} video(s) of this run are saved in {session.out_dir}; "
                           "continue with --resume)")  # fmt: skip
    return result


def _note_meta(meta: dict[str, Any], header: dict[str, Any], totals: dict[str, float]) -> None:
    """Fold a worker's meta record into the stage totals and the run.json header (the workers' resolved choices
    and the model manifest: the driver loads no engine)."""
    for k, v in (meta.get("totals") or {}).items():
        totals[k] = round(totals.get(k, 0.0) + float(v), 6)
    worker = meta.get("worker")
    if worker:
        header["ray"]["workers_seen"].append(worker)
        if worker.get("resolved"):
            header["resolved"] = {**header.get("resolved", {}), **worker["resolved"]}
        if worker.get("model_manifest") and not header.get("model_manifest"):
            header["model_manifest"] = worker["model_manifest"]


_USER_ERROR = re.compile(r"lib_deepfake(?:\.\w+)*\.(\w+(?:Error|Exception)): ([^\n]+)")


def explain_ray_error(exc: BaseException) -> str:
    """One line for a failed Ray job. Ray wraps an exception raised in an actor's ``__init__`` (an unreadable model,
    a missing GPU provider) in ``ActorDiedError`` whose text holds the whole remote traceback; the user-facing
    :class:`~lib_deepfake.errors.LibDeepfakeError` line inside it is what the user needs."""
    text = str(exc)
    found = _USER_ERROR.findall(text)
    if found:
        kind, message = found[-1]
        return f"a worker could not start or run: {kind}: {' '.join(message.split())[:300]}"
    return f"{type(exc).__name__}: {' '.join(text.split())[:400]}"


def _run_dataset(
    config: ScanConfig,
    todo: list[str],
    plan: PoolPlan,
    video_retries: int,
    scanner_factory: Callable[[ScanConfig], Any] | None,
    ship_model: bool,
    progress_bars: bool,
    crash_stats: dict[str, Any],
) -> Iterator[tuple[VideoOutcome, dict[str, Any] | None]]:
    """Run the Ray Data pipeline; yields ``(outcome, meta or None)`` as rows stream back."""
    import ray

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = progress_bars
    if not progress_bars:
        # Ray Data logs progress at INFO to stdout when stdout is not a terminal; our CLI owns the output.
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    ledger: Any = ray.remote(CrashLedger).options(num_cpus=0, max_restarts=0).remote(video_retries)
    try:
        artifacts = _ship_artifacts(config) if ship_model else {}
        ds = ray.data.from_items([{"path": k} for k in todo], override_num_blocks=blocks_for(len(todo), plan))
        # Actor fault tolerance comes from Ray Data's defaults for actor pools (max_restarts=-1, max_task_retries=-1:
        # a dead actor is restarted and its call retried); passing them explicitly is deprecated since Ray 2.60.
        remote_args: dict[str, Any] = {"num_cpus": plan.cpus_per_worker}
        if plan.gpus_per_worker > 0:
            remote_args["num_gpus"] = plan.gpus_per_worker
        out = ds.map_batches(
            RayScanWorker,
            fn_constructor_kwargs={
                "config": config,
                "plan": plan.as_dict(),
                "ledger": ledger,
                "artifacts": artifacts,
                "scanner_factory": scanner_factory,
            },  # fmt: skip
            batch_size=plan.videos_per_call,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=plan.workers),
            **remote_args,
        )
        for rec in out.iter_rows():
            meta = json.loads(rec["meta"]) if rec.get("meta") else None
            yield VideoOutcome.from_dict(json.loads(rec["outcome"])), meta
        crash_stats.update(ray.get(ledger.stats.remote()))
    finally:
        with contextlib.suppress(Exception):
            ray.kill(ledger)


__all__ = ["discover_inputs", "explain_ray_error", "scan_with_ray"]
