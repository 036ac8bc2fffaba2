"""lib-bench: benchmarks of the engines (against the PyTorch reference), decoders, face crops and detectors, and an
``env`` report of what can run here.

Everything heavy is imported inside the commands, so ``lib-bench --help`` needs neither onnxruntime nor TensorRT.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from lib_deepfake.cli.common import CONTEXT_SETTINGS, handle_errors, verbosity_options

# The engine table lives in lib_deepfake.engines.registry; this list only feeds --help (a test checks they agree).
_ENGINE_NAMES = ("torch", "onnxrt", "trt")


def _csv(kind: type, allowed: tuple[str, ...] | None = None):  # noqa: ANN202 - click callback factory
    def parse(ctx: click.Context, param: click.Parameter, value: str | None):  # noqa: ANN202
        if value is None:
            return None
        items = [v.strip() for v in value.split(",") if v.strip()]
        if not items:
            raise click.BadParameter("expected a comma-separated list")
        try:
            parsed = tuple(kind(v) for v in items)
        except ValueError:
            raise click.BadParameter(f"expected comma-separated {kind.__name__} values, got {value!r}") from None
        if allowed is not None:
            bad = [v for v in parsed if v not in allowed]
            if bad:
                raise click.BadParameter(f"{', '.join(map(str, bad))} not in {', '.join(allowed)}")
        if kind is int and min(parsed) < 1:
            raise click.BadParameter("values must be positive")
        return parsed

    return parse


def _write_json(path: Path, payload: dict) -> None:
    from lib_deepfake.atomic import write_json_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, payload)


@click.group(context_settings=CONTEXT_SETTINGS)
def main() -> None:
    """Benchmark lib-deepfake's engines, decoders, face crops and detectors, with the machine named in every
    result; `lib-bench env` says what can run here."""


@main.command("engines", context_settings=CONTEXT_SETTINGS)
@click.option("--model", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Checkpoint (ours or official); ONNX/TensorRT artifacts are made from it.")  # fmt: skip
@click.option("--engines", "engines", default="torch,onnxrt", callback=_csv(str, _ENGINE_NAMES),
              help=f"Comma-separated engines from: {', '.join(_ENGINE_NAMES)}. The FP32 eager torch reference always "
              "runs.")  # fmt: skip
@click.option("--precision", "precisions", default="fp32", callback=_csv(str, ("fp32", "fp16", "bf16")),
              help="Comma-separated precisions (fp32, fp16; bf16 for torch).")  # fmt: skip
@click.option("--batch-sizes", default="1,16,64,256", callback=_csv(int), help="Comma-separated batch sizes.")
@click.option("--device", default="cpu", help="cpu or cuda[:N].")
@click.option("--warmup", default=3, type=click.IntRange(0, None), help="Untimed calls per engine and batch size.")
@click.option("--iters", default=20, type=click.IntRange(1, None), help="Timed calls per engine and batch size.")
@click.option("--rounds", default=2, type=click.IntRange(1, None),
              help="Interleaving rounds: engines take turns, order reversed every other round.")  # fmt: skip
@click.option("--parity-samples", default=32, type=click.IntRange(1, None), help="Random crops for the parity check.")
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
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the result JSON here, with the markdown table (.md) and plot (.png) beside it.")  # fmt: skip
@click.option("--no-plot", is_flag=True, help="Do not draw the PNG.")
@click.option("--strict-parity", is_flag=True, help="Exit with status 1 when an engine fails the parity check.")
@verbosity_options
@handle_errors
def engines_cmd(model: Path, engines: tuple[str, ...], precisions: tuple[str, ...], batch_sizes: tuple[int, ...],
                device: str, warmup: int, iters: int, rounds: int, parity_samples: int, threads: int | None,
                channels_last: bool, cuda_graphs: bool, compile_: bool, provider: str | None,
                allow_cpu_fallback: bool, work_dir: Path, official_size: int | None, json_out: Path | None,
                no_plot: bool, strict_parity: bool, verbose: int, quiet: bool) -> None:  # fmt: skip
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
        work_dir=work_dir, official_input_size=official_size,
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


@main.command("env", context_settings=CONTEXT_SETTINGS)
@click.option("--device", default="cpu", help="Judge availability for this device (cpu or cuda[:N]).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@verbosity_options
@handle_errors
def env_cmd(device: str, as_json: bool, verbose: int, quiet: bool) -> None:
    """Which engines, ONNX Runtime providers, decoders, face detector and crop backend are usable here, and why
    not where they aren't."""
    from lib_deepfake.bench.env import env_report, format_env

    report = env_report(device)
    click.echo(json.dumps(report, indent=2, default=str) if as_json else format_env(report))


def _markdown_of(module: object, result: dict) -> str | None:
    fmt = getattr(module, "format_markdown", None) or getattr(module, "_to_markdown", None)
    return fmt(result) if callable(fmt) else None


def _emit(module: object, result: dict, json_out: Path | None) -> None:
    text = _markdown_of(module, result)
    if json_out is not None:
        _write_json(json_out, result)
        if text is not None:
            json_out.with_suffix(".md").write_text(text, encoding="utf-8")
        click.echo(f"wrote {json_out}", err=True)
    click.echo(text if text is not None else json.dumps(result, indent=2, default=str))


