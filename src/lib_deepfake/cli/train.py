"""lib-train: train a LIB detector (official layout, both recipes, DDP via torchrun) or evaluate a checkpoint.

Only click and the shared CLI helpers are imported at module level: ``lib-train --help`` loads no torch,
albumentations, scikit-learn, TensorBoard or OpenCV.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from lib_deepfake.cli.common import CONTEXT_SETTINGS, handle_errors, progress, verbosity_options


class FramesType(click.ParamType):
    """``all`` (every listed frame) or a positive integer."""

    name = "all|N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int) or value is None:
            return value
        text = str(value).strip().lower()
        if text in ("all", "0"):
            return "all"
        try:
            n = int(text)
        except ValueError:
            self.fail(f"{value!r} is neither 'all' nor an integer", param, ctx)
        if n < 1:
            self.fail(f"{value!r} must be 'all' or >= 1", param, ctx)
        return n


class FloatListType(click.ParamType):
    """Comma-separated floats; ``[1,2,10]`` and ``1,2,10`` both work (the official parser split characters)."""

    name = "F,F,F"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        text = str(value).strip().strip("[]()")
        try:
            values = tuple(float(v) for v in text.split(",") if v.strip())
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of numbers", param, ctx)
        if len(values) != 3:
            self.fail(f"expected three numbers (CE,GIL,LIL), got {len(values)}", param, ctx)
        return values


_MODELS = ["resnet", "resnet34", "mobilenet", "efficientnet"] + [f"efficientnet-b{i}" for i in range(8)]


def _threshold_rule(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """``eer``, ``youden`` or ``target-fpr:F``, normalised; a bad rule is a usage error before anything loads."""
    from lib_deepfake.errors import ContractError
    from lib_deepfake.model.threshold import ThresholdRule

    try:
        return str(ThresholdRule.parse(value))
    except ContractError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


class _Bars:
    """Progress bars with loss/throughput on an interactive stderr (rank 0 only)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet or int(os.environ.get("RANK", "0")) != 0
        self.bar: Any = None

    def wrap(self, iterable: Any, total: int, desc: str) -> Any:
        bar = progress(iterable, total=total, desc=desc, quiet=self.quiet)
        self.bar = bar if hasattr(bar, "set_postfix") else None
        return bar

    def on_step(self, stats: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.set_postfix(
                loss=f"{stats['loss']:.4f}", img_s=f"{stats['img_s']:.1f}", lr=f"{stats['lr']:.2e}", refresh=False
            )


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--dataset-root",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder holding NAME/{train,val,test}_{real,fake}.txt; relative list paths resolve against it.",
)
@click.option("--dataset", "datasets", required=True, help="Dataset name(s), comma-separated: FF++,Celeb-DF-v2.")
@click.option(
    "--model",
    "backbone",
    type=click.Choice(_MODELS, case_sensitive=False),
    default="resnet",
    help="Backbone of every LIB (resnet = ResNet-34).",
)
@click.option("--num-libs", type=click.IntRange(min=2), default=4, help="Number of LIBs (backbones).")
@click.option(
    "--width-mult",
    type=click.FloatRange(min=0, min_open=True, max=4),
    default=1.0,
    help="Backbone width multiplier (tiny CPU models; ImageNet weights need 1.0).",
)
@click.option("--size", type=click.IntRange(min=16), default=224, help="Input side S in pixels.")
@click.option(
    "--channel-order",
    type=click.Choice(["rgb", "bgr"], case_sensitive=False),
    default=None,
    help="Channel order of the weights [default: bgr for --recipe official, rgb otherwise].",
)
@click.option("--pretrained/--no-pretrained", default=True, help="Start the backbones from ImageNet weights.")
@click.option("--epochs", type=click.IntRange(min=1), default=10)
@click.option("--batch-size", type=click.IntRange(min=2), default=256, help="Global batch (split over DDP ranks).")
@click.option("--eval-batch-size", type=click.IntRange(min=1), default=None, help="[default: per-rank batch]")
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Run folder (checkpoints, metrics.jsonl, tensorboard/). Required unless --eval-only.",
)
@click.option(
    "--recipe",
    type=click.Choice(["default", "official"]),
    default="default",
    help="official = the published schedule and selection, for comparison with the paper.",
)
@click.option(
    "--resume",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Checkpoint to resume (ours: full state; official: weights only) or, with --eval-only, evaluate.",
)
@click.option("--eval-only", is_flag=True, help="Evaluate --resume on --split and exit.")
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="test", help="Split for --eval-only.")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="--eval-only: also write the result here.",
)
@click.option(
    "--frames-per-video",
    type=FramesType(),
    default="all",
    help="Training frames per video and epoch (N spread uniformly, re-drawn every epoch).",
)
@click.option(
    "--eval-frames-per-video",
    type=FramesType(),
    default=None,
    help="Evaluation frames per video [default: 32 (default recipe), all (official)].",
)
@click.option(
    "--real-oversample",
    default="official",
    help="Repeat real training frames: official (FF++/DFDC-Preview x4, Celeb-DF-v2 x6, DFDC x5), none, N.",
)
@click.option("--lil-loss/--no-lil-loss", "lil", default=True, help="Local Information Loss.")
@click.option("--gil-loss/--no-gil-loss", "gil", default=True, help="Global Information Loss.")
@click.option(
    "--lil-method",
    type=click.Choice(["mi", "distance"]),
    default="mi",
    help="mi = the form official training uses; distance = the pairwise form.",
)
@click.option("--mi-calculator", type=click.Choice(["kl", "w"]), default="kl", help="KL or Wasserstein (Sinkhorn).")
@click.option(
    "--kl-reduction",
    type=click.Choice(["mean", "batchmean"]),
    default=None,
    help="[default: mean (official, element mean) / batchmean (default recipe)]",
)
@click.option(
    "--balance",
    type=click.Choice(["auto", "hyper", "none"]),
    default="auto",
    help="auto = learnable uncertainty weights; hyper = fixed --scales.",
)
@click.option("--scales", type=FloatListType(), default="1,2,10", help="hyper scales in the order CE,GIL,LIL.")
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=1.5)
@click.option("--mixup/--no-mixup", default=True)
@click.option("--alpha", type=click.FloatRange(min=0, min_open=True), default=0.5, help="Mixup Beta(α, α).")
@click.option("--augment/--no-augment", default=True, help="The official augmentation list.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3)
@click.option(
    "--weight-decay",
    type=click.FloatRange(min=0),
    default=None,
    help="[default: 1e-6 Adam L2 (official) / 1e-2 AdamW (default recipe)]",
)
@click.option("--warmup-epochs", type=click.FloatRange(min=0), default=None, help="[default: 1 (default recipe)]")
@click.option("--device", default="cpu", help="cpu, cuda or cuda:N (torchrun: each rank uses cuda:LOCAL_RANK).")
@click.option(
    "--amp",
    type=click.Choice(["auto", "bf16", "fp16", "off"]),
    default="auto",
    help="Mixed precision; auto = bf16 on CUDA (fp16 without bf16 support), off on CPU.",
)
@click.option("--grad-accum", type=click.IntRange(min=1), default=1, help="Micro-batches per optimiser step.")
@click.option("--channels-last", is_flag=True, help="NHWC memory format (faster convolutions on recent GPUs).")
@click.option("--seed", type=int, default=0)
@click.option("--workers", type=click.IntRange(min=0), default=None, help="[default: 0 on CPU, min(8, cores) on CUDA]")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="torch CPU threads [default: torch's]; 1 is much faster on a busy machine.",
)
@click.option("--save-every", type=click.IntRange(min=0), default=10, help="Also keep model_{epoch}.pth every N.")
@click.option(
    "--threshold-rule",
    default="eer",
    show_default=True,
    callback=_threshold_rule,
    help="How the decision threshold stored in the checkpoints' model card is chosen on the validation videos at "
    "the end of training: eer, youden or target-fpr:F (e.g. target-fpr:0.01: at most 1% of real videos flagged). "
    "lib-export carries it into manifests and lib-infer/lib-eval use it by default.",
)
@click.option("--tensorboard/--no-tensorboard", default=True)
@verbosity_options
@handle_errors
def main(**opts: Any) -> None:
    """Train a LIB deepfake detector on face crops in the official list layout, or evaluate a checkpoint."""
    verbose, quiet = opts.pop("verbose"), opts.pop("quiet")
    del verbose
    datasets = tuple(d.strip() for d in opts.pop("datasets").split(",") if d.strip())
    bars = _Bars(quiet)
    from lib_deepfake.train.loop import Hooks

    hooks = Hooks(wrap=bars.wrap, on_step=bars.on_step)
    if opts["eval_only"]:
        _eval_only(opts, datasets, hooks)
        return
    if opts["output"] is None:
        raise click.UsageError("--output is required for training")
    from lib_deepfake.train.config import make_train_config
    from lib_deepfake.train.fit import fit

    channel = opts["channel_order"].upper() if opts["channel_order"] else None
    cfg = make_train_config(
        opts["recipe"],
        dataset_root=opts["dataset_root"],
        datasets=datasets,
        output=opts["output"],
        frames_per_video=opts["frames_per_video"],
        eval_frames_per_video=opts["eval_frames_per_video"],
        real_oversample=opts["real_oversample"],
        augment=opts["augment"],
        backbone=opts["backbone"],
        num_libs=opts["num_libs"],
        width_mult=opts["width_mult"],
        input_size=opts["size"],
        channel_order=channel,
        pretrained=opts["pretrained"],
        gil=opts["gil"],
        lil=opts["lil"],
        lil_method=opts["lil_method"],
        mi_calculator=opts["mi_calculator"],
        kl_reduction=opts["kl_reduction"],
        temperature=opts["temperature"],
        balance=opts["balance"],
        scales=opts["scales"],
        mixup=opts["mixup"],
        alpha=opts["alpha"],
        epochs=opts["epochs"],
        batch_size=opts["batch_size"],
        eval_batch_size=opts["eval_batch_size"],
        lr=opts["lr"],
        weight_decay=opts["weight_decay"],
        warmup_epochs=opts["warmup_epochs"],
        grad_accum=opts["grad_accum"],
        device=opts["device"],
        amp=opts["amp"],
        channels_last=opts["channels_last"],
        seed=opts["seed"],
        workers=opts["workers"],
        threads=opts["threads"],
        save_every=opts["save_every"],
        tensorboard=opts["tensorboard"],
        threshold_rule=opts["threshold_rule"],
    )
    summary = fit(cfg, resume=opts["resume"], hooks=hooks)
    if int(os.environ.get("RANK", "0")) == 0:
        best = summary["best_auc"]
        best_text = f"{best:.4f}" if best is not None and best > -1 else "n/a"
        click.echo(
            f"done: {summary['epochs']} epochs, best {cfg.select_split} AUC {best_text} at epoch "
            f"{summary['best_epoch']}; checkpoints in {summary['output']}"
        )
        click.echo(_threshold_line(summary))


