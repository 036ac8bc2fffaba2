"""Pure logic of a Ray scan (no Ray import): the ``--ray`` address, actor-pool sizing, and the crash ledger.

Kept apart from :mod:`lib_deepfake.scale.ray_scan` so that it can be unit-tested without Ray and read in one place.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from lib_deepfake.errors import LibDeepfakeError

#: A video whose Ray worker dies is retried alone this many times, then becomes an error row.
DEFAULT_VIDEO_RETRIES = 2


class RayScanError(LibDeepfakeError):
    """A Ray scan cannot run: bad ``--ray`` address, a pool the cluster cannot hold, or Ray failing outright."""


#: ``host:port`` (IPv4, a DNS name or ``[IPv6]``) - what ``ray start --head`` prints as the GCS address.
_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):\d{1,5}$")


def looks_like_address(value: str) -> bool:
    """True for what ``--ray`` accepts as an address: auto, local, ``ray://host:port`` or ``host:port``."""
    v = value.strip()
    return v in ("auto", "local") or v.startswith("ray://") or bool(_HOST_PORT.match(v))


def resolve_ray_option(value: str | None, inputs: Sequence[str]) -> tuple[str | None, list[str]]:
    """Split the optional value of ``--ray`` from the INPUT arguments.

    ``--ray`` takes an optional value, so ``lib-infer --ray videos/ -m m.onnx`` hands "videos/" to ``--ray``. A value
    that is not an address form (auto, local, ray://host:port, host:port) is therefore an INPUT: it goes back to the
    inputs and the address becomes "auto".

    Returns:
        (address or None when ``--ray`` was not given, inputs).
    """
    inputs = list(inputs)
    if value is None:
        return None, inputs
    if looks_like_address(value):
        return value.strip(), inputs
    return "auto", [value, *inputs]


@dataclass(frozen=True)
class PoolPlan:
    """How many actors, and what each reserves and runs.

    Attributes:
        workers: actors in the pool (one per GPU on GPU clusters).
        cpus_per_worker: Ray ``num_cpus`` of each actor (fractional is fine; Ray only does accounting).
        gpus_per_worker: Ray ``num_gpus`` of each actor (0 on CPU workers; 0.5 puts two actors on one GPU).
        threads: intra-op threads of each actor's detector/classifier on CPU.
        decode_workers: decode processes (PyAV) or threads (DALI) inside each actor.
        videos_per_call: videos handed to one ``__call__`` (Ray ``batch_size``).
    """

    workers: int
    cpus_per_worker: float
    gpus_per_worker: float
    threads: int
    decode_workers: int
    videos_per_call: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_pool(
    cluster_cpus: float,
    cluster_gpus: float,
    *,
    on_cuda: bool,
    workers: int | None = None,
    gpus_per_worker: float | None = None,
    cpus_per_worker: float | None = None,
    threads: int | None = None,
    decode_workers: int = 0,
    videos_per_call: int | None = None,
    strict: bool = True,
) -> PoolPlan:
    """Size the actor pool from the cluster's resources.

    GPU scans (``on_cuda``): one actor per ``gpus_per_worker`` GPUs (default 1), so ``workers`` defaults to the
    cluster's GPU count. CPU scans: an actor per 2 CPUs (one core decodes in a child process while the other runs the
    detector and classifier - the same split as a local ``lib-infer``). Half a CPU (one CPU on clusters with more than
    4) stays unreserved for the driver and Ray Data's own tasks: reserving every CPU makes Ray Data warn that the
    job may hang.

    Args:
        cluster_cpus, cluster_gpus: ``ray.cluster_resources()`` CPU and GPU totals.
        on_cuda: the scan's device is CUDA.
        workers: actors wanted (None: automatic).
        gpus_per_worker: GPUs per actor (None: 1 on CUDA, 0 on CPU).
        cpus_per_worker: CPUs per actor (None: an even share of the unreserved CPUs, at most 2 on CPU, 4 on GPU).
        threads: CPU threads per actor (None: from ``cpus_per_worker``).
        decode_workers: decode processes per actor (0: automatic, ``floor(cpus) - 1`` and at least 1).
        videos_per_call: videos per actor call (None: twice the decode processes, at least 4 on GPU and 2 on CPU).
        strict: raise when the pool does not fit the cluster (False: an autoscaling cluster may still add nodes).

    Raises:
        RayScanError: contradictory or impossible settings.
    """
    if gpus_per_worker is None:
        gpus_per_worker = 1.0 if on_cuda else 0.0
    if gpus_per_worker < 0:
        raise RayScanError(f"--gpus-per-worker must be >= 0, got {gpus_per_worker}")
    if on_cuda and gpus_per_worker == 0:
        raise RayScanError("--device cuda needs --gpus-per-worker > 0 (Ray hides the GPUs from actors without one)")
    if not on_cuda and gpus_per_worker > 0:
        raise RayScanError(f"--gpus-per-worker {gpus_per_worker:g} with --device cpu: use --device cuda for GPUs")
    reserve = 0.5 if cluster_cpus <= 4 else 1.0
    usable = max(0.25, cluster_cpus - reserve)
    if workers is None:
        if gpus_per_worker > 0:
            workers = int(math.floor(cluster_gpus / gpus_per_worker + 1e-9))
            if workers < 1:
                if strict:
                    raise RayScanError(f"the Ray cluster has {cluster_gpus:g} GPU(s); a GPU scan needs at least "
                                       f"{gpus_per_worker:g} (use --device cpu, or a cluster with GPUs)")  # fmt: skip
                workers = 1
        else:
            share = cpus_per_worker or 2.0
            workers = max(1, int(math.floor(usable / share + 1e-9)))
    if workers < 1:
        raise RayScanError(f"--ray-workers must be >= 1, got {workers}")
    if cpus_per_worker is None:
        cap = 4.0 if gpus_per_worker > 0 else 2.0
        cpus_per_worker = min(cap, max(0.25, usable / workers))
        cpus_per_worker = math.floor(cpus_per_worker * 4) / 4  # quarter CPUs: readable and exact in Ray's accounting
    if cpus_per_worker <= 0:
        raise RayScanError(f"cpus per worker must be > 0, got {cpus_per_worker}")
    need_gpus = workers * gpus_per_worker
    need_cpus = workers * cpus_per_worker
    problem = None
    if need_gpus > cluster_gpus + 1e-9:
        problem = (
            f"{workers} worker(s) x {gpus_per_worker:g} GPU need {need_gpus:g} GPUs; the cluster has {cluster_gpus:g}"  # noqa: E501
        )
    elif need_cpus > cluster_cpus + 1e-9:
        problem = (
            f"{workers} worker(s) x {cpus_per_worker:g} CPU need {need_cpus:g} CPUs; the cluster has {cluster_cpus:g}"  # noqa: E501
        )
    if problem is not None and strict:
        raise RayScanError(problem + " (lower --ray-workers)")
    whole = max(1, int(math.floor(cpus_per_worker + 1e-9)))
    decode = int(decode_workers or max(1, whole - 1))
    if videos_per_call is None:
        # A call is a barrier: the actor finishes its videos before it takes the next call, so a call must hold
        # enough videos to keep every decode process busy (measured on an H200 with 14 decode processes: 4 videos per
        # call left the actor waiting for decodes 37% of the time).
        videos_per_call = max(4 if gpus_per_worker > 0 else 2, 2 * decode)
    return PoolPlan(
        workers=int(workers),
        cpus_per_worker=float(cpus_per_worker),
        gpus_per_worker=float(gpus_per_worker),
        threads=int(threads or whole),
        decode_workers=decode,
        videos_per_call=int(videos_per_call),
    )