_JSON_OPTION = click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
                            help="Write the result JSON here (and the markdown table beside it).")  # fmt: skip


@main.command("decode", context_settings=CONTEXT_SETTINGS)
@click.option("--clip-dir", default=Path("bench/clips"), type=click.Path(file_okay=False, path_type=Path),
              help="Where the generated benchmark clips live (created when missing).")  # fmt: skip
@click.option("--plans", default=None, help="Comma-separated sampling plans [default: the module's set].")
@click.option("--decoder", default="pyav", type=click.Choice(["pyav", "dali"]), help="Decoder.")
@click.option("--repeats", default=2, type=click.IntRange(1, None), help="Runs per measurement (best kept).")
@click.option("--threads", default=0, type=click.IntRange(0, None), help="Decoder threads (0 = automatic).")
@_JSON_OPTION
@verbosity_options
@handle_errors
def decode_cmd(clip_dir: Path, plans: str | None, decoder: str, repeats: int, threads: int, json_out: Path | None,
               verbose: int, quiet: bool) -> None:  # fmt: skip
    """Decode throughput per clip and sampling plan (PyAV on CPU; DALI where it can decode)."""
    from lib_deepfake.bench import decode as module

    kwargs: dict = {"repeats": repeats, "decoder": decoder, "threads": threads}
    if plans:
        kwargs["plans"] = tuple(p.strip() for p in plans.split(",") if p.strip())
    _emit(module, module.run_decode_bench(clip_dir, **kwargs), json_out)


@main.command("crops", context_settings=CONTEXT_SETTINGS)
@click.option("--device", default="cpu", help="cpu or cuda[:N].")
@click.option("--frame-size", default="1080x1920", help="HxW of the frames.")
@click.option("--crop-size", default=224, type=click.IntRange(16, 2048), help="Output crop side S.")
@click.option("--faces", default=32, type=click.IntRange(1, None), help="Boxes per batch.")
@click.option("--frames", default=4, type=click.IntRange(1, None), help="Frames per batch.")
@click.option("--iters", default=10, type=click.IntRange(1, None), help="Timed batches per backend.")
@click.option("--warmup", default=2, type=click.IntRange(0, None), help="Untimed batches first.")
@_JSON_OPTION
@verbosity_options
@handle_errors
def crops_cmd(device: str, frame_size: str, crop_size: int, faces: int, frames: int, iters: int, warmup: int,
              json_out: Path | None, verbose: int, quiet: bool) -> None:  # fmt: skip
    """Face crops/s of the native crop library and the torch path."""
    from lib_deepfake.bench import crops as module

    try:
        h, w = (int(v) for v in frame_size.lower().split("x"))
    except ValueError:
        raise click.BadParameter("expected HxW, e.g. 1080x1920", param_hint="--frame-size") from None
    result = module.run_crop_bench(device, (h, w), crop_size, faces, iters, frames=frames, warmup=warmup)
    _emit(module, result, json_out)


@main.command("detect", context_settings=CONTEXT_SETTINGS)
@click.option("--detector", default="centerface", help="Registered face detector.")
@click.option("--device", default="cpu", type=click.Choice(["cpu", "cuda"]), help="Detector device.")
@click.option("--width", default=640, type=click.IntRange(16, None), help="Frame width.")
@click.option("--height", default=360, type=click.IntRange(16, None), help="Frame height.")
@click.option("--batch-sizes", default="1,8", callback=_csv(int), help="Comma-separated detector batch sizes.")
@click.option("--frames", default=32, type=click.IntRange(1, None), help="Frames per timed pass.")
@click.option("--repeats", default=3, type=click.IntRange(1, None), help="Timed passes per batch size.")
@click.option("--threads", type=click.IntRange(1, None), default=None, help="ONNX Runtime threads.")
@_JSON_OPTION
@verbosity_options
@handle_errors
def detect_cmd(detector: str, device: str, width: int, height: int, batch_sizes: tuple[int, ...], frames: int,
               repeats: int, threads: int | None, json_out: Path | None, verbose: int,
               quiet: bool) -> None:  # fmt: skip
    """Face-detector frames/s per batch size."""
    from lib_deepfake.bench import detect as module
    from lib_deepfake.faces.base import DetectorConfig

    result = module.run_detector_bench(detector, width, height, batch_sizes, frames, repeats,
                                       config=DetectorConfig(threads=threads, device=device))  # fmt: skip
    _emit(module, result, json_out)


def _register_optional_commands() -> None:
    # `lib-bench pipeline` and `lib-bench gpu-check` live in modules owned by other parts; each registers itself
    # with register(group) and must stay cheap to import.
    # Checked with find_spec, not try/except ImportError, so a broken module fails loudly instead of vanishing.
    import importlib
    import importlib.util

    for name in ("lib_deepfake.cli.bench_pipeline", "lib_deepfake.cli.bench_gpu_check"):
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).register(main)


_register_optional_commands()
