"""Attaching to Ray for a scan: a running cluster, a new local one, or a remote one through Ray Client.

Nothing here imports Ray at module level (``lib-infer --help`` stays light).
"""

from __future__ import annotations

import logging
from typing import Any

from lib_deepfake.scale.planning import RayScanError

logger = logging.getLogger(__name__)


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


def is_ray_client() -> bool:
    """True when this process talks to the cluster through Ray Client (``ray://``): its files are not the cluster's."""
    try:
        from ray.util.client import ray as client_ray

        return bool(client_ray.is_connected())
    except Exception:  # noqa: BLE001 - an older/newer Ray without this module: assume a cluster-side driver
        return False


__all__ = ["RayConnection", "connect", "is_ray_client"]