def blocks_for(n_videos: int, plan: PoolPlan) -> int:
    """Input blocks for ``ray.data.from_items``: one per actor call, so that a call's input is one block (the unit
    Ray retries) and idle actors can take work from busy ones; capped so that millions of paths do not become
    millions of objects."""
    if n_videos <= 0:
        return 1
    return max(1, min(math.ceil(n_videos / plan.videos_per_call), 20000))


class CrashLedger:
    """Counts, per video, how often a worker died while holding it, and decides when to give up.

    Actors report :meth:`begin` before scanning videos and :meth:`end` after; a video begun but never ended was in
    the hands of a worker that died (crash inside libav, the detector or the classifier, an OOM kill, a lost node).
    Ray restarts the actor and retries the call; the worker then asks :meth:`status`:

    - a call whose videos never crashed scans them together (crops of several videos share a classifier batch);
    - a call holding a video that crashed is scanned **one video at a time** ("solo"), so that a crash can be blamed
      on exactly one video and the innocent ones of the batch finish;
    - a video whose worker died more than ``retries`` times while it was scanned alone gets an error row instead of
      another attempt, and the scan goes on. Crashes of batched attempts never count against that limit: they only
      switch to solo mode.

    Ray runs this class as one actor for the whole scan (its counters are the shared state); the class itself is
    plain Python.
    """

    def __init__(self, retries: int = DEFAULT_VIDEO_RETRIES) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.retries = int(retries)
        self._started: dict[str, int] = {}
        self._ended: dict[str, int] = {}
        self._solo_started: dict[str, int] = {}
        self._solo_ended: dict[str, int] = {}
        self._gave_up: set[str] = set()

    def begin(self, paths: Iterable[str], solo: bool = False) -> None:
        for p in paths:
            self._started[p] = self._started.get(p, 0) + 1
            if solo:
                self._solo_started[p] = self._solo_started.get(p, 0) + 1

    def end(self, paths: Iterable[str], solo: bool = False) -> None:
        for p in paths:
            self._ended[p] = self._ended.get(p, 0) + 1
            if solo:
                self._solo_ended[p] = self._solo_ended.get(p, 0) + 1

    def crashes(self, path: str) -> int:
        """Attempts on ``path`` that never ended (its worker died)."""
        return self._started.get(path, 0) - self._ended.get(path, 0)

    def solo_crashes(self, path: str) -> int:
        return self._solo_started.get(path, 0) - self._solo_ended.get(path, 0)

    def status(self, paths: Sequence[str]) -> list[tuple[int, int]]:
        """``(crashes, solo_crashes)`` per path."""
        return [(self.crashes(p), self.solo_crashes(p)) for p in paths]

    def should_give_up(self, path: str) -> bool:
        return self.solo_crashes(path) > self.retries

    def give_up(self, path: str) -> None:
        self._gave_up.add(path)

    def stats(self) -> dict[str, Any]:
        """What run.json records: videos whose worker died at least once, total worker deaths, videos given up."""
        crashed = {p: self.crashes(p) for p in self._started if self.crashes(p) > 0}
        return {
            "videos_with_worker_crashes": len(crashed),
            "worker_crashes": int(sum(crashed.values())),
            "gave_up": sorted(self._gave_up),
            "retries": self.retries,
        }


__all__ = ["CrashLedger", "PoolPlan", "RayScanError", "blocks_for", "looks_like_address", "plan_pool",
           "resolve_ray_option"]  # fmt: skip
