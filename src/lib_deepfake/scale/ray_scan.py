"""A scan spread over a Ray cluster: the same rows, files and report as ``lib-infer``, from many GPUs or machines.

Pipeline (Ray Data)::

    ray.data.from_items([{"path": p} ...])                 # one row per video (never Ray's frame-by-frame reader)
      .map_batches(RayScanWorker, compute=ActorPoolStrategy(size=N), num_gpus=G, num_cpus=C, batch_size=k)
      .iter_rows()                                          # streamed back to the driver as videos finish

Each actor loads its decoder, face detector and classifier engine once and runs
:class:`~lib_deepfake.pipeline.scanner.VideoScanner` - the code of a local scan - on ``k`` videos per call; the
driver appends every outcome to the same :class:`~lib_deepfake.pipeline.results.ResultsStore` as
:func:`lib_deepfake.pipeline.run.run_scan` (so ``--resume`` works across local and Ray runs), then writes run.json
and report.html from the rows.

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
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from lib_deepfake.pipeline.config import ScanConfig
from lib_deepfake.scale.planning import CrashLedger, PoolPlan, RayScanError, blocks_for, plan_pool

logger = logging.getLogger(__name__)

#: error_kind of a video given up after its worker died ``video_retries + 1`` times while scanning it alone.
WORKER_CRASH = "WorkerCrashError"
#: error_kind of a video for which the Ray job returned nothing (should not happen; the scan still completes).
WORKER_LOST = "RayWorkerLost"


# ------------------------------------------------------------------------------------------------------------------
# Connecting
# ------------------------------------------------------------------------------------------------------------------
class RayConnection:
    """What :func:`connect` did: ``started`` is True when this process started Ray (and shuts it down on close)."""

    def __init__(self, address: str, mode: str, started: bool) -> None:
        self.address = address
        self.mode = mode
        self.started = started

    def resources(self) -> tuple[float, float, int]:
        """(CPUs, GPUs, alive nodes) of the cluster."""
        import ray

        res = ray.cluster_resources()
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        return float(res.get("CPU", 0.0)), float(res.get("GPU", 0.0)), nodes

    def close(self) -> None:
        if self.started:
            import ray

            ray.shutdown()
            self.started = False

    def __enter__(self) -> RayConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> dict[str, Any]:
        return {"address": self.address, "mode": self.mode, "started_here": self.started}


def connect(
    address: str = "auto",
    *,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    object_store_memory: int | None = None,
    log_to_driver: bool = False,
    **init_kwargs: Any,
) -> RayConnection:
    """Attach to Ray.

    Args:
        address: "auto" - a running cluster (``RAY_ADDRESS``, or one started with ``ray start`` on this machine),
            else a new local one; "local" - always a new local cluster in this process, ignoring RAY_ADDRESS;
            anything else - that cluster: ``ray://head:10001`` (Ray Client) or ``head:6379`` (GCS address).
            When Ray is already initialised in this process (a notebook, a test fixture), that session is used
            whatever ``address`` says, and left running.
        num_cpus, num_gpus, object_store_memory: resources of a **new local** cluster (None: Ray detects them).
        log_to_driver: forward worker logs to this process's stderr.
        init_kwargs: more ``ray.init`` arguments (e.g. ``runtime_env``).

    Raises:
        MissingDependencyError: Ray is not installed.
        RayScanError: the cluster at ``address`` cannot be reached.
    """
    from lib_deepfake._optional import require

    ray = require("ray", purpose="scanning on a Ray cluster (--ray)", extra="ray")
    if ray.is_initialized():
        return RayConnection(address, "existing-session", started=False)
    common: dict[str, Any] = {"include_dashboard": False, "log_to_driver": log_to_driver, **init_kwargs}
    local: dict[str, Any] = {"num_cpus": num_cpus, "num_gpus": num_gpus, "object_store_memory": object_store_memory}
    local = {k: v for k, v in local.items() if v is not None}
    if address == "auto":
        try:
            ray.init(address="auto", **common)
            return RayConnection("auto", "cluster", started=True)
        except ConnectionError:
            logger.info("no running Ray cluster found; starting a local one")
        ray.init(address="local", **common, **local)
        return RayConnection("local", "local", started=True)
    if address == "local":
        ray.init(address="local", **common, **local)
        return RayConnection("local", "local", started=True)
    try:
        ray.init(address=address, **common)
    except Exception as exc:  # noqa: BLE001 - ConnectionError, gRPC errors, version mismatch: all one message
        reason = " ".join(str(exc).split())[:300]
        raise RayScanError(f"cannot connect to the Ray cluster at {address}: {reason}") from exc
    return RayConnection(address, "cluster", started=True)


# ------------------------------------------------------------------------------------------------------------------
# Worker (one Ray actor)
# ------------------------------------------------------------------------------------------------------------------
def _error_outcome(key: str, reason: str, kind: str, threshold: float) -> dict[str, Any]:
    """An error outcome in the shape the pipeline makes them (row via ``build_row``, empty report entry)."""
    from lib_deepfake.pipeline.results import build_row

    row = build_row(key, status="error", threshold=threshold, error=reason, error_kind=kind)
    return {"row": row, "faces": [], "report": {"path": key, "thumbs": [], "timeline": []}}


def _outcome_dict(outcome: Any) -> dict[str, Any]:
    return {"row": outcome.row, "faces": list(outcome.faces), "report": outcome.report}


def _rekey(out: dict[str, Any], key: str, size: int | None) -> dict[str, Any]:
    """A staged URL was scanned under a temporary file name: report it under the URL."""
    from lib_deepfake.scale.remote import url_name

    row = dict(out["row"])
    row.update({"path": key, "name": url_name(key), "size_bytes": size})
    faces = [{**f, "path": key} for f in out["faces"]]
    report = {**out["report"], "path": key} if out.get("report") is not None else None
    return {"row": row, "faces": faces, "report": report}


class RayScanWorker:
    """One actor of the pool: engines loaded once; ``__call__`` scans a batch of videos and returns one row each.

    Args:
        config: the scan settings (as on the driver; ``threads``, ``workers`` and ``device`` are adapted to the
            actor's share: its own threads, decode processes, and ``cuda:0`` = the GPU Ray assigned it).
        plan: the :class:`PoolPlan` as a dict.
        ledger: handle of the :class:`CrashLedger` actor (None: no crash bookkeeping, e.g. direct use).
        artifacts: model files shipped through the object store, for nodes that cannot see the driver's files:
            ``{"model"|"detector_model": {"ref": ObjectRef of {name: bytes}, "size": bytes of the main file}}``.
        scanner_factory: ``fn(config) -> scanner`` with ``outcomes(paths)`` and ``close()`` (default:
            :class:`~lib_deepfake.pipeline.scanner.VideoScanner`); a seam for tests and custom pipelines.
    """

    def __init__(
        self,
        config: ScanConfig,
        plan: dict[str, Any],
        ledger: Any = None,
        artifacts: dict[str, Any] | None = None,
        scanner_factory: Callable[[ScanConfig], Any] | None = None,
    ) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="lib-deepfake-ray-"))
        cfg = replace(
            config,
            threads=config.threads or int(plan["threads"]),
            workers=config.workers or int(plan["decode_workers"]),
            # Ray sets CUDA_VISIBLE_DEVICES to the GPU(s) it assigned this actor: they are cuda:0.. here.
            device="cuda:0" if config.on_cuda else "cpu",
        )
        cfg = self._localize(cfg, artifacts or {})
        self.config = cfg
        self.ledger = ledger
        if scanner_factory is None:
            from lib_deepfake.pipeline.scanner import VideoScanner

            scanner_factory = VideoScanner
        self.scanner = scanner_factory(cfg)
        self._sent_info = False
        self._last_totals: dict[str, float] = {}

    # -- setup -----------------------------------------------------------------------------------------------------
    def _localize(self, cfg: ScanConfig, artifacts: dict[str, Any]) -> ScanConfig:
        """Use the driver's model file when this node sees the same file, else the copy shipped with the job."""
        import ray

        changes: dict[str, Any] = {}
        for field_name, shipped in artifacts.items():
            path = getattr(cfg, field_name)
            if path is None or shipped is None:
                continue
            try:
                if Path(path).stat().st_size == shipped["size"]:
                    continue
            except OSError:
                pass
            files: dict[str, bytes] = ray.get(shipped["ref"])
            folder = self.tmp / "artifacts" / field_name
            folder.mkdir(parents=True, exist_ok=True)
            for name, data in files.items():
                (folder / name).write_bytes(data)
            changes[field_name] = folder / Path(path).name
            logger.info("using the shipped copy of %s (%s is not on this node)", Path(path).name, path)
        return replace(cfg, **changes) if changes else cfg

    def _info(self) -> dict[str, Any]:
        import ray

        inner = getattr(self.scanner, "scanner", None)
        info: dict[str, Any] = {"pid": os.getpid()}
        try:
            ctx = ray.get_runtime_context()
            info["node_id"] = ctx.get_node_id()
            info["gpu_ids"] = [str(g) for g in ray.get_gpu_ids()]
        except Exception:  # noqa: BLE001 - descriptive only
            pass
        info["resolved"] = getattr(inner, "resolved", None)
        engine = getattr(getattr(inner, "components", None), "engine", None)
        man = getattr(engine, "manifest", None)
        if man is not None and hasattr(man, "to_dict"):
            try:
                d = man.to_dict()
                d.pop("io", None)
                info["model_manifest"] = d
            except Exception:  # noqa: BLE001
                pass
        return info

    def _totals_delta(self) -> dict[str, float]:
        inner = getattr(self.scanner, "scanner", None)
        totals = getattr(inner, "totals", None)
        if totals is None:
            return {}
        now = {k: float(v) for k, v in totals.as_dict().items()}
        delta = {k: round(v - self._last_totals.get(k, 0.0), 6) for k, v in now.items()}
        self._last_totals = now
        return delta

    # -- scanning --------------------------------------------------------------------------------------------------
    def _scan(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """Outcome dicts per key; URLs are staged to local files first."""
        from lib_deepfake.scale.remote import RemoteReadError, is_url, stage

        thr = self.config.threshold
        results: dict[str, dict[str, Any]] = {}
        local: dict[str, str] = {}
        staged: list[Path] = []
        try:
            for k in keys:
                if is_url(k):
                    try:
                        p = stage(k, self.tmp / "staged", timeout_s=self.config.timeout_s)
                    except RemoteReadError as exc:
                        results[k] = _error_outcome(k, str(exc), "RemoteReadError", thr)
                        continue
                    staged.append(p)
                    local[k] = str(p)
                else:
                    local[k] = k
            if local:
                try:
                    got = {o.row["path"]: _outcome_dict(o) for o in self.scanner.outcomes(list(local.values()))}
                except Exception as exc:  # noqa: BLE001 - a failure of the whole call becomes rows, the scan goes on
                    logger.exception("scanner failed on %d video(s)", len(local))
                    got = {}
                    for k in local:
                        results[k] = _error_outcome(k, f"worker error: {type(exc).__name__}: {exc}", type(exc).__name__,
                                                    thr)  # fmt: skip
                for k, lp in local.items():
                    if k in results:
                        continue
                    out = got.get(lp)
                    if out is None:
                        results[k] = _error_outcome(k, "the scanner returned no result for this file", WORKER_LOST, thr)
                    elif lp != k:
                        results[k] = _rekey(out, k, os.stat(lp).st_size)
                    else:
                        results[k] = out
        finally:
            for p in staged:
                p.unlink(missing_ok=True)
        return results

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Scan one Ray batch.

        Args:
            batch: ``{"path": array of str [B]}`` (Ray's numpy batch format).

        Returns:
            ``{"path": [B] str, "outcome": [B] JSON str (row, faces, report), "meta": [B] JSON str ("" except on the
            first row: this actor's description once, and the stage-time totals of this call)}``.
        """
        import numpy as np

        import ray

        keys = [str(p) for p in batch["path"]]
        results: dict[str, dict[str, Any]] = {}
        status = ray.get(self.ledger.status.remote(keys)) if self.ledger is not None else [(0, 0)] * len(keys)
        if all(c == 0 for c, _ in status):
            self._begin(keys, solo=False)
            results.update(self._scan(keys))
            self._end(keys, solo=False)
        else:
            # A worker died holding this batch before: one video at a time, so the next death names its video.
            for k, (_crashes, solo) in zip(keys, status):
                if ray.get(self.ledger.should_give_up.remote(k)):
                    ray.get(self.ledger.give_up.remote(k))
                    results[k] = _error_outcome(
                        k, f"the scan worker died {solo} time(s) while scanning this video alone (crash or out-of-"
                           "memory kill in the decoder, detector or classifier, or a lost node); given up",
                        WORKER_CRASH, self.config.threshold)  # fmt: skip
                    continue
                self._begin([k], solo=True)
                results.update(self._scan([k]))
                self._end([k], solo=True)
        meta = {"totals": self._totals_delta()}
        if not self._sent_info:
            meta["worker"] = self._info()
            self._sent_info = True
        outcomes = [json.dumps(results[k], ensure_ascii=True, allow_nan=False, default=str) for k in keys]
        metas = [json.dumps(meta, default=str)] + [""] * (len(keys) - 1)
        return {"path": np.array(keys, dtype=object), "outcome": np.array(outcomes, dtype=object),
                "meta": np.array(metas, dtype=object)}  # fmt: skip

    def _begin(self, keys: list[str], solo: bool) -> None:
        if self.ledger is not None:
            import ray

            ray.get(self.ledger.begin.remote(keys, solo))

    def _end(self, keys: list[str], solo: bool) -> None:
        if self.ledger is not None:
            import ray

            ray.get(self.ledger.end.remote(keys, solo))

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.scanner.close()
        shutil.rmtree(getattr(self, "tmp", ""), ignore_errors=True)


# ------------------------------------------------------------------------------------------------------------------
# Driver
# ------------------------------------------------------------------------------------------------------------------
def _is_ray_client() -> bool:
    """True when this process talks to the cluster through Ray Client (``ray://``): its files are not the cluster's."""
    try:
        from ray.util.client import ray as client_ray

        return bool(client_ray.is_connected())
    except Exception:  # noqa: BLE001 - an older/newer Ray without this module: assume a cluster-side driver
        return False


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


def discover_inputs(inputs: Iterable[str | Path], *, all_files: bool = False) -> tuple[Any, list[str]]:
    """Local inputs through :func:`lib_deepfake.pipeline.inputs.discover`, URL inputs through
    :func:`lib_deepfake.scale.remote.expand_urls`.

    Returns:
        (the local Discovery, every key to scan: local paths first, then URLs, each once).
    """
    from lib_deepfake.pipeline.inputs import discover
    from lib_deepfake.scale.remote import expand_urls, is_url

    items = [str(i) for i in inputs]
    found = discover([i for i in items if not is_url(i)], all_files=all_files)
    keys = [str(p) for p in found.files] + expand_urls([i for i in items if is_url(i)], all_files=all_files)
    return found, keys


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
    video_retries: int = 2,
    resume: bool = False,
    overwrite: bool = False,
    labels: Path | str | None = None,
    all_files: bool = False,
    on_outcome: Callable[[dict[str, Any], int, int], None] | None = None,
    scanner_factory: Callable[[ScanConfig], Any] | None = None,
    ship_model: bool | None = None,
    progress_bars: bool = False,
    init_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
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
        resume, overwrite, labels, all_files, on_outcome: as :func:`~lib_deepfake.pipeline.run.run_scan`.
        scanner_factory: ``fn(config) -> object with outcomes(paths) and close()`` run in each actor instead of
            :class:`~lib_deepfake.pipeline.scanner.VideoScanner` (must be picklable; tests use it to kill a worker).
        ship_model: send the model files through the object store (None: when the cluster has more than one node
            or is reached through Ray Client). Workers that see the same file locally still use their own.
        progress_bars: Ray Data's progress bars on stderr.
        init_kwargs: extra :func:`connect` arguments for a new local cluster (num_cpus, object_store_memory, ...).

    Returns:
        The summary (also in run.json), with a ``ray`` section: pool plan, workers seen, worker crashes.

    Raises:
        MissingDependencyError: Ray is not installed.
        RayScanError: the cluster cannot be reached, cannot hold the pool, or the Ray job failed (finished videos
            are saved; ``--resume`` continues).
        InputError, OutputError: as a local scan.
    """
    from lib_deepfake.pipeline.results import ResultsStore, now_iso, read_labels, summarize
    from lib_deepfake.pipeline.run import run_header, write_scan_report
    from lib_deepfake.pipeline.scanner import resolve_choices

    t0 = time.perf_counter()
    found, keys = discover_inputs(inputs, all_files=all_files)
    label_map = read_labels(labels) if labels is not None else None
    fingerprint = config.fingerprint()
    store = ResultsStore(out_dir, resume=resume, overwrite=overwrite, faces=config.faces_jsonl,
                         fingerprint=fingerprint)  # fmt: skip
    done = store.open()
    conn: RayConnection | None = None
    try:
        todo = [k for k in keys if k not in done]
        if found.skipped_non_video:
            logger.info("skipped %d file(s) without a video extension (use --all-files to scan them)",
                        found.skipped_non_video)  # fmt: skip
        if done:
            logger.info("resume: %d file(s) already done, %d to scan", len(done), len(todo))
        for note in store.repaired:
            logger.warning("resume repaired %s", note)
        header = run_header(config, resolve_choices(config), None, found, fingerprint)
        header["resumed"] = bool(done)
        header["inputs"] = {**(header.get("inputs") or {}), "urls": len(keys) - len(found.files)}
        ray_info: dict[str, Any] = {"address": address, "workers_seen": []}
        header["ray"] = ray_info
        store.write_run(header)
        count, interrupted, failure = 0, False, None
        totals: dict[str, float] = {}
        crash_stats: dict[str, Any] = {}
        if todo:
            conn = connect(address, log_to_driver=logger.isEnabledFor(logging.DEBUG), **(init_kwargs or {}))
            cpus, gpus, nodes = conn.resources()
            plan = plan_pool(cpus, gpus, on_cuda=config.on_cuda, workers=workers, gpus_per_worker=gpus_per_worker,
                             cpus_per_worker=cpus_per_worker, threads=config.threads, decode_workers=config.workers,
                             videos_per_call=videos_per_call, strict=conn.mode != "cluster")  # fmt: skip
            if ship_model is None:
                ship_model = nodes > 1 or _is_ray_client()
            ray_info.update({**conn.describe(), "cluster": {"cpus": cpus, "gpus": gpus, "nodes": nodes},
                             "plan": plan.as_dict(), "video_retries": video_retries,
                             "model_shipped": bool(ship_model)})  # fmt: skip
            store.write_run(header)
            logger.info("Ray: %d node(s), %g CPU, %g GPU; %d worker(s) x (%g CPU, %g GPU), %d video(s) per call",
                        nodes, cpus, gpus, plan.workers, plan.cpus_per_worker, plan.gpus_per_worker,
                        plan.videos_per_call)  # fmt: skip
            try:
                for out, meta in _run_dataset(config, todo, plan, video_retries, scanner_factory, ship_model,
                                              progress_bars, crash_stats):  # fmt: skip
                    if meta:
                        for k, v in (meta.get("totals") or {}).items():
                            totals[k] = round(totals.get(k, 0.0) + float(v), 6)
                        if "worker" in meta:
                            ray_info["workers_seen"].append(meta["worker"])
                            if meta["worker"].get("resolved"):
                                header["resolved"] = {**header.get("resolved", {}), **meta["worker"]["resolved"]}
                            if meta["worker"].get("model_manifest") and not header.get("model_manifest"):
                                header["model_manifest"] = meta["worker"]["model_manifest"]
                    if out["row"]["path"] in store.done:
                        continue  # a retried call re-emitted a video (cannot happen with Ray's exactly-once output)
                    store.append(out["row"], out["faces"], out["report"])
                    count += 1
                    if on_outcome is not None:
                        on_outcome(out["row"], count, len(todo))
            except KeyboardInterrupt:
                interrupted = True
            except RayScanError as exc:
                failure = exc
            except Exception as exc:  # noqa: BLE001 - Ray's own errors: report them as one line, keep the rows
                failure = RayScanError(f"the Ray job failed: {explain_ray_error(exc)}")
            if not interrupted and failure is None:
                # The ledger guarantees rows; this is the last line of defence so the scan is always complete.
                for k in todo:
                    if k not in store.done:
                        why = "no result came back from the Ray workers"
                        lost = _error_outcome(k, why, WORKER_LOST, config.threshold)
                        store.append(lost["row"], lost["faces"], lost["report"])
                        count += 1
        ray_info["crashes"] = crash_stats
        wall = time.perf_counter() - t0
        summary = summarize(store.rows, label_map, config.threshold)
        summary.update({"scanned_this_run": count, "skipped_done": len(done), "wall_s": round(wall, 3),
                        "videos_per_s": round(count / wall, 4) if wall > 0 else None, "stages": totals,
                        "interrupted": interrupted, "skipped_non_video": found.skipped_non_video,
                        "duplicates": found.duplicates, "ray": {k: v for k, v in ray_info.items()
                                                                if k != "workers_seen"}})  # fmt: skip
        finished = not interrupted and failure is None
        header.update({"finished": now_iso() if finished else None, "summary": summary})
        store.write_run(header)
        if config.report:
            write_scan_report(store, header, summary)
        if interrupted:
            raise KeyboardInterrupt
        if failure is not None:
            raise RayScanError(f"{failure} ({count} video(s) of this run are saved in {store.out_dir}; continue with "
                               "--resume)")  # fmt: skip
        return summary
    finally:
        store.close()
        if conn is not None:
            conn.close()


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
) -> Iterable[tuple[dict[str, Any], dict[str, Any] | None]]:
    """Run the Ray Data pipeline; yields ``(outcome dict, meta or None)`` as rows stream back."""
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
            yield json.loads(rec["outcome"]), meta
        crash_stats.update(ray.get(ledger.stats.remote()))
    finally:
        with contextlib.suppress(Exception):
            ray.kill(ledger)


__all__ = ["WORKER_CRASH", "WORKER_LOST", "RayConnection", "RayScanWorker", "connect", "discover_inputs",
           "scan_with_ray"]  # fmt: skip
