"""OpenVINO INT8 two ways, side by side: NNCF's quantized IR (`lib-export quantize-openvino`) against OpenVINO
reading the QDQ ONNX of `lib-export quantize`, both calibrated on the same face crops. Parity of each against the
PyTorch FP32 model on the bundled face-crop set, then interleaved timing under the benchmark protocol.

    python bench/openvino_int8_ab.py CHECKPOINT --work-dir bench/artifacts --json bench/results/NAME.json

Decides which INT8 path `lib-bench engines` and `--engine auto` use for OpenVINO (docs/engines.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    from lib_deepfake.bench.engine_artifacts import calibration_folder
    from lib_deepfake.bench.machine import describe_machine, machine_info
    from lib_deepfake.bench.protocol import BenchProtocol, format_ratio, mark, markdown_line, ratio_stats, use_protocol
    from lib_deepfake.bench.side_by_side import Side, median, reference_on_face_crops, time_side_by_side
    from lib_deepfake.export.onnx_export import export_onnx
    from lib_deepfake.export.openvino_int8 import quantize_openvino
    from lib_deepfake.export.quantize import quantize_int8

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--work-dir", type=Path, default=Path("bench/artifacts/ov-int8-ab"))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--quiet-wait-s", type=float, default=300.0)
    args = ap.parse_args()

    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    stem = args.checkpoint.stem
    onnx = work / f"{stem}.onnx"
    if not onnx.is_file():
        export_onnx(args.checkpoint, onnx)
    faces, reference = reference_on_face_crops(args.checkpoint, args.batch)
    # Both calibrate on the same face crops (the bundled set written as PNGs), as lib-bench engines does.
    folder, calibration = calibration_folder(None, work, int(faces.shape[1]))
    artifacts = {"nncf": work / f"{stem}.int8.xml", "qdq": work / f"{stem}.int8.onnx"}
    if not artifacts["nncf"].is_file():
        quantize_openvino(onnx, artifacts["nncf"], calibration=folder, check_parity=False)
    if not artifacts["qdq"].is_file():
        quantize_int8(onnx, artifacts["qdq"], calibration=folder, check_parity=False)
    options = {"precision": "int8", "threads": args.threads, "cache_dir": work / "openvino-cache"}
    sides = {name: Side("openvino", artifact, "int8", options) for name, artifact in artifacts.items()}
    with use_protocol(BenchProtocol(quiet_wait_s=args.quiet_wait_s)):
        rates, parity, record = time_side_by_side(sides, faces, reference, batch=args.batch, rounds=args.rounds,
                                                  calls=args.calls, say=print)  # fmt: skip
    stats = ratio_stats(rates["nncf"], rates["qdq"])
    result = mark({"benchmark": "openvino-int8-nncf-vs-qdq", "machine": machine_info("cpu"),
                   "checkpoint": str(args.checkpoint), "calibration": calibration, "batch": args.batch,
                   "rounds": args.rounds, "calls_per_round": args.calls, "faces_per_s": rates,
                   "nncf_vs_qdq": stats, "parity": parity}, record)  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, default=str))
    med = {k: median(v) for k, v in rates.items()}
    lines = [f"# OpenVINO INT8: NNCF IR vs the QDQ ONNX ({describe_machine(result['machine'])})", "",
             markdown_line(record), "", f"Checkpoint {args.checkpoint.name}; both calibrated on {calibration}; batch "
             f"{args.batch}, {args.rounds} interleaved rounds of {args.calls} calls.", "",
             "| artifact | faces/s (median) | parity vs torch FP32 (INT8 limits) | max / mean abs dlogit |",
             "|---|---|---|---|"]  # fmt: skip
    for name in ("nncf", "qdq"):
        p = parity[name]
        lines.append(f"| {name} ({artifacts[name].name}) | {med[name]:.1f} | {'pass' if p['passed'] else 'FAIL'} | "
                     f"{p['max_abs_dlogit']:.3f} / {p['mean_abs_dlogit']:.3f} |")  # fmt: skip
    lines += ["", f"NNCF / QDQ: {format_ratio(stats)}."]
    args.json.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
