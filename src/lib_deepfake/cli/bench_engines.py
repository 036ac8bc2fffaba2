"""``lib-bench engines``: throughput and latency of each engine next to the FP32 eager PyTorch reference, after a
parity check. Imports click only; the benchmark is imported when the command runs."""

from __future__ import annotations

from pathlib import Path

import click

from lib_deepfake.cli.bench_options import csv_list
from lib_deepfake.cli.bench_protocol import protocol_options
from lib_deepfake.cli.common import CONTEXT_SETTINGS, handle_errors, verbosity_options
from lib_deepfake.cli.parity_options import crops_option
from lib_deepfake.engines.registry import list_engines

# From the engine table itself (importing it loads no engine): a new engine is offered here without an edit.
ENGINE_NAMES = tuple(list_engines())


@click.command("engines", context_settings=CONTEXT_SETTINGS)
@click.option("--model", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Checkpoint (ours or official); ONNX/TensorRT artifacts are made from it.")  # fmt: skip
@click.option("--engines", "engines", default="torch,onnxrt", callback=csv_list(str, ENGINE_NAMES),
              help=f"Comma-separated engines from: {', '.join(ENGINE_NAMES)}. The FP32 eager torch reference always "
              "runs.")  # fmt: skip
@click.option("--precision", "precisions", default="fp32", callback=csv_list(str, ("fp32", "fp16", "bf16", "int8")),
              help="Comma-separated precisions: fp32, fp16 (GPU engines), bf16 (torch, openvino; where the CPU has "
              "bf16 instructions), int8 (onnxrt, openvino: calibrated on face crops). Every engine runs every "
              "precision it supports; the others are listed as skipped, with the reason.")  # fmt: skip
@click.option("--batch-sizes", default="1,16,64,256", callback=csv_list(int), help="Comma-separated batch sizes.")
@click.option("--device", default="cpu", help="cpu or cuda[:N].")
@click.option("--warmup", default=3, type=click.IntRange(0, None), help="Untimed calls per engine and batch size.")
@click.option("--iters", default=20, type=click.IntRange(1, None), help="Timed calls per engine and batch size.")
@click.option("--rounds", default=2, type=click.IntRange(1, None),
              help="Interleaving rounds: engines take turns, order reversed every other round.")  # fmt: skip
@click.option("--parity-samples", default=32, type=click.IntRange(1, None),
              help="Face crops for the parity check (at most; the bundled set holds 66).")  # fmt: skip
@crops_option()
@click.option("--threads", type=click.IntRange(1, None), default=None,
              help="ONNX Runtime intra-op threads on CPU [default: usable cores].")  # fmt: skip
@click.option("--channels-last", is_flag=True, help="torch: channels_last memory format (extra torch row).")
@click.option("--cuda-graphs", is_flag=True, help="torch and trt: replay CUDA graphs (extra torch row).")
@click.option("--compile", "compile_", is_flag=True, help="torch: torch.compile (extra torch row; slow first calls).")
@click.option("--provider", type=click.Choice(["cpu", "cuda", "tensorrt"]), default=None,
              help="ONNX Runtime provider [default: from --device].")  # fmt: skip
@click.option("--allow-cpu-fallback", is_flag=True,
              help="ONNX Runtime: run on CPU if the GPU provider is missing (recorded in the results).")  # fmt: skip
@click.option("--work-dir", default=Path("bench/artifacts"), type=click.Path(file_okay=False, path_type=Path),
              help="Where exported ONNX models and TensorRT plans are kept (reused when up to date).")  # fmt: skip
@click.option("--official-size", type=click.IntRange(16, 2048), default=None,
              help="Crop size of an official-format checkpoint [224].")  # fmt: skip
@click.option("--calibration", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Face crops (PNG/JPG folder) that int8 rows calibrate on [the bundled face-crop set].")  # fmt: skip
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the result JSON here, with the markdown table (.md) and plot (.png) beside it.")  # fmt: skip
@click.option("--no-plot", is_flag=True, help="Do not draw the PNG.")
@click.option("--strict-parity", is_flag=True, help="Exit with status 1 when an engine fails the parity check.")
@verbosity_options
@handle_errors
@protocol_options
def engines_cmd(model: Path, engines: tuple[str, ...], precisions: tuple[str, ...], batch_sizes: tuple[int, ...],
                device: str, warmup: int, iters: int, rounds: int, parity_samples: int, threads: int | None,
                channels_last: bool, cuda_graphs: bool, compile_: bool, provider: str | None,
                allow_cpu_fallback: bool, work_dir: Path, official_size: int | None, calibration: Path | None,
                crops: Path | None,
                json_out: Path | None, no_plot: bool, strict_parity: bool, verbose: int,
                quiet: bool) -> None:  # fmt: skip
    """Throughput (faces/s) and latency p50/p90/p99 of each engine x precision x batch size, next to the FP32
    eager PyTorch reference, after a parity check on identical inputs. Prints a markdown table."""
    from lib_deepfake.bench.report import to_markdown, write_results
    from lib_deepfake.bench.runner import EngineBenchConfig, run_engine_bench
    from lib_deepfake.errors import ParityError

    cfg = EngineBenchConfig(
        model=model, engines=engines, precisions=precisions, batch_sizes=batch_sizes, device=device, warmup=warmup,
        iters=iters, rounds=rounds, parity_samples=parity_samples, threads=threads,
        torch_options={"channels_last": channels_last, "cuda_graphs": cuda_graphs, "compile": compile_},
        ort_provider=provider, allow_cpu_fallback=allow_cpu_fallback, trt_cuda_graphs=cuda_graphs,
        work_dir=work_dir, official_input_size=official_size, calibration=calibration, parity_crops=crops,
    )  # fmt: skip
    progress = None if quiet else (lambda message: click.echo(f"... {message}", err=True))
    result = run_engine_bench(cfg, progress=progress)
    if json_out is not None:
        written = write_results(result, json_out, png=not no_plot)
        click.echo("wrote " + ", ".join(str(p) for p in written.values()), err=True)
    click.echo(to_markdown(result))
    failed = [e["label"] for e in result["engines"] if e["parity"].get("passed") is False]
    if failed and strict_parity:
        raise ParityError(f"parity check failed for: {', '.join(failed)}")
