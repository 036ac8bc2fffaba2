"""CUDA-graph capture and replay for fixed input shapes, shared by the torch and TensorRT engines.

One graph per input shape, each with its own memory pool: graphs sharing a pool may overwrite each other's
outputs when replayed out of capture order, and a pipeline alternating batch sizes would do exactly that.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from lib_deepfake.log import warn_once

logger = logging.getLogger(__name__)

DEFAULT_MAX_GRAPHS = 8
_WARMUP_RUNS = 2


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    static_in: torch.Tensor
    static_out: torch.Tensor


class GraphCache:
    """Replays ``fn`` through CUDA graphs keyed by input shape.

    Args:
        fn: ``fn(x) -> y`` that only enqueues work on the current CUDA stream (no host sync, no allocation that
            outlives the call except its output). ``x``: the engine input on ``device``.
        device: the CUDA device.
        max_graphs: shapes beyond this many run ``fn`` eagerly (with a warning once) instead of capturing more.
    """

    def __init__(
        self, fn: Callable[[torch.Tensor], torch.Tensor], device: torch.device, max_graphs: int = DEFAULT_MAX_GRAPHS
    ) -> None:
        self.fn = fn
        self.device = device
        self.max_graphs = max_graphs
        self._graphs: dict[tuple[int, ...], _Captured] = {}

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        return list(self._graphs)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        key = tuple(x.shape)
        entry = self._graphs.get(key)
        if entry is None:
            if len(self._graphs) >= self.max_graphs:
                warn_once(logger, f"more than {self.max_graphs} input shapes: running shape {key} without a CUDA graph")
                return self.fn(x)
            entry = self._capture(x)
            self._graphs[key] = entry
        entry.static_in.copy_(x, non_blocking=True)
        entry.graph.replay()
        return entry.static_out

    def _capture(self, x: torch.Tensor) -> _Captured:
        static_in = x.clone()
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        # Warm-up runs outside capture: cuDNN/cuBLAS autotuning, lazy allocations and TensorRT's deferred
        # shape-dependent work must not happen inside the graph.
        with torch.cuda.stream(side):
            for _ in range(_WARMUP_RUNS):
                self.fn(static_in)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.fn(static_in)
        logger.debug("captured a CUDA graph for input shape %s", tuple(x.shape))
        return _Captured(graph, static_in, static_out)

    def clear(self) -> None:
        self._graphs.clear()
