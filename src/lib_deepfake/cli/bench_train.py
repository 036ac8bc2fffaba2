"""``lib-bench train``: throughput of the whole default-recipe training step on random faces already on the device.
Imports click only; torch is imported when the command runs."""

from __future__ import annotations

import json
from pathlib import Path

import click

from lib_deepfake.cli.bench_protocol import protocol_options
from lib_deepfake.cli.common import CONTEXT_SETTINGS, handle_errors, verbosity_options


@click.command("train", context_settings=CONTEXT_SETTINGS, epilog="Reference: docs/train.md")
@click.option("--backbone", default="mobilenet", help="LIB backbone.")
@click.option("--num-libs", default=2, type=click.IntRange(1, None), help="Number of LIBs.")
@click.option("--width-mult", default=0.5, type=click.FloatRange(0, None, min_open=True), help="Width multiplier.")
@click.option("--size", default=64, type=click.IntRange(16, 2048), help="Face crop side in pixels.")
@click.option("--batch-size", default=16, type=click.IntRange(1, None), help="Faces per step.")
@click.option("--device", default="cpu", help="cpu or cuda[:N].")
@click.option("--amp", default="auto", type=click.Choice(["auto", "bf16", "fp16", "off"]),
              help="Mixed precision (auto: bf16 on CUDA where supported, else fp16; off on CPU).")  # fmt: skip
@click.option("--channels-last", is_flag=True, help="channels_last memory format.")
@click.option("--threads", type=click.IntRange(1, None), default=None, help="torch intra-op threads.")
@click.option("--warmup", default=3, type=click.IntRange(0, None), help="Untimed steps first.")
@click.option("--iters", default=10, type=click.IntRange(1, None), help="Timed steps.")
@click.option("--machine", default="", help="Free text naming the machine, stored in the result.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output stem: writes STEM.json and STEM.md.")  # fmt: skip
@verbosity_options
@handle_errors
@protocol_options(gate_at_start=True)
def train_cmd(backbone: str, num_libs: int, width_mult: float, size: int, batch_size: int, device: str, amp: str,
              channels_last: bool, threads: int | None, warmup: int, iters: int, machine: str, out: Path,
              verbose: int, quiet: bool) -> None:  # fmt: skip
    """Training-step throughput (uint8 faces -> normalise -> mixup -> forward -> LIB losses -> auto balance ->
    backward -> AdamW step): p50/p90 step time and images/s, synchronised, after warm-up. Prints the JSON."""
    import torch

    from lib_deepfake.atomic import atomic_open, write_json_atomic
    from lib_deepfake.train.bench import bench_train_step, format_markdown

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    r = bench_train_step(backbone=backbone, num_libs=num_libs, width_mult=width_mult, size=size,
                         batch_size=batch_size, device=device, amp=amp, channels_last=channels_last, warmup=warmup,
                         iters=iters)  # fmt: skip
    r["environment"]["machine"] = machine
    write_json_atomic(out.with_suffix(".json"), r)
    with atomic_open(out.with_suffix(".md")) as fh:
        fh.write(format_markdown(r))
    click.echo(json.dumps(r, indent=2))
