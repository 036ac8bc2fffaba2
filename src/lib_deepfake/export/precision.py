"""How an FP16 (or FP32) TensorRT plan is built, per TensorRT major version. The one place that branches on it.

- **TensorRT 10** is weakly typed by default: build from the **FP32** ONNX and set ``BuilderFlag.FP16``; the
  builder picks FP16 kernels where it is faster. The network must *not* be created strongly typed, which would
  make the FP16 flag meaningless (precision would follow the ONNX dtypes).
- **TensorRT 11** removed ``BuilderFlag.FP16`` and every network is strongly typed (gpu-stack.md §4.2): precision
  comes from the ONNX dtypes, so an FP16 plan is built from the **FP16** ONNX (``lib-export to-onnx --fp16``,
  which keeps uint8 input, normalisation and the softmax in FP32).
- Any other major is refused: guessing how an unknown TensorRT types a network would produce silently wrong plans.
"""

from __future__ import annotations

from dataclasses import dataclass

from lib_deepfake.errors import LibDeepfakeError

SUPPORTED_MAJORS = (10, 11)
PRECISIONS = ("fp16", "fp32")


@dataclass(frozen=True)
class PrecisionPlan:
    """What the builder must do for one (TensorRT major, requested precision) pair.

    Attributes:
        onnx_precision: precision of the ONNX graph to parse (``"fp32"`` or ``"fp16"``).
        builder_flags: ``trt.BuilderFlag`` member names to set.
        network_flags: ``trt.NetworkDefinitionCreationFlag`` member names for ``create_network``.
        strongly_typed: whether precision follows the ONNX dtypes.
        note: one line for logs and the manifest.
    """

    trt_major: int
    precision: str
    onnx_precision: str
    builder_flags: tuple[str, ...]
    network_flags: tuple[str, ...]
    strongly_typed: bool
    note: str
    accepted_onnx: tuple[str, ...] = ()

    def accepts(self, onnx_precision: str) -> bool:
        return onnx_precision in (self.accepted_onnx or (self.onnx_precision,))


def plan_precision(trt_major: int, precision: str) -> PrecisionPlan:
    """Decide how to build a ``precision`` plan with TensorRT ``trt_major``.

    Raises:
        LibDeepfakeError: unknown precision, or a TensorRT major this code was not written for.
    """
    if precision not in PRECISIONS:
        raise LibDeepfakeError(f"TensorRT precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if trt_major == 10:
        if precision == "fp16":
            # An FP16 ONNX works too (its FP16 layers stay FP16); the FP32 one lets the builder choose per layer.
            return PrecisionPlan(10, "fp16", "fp32", ("FP16",), (), False,
                                 "TensorRT 10: FP32 ONNX + BuilderFlag.FP16 (weakly typed network)",
                                 ("fp32", "fp16"))  # fmt: skip
        return PrecisionPlan(10, "fp32", "fp32", (), (), False, "TensorRT 10: FP32 ONNX, no precision flags")
    if trt_major == 11:
        # STRONGLY_TYPED is deprecated and ignored in 11 (always on); create_network(0) avoids the warning.
        return PrecisionPlan(11, precision, precision, (), (), True,
                             f"TensorRT 11: strongly typed, precision from the {precision.upper()} ONNX")  # fmt: skip
    raise LibDeepfakeError(
        f"TensorRT {trt_major}.x is not supported by this lib-deepfake (it knows "
        f"{', '.join(map(str, SUPPORTED_MAJORS))}): how it types networks and sets precision is unknown here; "
        "install tensorrt-cu13>=10,<12"
    )


def check_onnx_precision(plan: PrecisionPlan, onnx_precision: str | None, onnx_name: str) -> None:
    """Refuse an ONNX whose precision does not fit the build plan, saying which export to make.

    ``onnx_precision`` None means unknown (an ONNX without manifest or metadata): allowed, with the plan's
    expectation written to the log by the caller.
    """
    if onnx_precision is None or plan.accepts(onnx_precision):
        return
    flag = " --fp16" if plan.onnx_precision == "fp16" else ""
    raise LibDeepfakeError(
        f"{onnx_name} is a {onnx_precision.upper()} ONNX, but a {plan.precision.upper()} plan with TensorRT "
        f"{plan.trt_major} is built from the {plan.onnx_precision.upper()} ONNX ({plan.note}); export it with "
        f"lib-export to-onnx{flag}, or pass the checkpoint and let to-trt export it"
    )