def _threshold_line(summary: dict[str, Any]) -> str:
    """What the end of training stored as the decision threshold, or why it stored none."""
    from lib_deepfake.model.threshold import ThresholdChoice

    if summary.get("threshold"):
        choice = ThresholdChoice.from_dict(summary["threshold"])
        return f"threshold: {choice.describe()}, in the model card of {summary.get('card_in', 'model_best.pth')}"
    return f"threshold: none stored ({summary.get('threshold_note') or 'no model card written'})"


def _eval_only(opts: dict[str, Any], datasets: tuple[str, ...], hooks: Any) -> None:
    if opts["resume"] is None:
        raise click.UsageError("--eval-only needs --resume CHECKPOINT")
    if opts["threads"] is not None:
        import torch

        torch.set_num_threads(opts["threads"])
    from lib_deepfake.train.evaluate import evaluate_checkpoint

    frames = opts["eval_frames_per_video"]
    if frames is None:
        frames = "all" if opts["recipe"] == "official" else 32
    # --size only matters for official checkpoints, which do not record their input size.
    size_source = click.get_current_context().get_parameter_source("size")
    size = opts["size"] if size_source == click.core.ParameterSource.COMMANDLINE else None
    result = evaluate_checkpoint(
        opts["resume"],
        opts["dataset_root"],
        datasets,
        opts["split"],
        input_size=size,
        frames_per_video=None if frames == "all" else int(frames),
        batch_size=opts["eval_batch_size"] or min(opts["batch_size"], 256),
        device=opts["device"],
        amp=opts["amp"],
        workers=opts["workers"],
        channels_last=opts["channels_last"],
        hooks=hooks,
    )
    if int(os.environ.get("RANK", "0")) != 0:
        return
    text = json.dumps(result, indent=2)
    if opts["json_path"] is not None:
        from lib_deepfake.atomic import write_json_atomic

        write_json_atomic(opts["json_path"], result)
    if opts["output"] is not None:
        from lib_deepfake.atomic import write_json_atomic

        write_json_atomic(Path(opts["output"]) / f"eval-{opts['split']}.json", result)
    click.echo(text)


if __name__ == "__main__":  # `torchrun ... -m lib_deepfake.cli.train`
    main()
