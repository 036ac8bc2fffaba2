"""Ray-free parts of the scale-out: the --ray address, pool sizing, the crash ledger, URL listing and staging."""

from __future__ import annotations

import http.server
import threading
from functools import partial
from pathlib import Path

import pytest

from lib_deepfake.scale.planning import (
    CrashLedger,
    RayScanError,
    blocks_for,
    looks_like_address,
    plan_pool,
    resolve_ray_option,
)
from lib_deepfake.scale.remote import RemoteReadError, expand_urls, is_url, stage, url_name


@pytest.mark.parametrize(
    ("value", "ok"),
    [("auto", True), ("local", True), ("ray://head:10001", True), ("10.0.0.5:6379", True), ("head-0.svc:6379", True),
     ("[::1]:6379", True), ("videos/", False), ("clip.mp4", False), ("/data/x", False)],
)  # fmt: skip
def test_address_forms(value, ok):
    assert looks_like_address(value) is ok


def test_ray_option_value_that_is_an_input_goes_back_to_the_inputs():
    assert resolve_ray_option(None, ["a.mp4"]) == (None, ["a.mp4"])
    assert resolve_ray_option("local", ["a.mp4"]) == ("local", ["a.mp4"])
    assert resolve_ray_option("videos/", ["b.mp4"]) == ("auto", ["videos/", "b.mp4"])


def test_pool_on_gpus_is_one_actor_per_gpu():
    p = plan_pool(64, 8, on_cuda=True)
    assert (p.workers, p.gpus_per_worker, p.cpus_per_worker) == (8, 1.0, 4.0)
    assert p.threads == 4 and p.decode_workers == 3 and p.videos_per_call == 6  # every decode process kept busy
    half = plan_pool(16, 2, on_cuda=True, gpus_per_worker=0.5)
    assert half.workers == 4 and half.gpus_per_worker == 0.5


def test_pool_on_two_cores_leaves_cpu_for_ray_data():
    p = plan_pool(2, 0, on_cuda=False)
    assert p.workers == 1 and p.cpus_per_worker == 1.5 and p.gpus_per_worker == 0
    two = plan_pool(2, 0, on_cuda=False, workers=2)
    assert two.cpus_per_worker == 0.75 and two.workers * two.cpus_per_worker <= 1.5
    assert two.threads == 1 and two.decode_workers == 1 and two.videos_per_call == 2


def test_pool_refuses_impossible_and_contradictory_settings():
    with pytest.raises(RayScanError, match="0 GPU"):
        plan_pool(8, 0, on_cuda=True)
    with pytest.raises(RayScanError, match="need 4 GPUs"):
        plan_pool(8, 2, on_cuda=True, workers=4)
    with pytest.raises(RayScanError, match="--device cuda"):
        plan_pool(8, 2, on_cuda=False, gpus_per_worker=1)
    with pytest.raises(RayScanError, match="gpus-per-worker > 0"):
        plan_pool(8, 2, on_cuda=True, gpus_per_worker=0)
    # a remote (possibly autoscaling) cluster: the plan stands, Ray waits for the nodes
    assert plan_pool(8, 0, on_cuda=True, workers=4, strict=False).workers == 4


def test_blocks_match_calls():
    p = plan_pool(2, 0, on_cuda=False, workers=2, videos_per_call=2)
    assert blocks_for(7, p) == 4 and blocks_for(0, p) == 1


def test_ledger_blames_solo_crashes_only_and_bounds_them():
    led = CrashLedger(retries=1)
    batch = ["a", "b", "c"]
    assert led.status(batch) == [(0, 0)] * 3
    led.begin(batch)  # the worker dies during the batched attempt: every video of it was in flight
    assert led.status(batch) == [(1, 0)] * 3
    assert not any(led.should_give_up(p) for p in batch)  # batched crashes only switch to solo mode
    for p in ("a", "c"):  # retry, one at a time: a and c finish, b kills its worker twice
        led.begin([p], solo=True)
        led.end([p], solo=True)
    led.begin(["b"], solo=True)
    assert not led.should_give_up("b")
    led.begin(["b"], solo=True)
    assert led.solo_crashes("b") == 2 and led.should_give_up("b")
    led.give_up("b")
    st = led.stats()
    assert st["gave_up"] == ["b"] and st["videos_with_worker_crashes"] == 3 and st["worker_crashes"] == 5


def test_url_helpers():
    assert is_url("s3://bucket/a.mp4") and is_url("https://x/y.mp4") and not is_url("/data/a.mp4")
    assert not is_url("C:\\videos\\a.mp4")
    assert url_name("https://h/p/a%20b.mp4?sig=1") == "a b.mp4"


def test_stage_and_list_file_urls(tmp_path):
    src = tmp_path / "bucket"
    (src / "sub").mkdir(parents=True)
    (src / "a.mp4").write_bytes(b"A" * 1000)
    (src / "sub" / "b.mkv").write_bytes(b"B" * 10)
    (src / "notes.txt").write_text("x")
    urls = expand_urls([f"file://{src}/"])
    assert urls == [f"file://{src}/a.mp4", f"file://{src}/sub/b.mkv"]
    assert len(expand_urls([f"file://{src}/"], all_files=True)) == 3
    got = stage(urls[0], tmp_path / "stage")
    assert got.read_bytes() == b"A" * 1000 and got.name.endswith("-a.mp4")
    with pytest.raises(RemoteReadError, match="no such object|cannot"):
        stage(f"file://{src}/missing.mp4", tmp_path / "stage")
    assert not list((tmp_path / "stage").glob("*.part"))


@pytest.fixture
def http_root(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_stage_http(http_root, tmp_path):
    root, base = http_root
    (root / "clip.mp4").write_bytes(bytes(range(256)) * 40)
    got = stage(f"{base}/clip.mp4", tmp_path / "s", timeout_s=10)
    assert got.read_bytes() == (root / "clip.mp4").read_bytes()
    with pytest.raises(RemoteReadError, match="HTTP 404"):
        stage(f"{base}/nope.mp4", tmp_path / "s", timeout_s=10)
    with pytest.raises(RemoteReadError, match="no listing"):
        expand_urls([f"{base}/"])


def test_unknown_scheme_without_fsspec_is_a_clear_error(tmp_path, monkeypatch):
    import lib_deepfake._optional as opt

    monkeypatch.setattr(opt, "is_installed", lambda name: False)
    with pytest.raises(RemoteReadError, match="needs fsspec"):
        stage("ftp://host/a.mp4", Path(tmp_path))


def _cli():
    import click

    from lib_deepfake.cli.infer import RAY_OPTIONS

    @click.command()
    @click.argument("inputs", nargs=-1)
    @RAY_OPTIONS
    def cmd(inputs, **options):
        ray = RAY_OPTIONS.from_options(options)
        assert not options  # the group took its own values
        click.echo(repr((list(inputs), ray.address, ray.workers, ray.gpus_per_worker, ray.cpus_per_worker,
                         ray.retries)))  # fmt: skip

    return cmd


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        (["a.mp4"], (["a.mp4"], None, None, None, None, 2)),
        (["a.mp4", "--ray"], (["a.mp4"], "auto", None, None, None, 2)),
        (["a.mp4", "--ray", "local", "--ray-workers", "2"], (["a.mp4"], "local", 2, None, None, 2)),
        (["a.mp4", "--ray=ray://head:10001", "--gpus-per-worker", "0.5", "--ray-retries", "0"],
         (["a.mp4"], "ray://head:10001", None, 0.5, None, 0)),
        (["--ray", "videos/", "b.mp4"], (["b.mp4"], "videos/", None, None, None, 2)),  # fixed by resolve_ray_option
    ],
)  # fmt: skip
def test_cli_options_parse(argv, expect):
    from click.testing import CliRunner

    res = CliRunner().invoke(_cli(), argv)
    assert res.exit_code == 0, res.output
    assert res.output.strip() == repr(expect)


def test_run_ray_from_cli_needs_an_input(tmp_path):
    import click

    from lib_deepfake.scale.cli import RayOptions, run_ray_from_cli

    with pytest.raises(click.UsageError, match="no INPUT"):
        run_ray_from_cli(None, [], tmp_path, RayOptions(address="auto"))


def test_scale_package_imports_no_ray():
    import subprocess
    import sys

    code = ("import sys, lib_deepfake.scale, lib_deepfake.scale.cli, lib_deepfake.scale.planning, "
            "lib_deepfake.scale.remote, lib_deepfake.scale.ray_connection, lib_deepfake.scale.ray_worker, "
            "lib_deepfake.scale.ray_scan; print('ray' in sys.modules)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_ray_errors_are_explained_in_one_line():
    from lib_deepfake.scale.ray_scan import explain_ray_error

    text = ("The actor died because of an error raised in its creation task, ray::MapWorker().__init__()\n"
            "  File \"/x/checkpoint.py\", line 84, in safe_torch_load\n"
            "lib_deepfake.errors.CheckpointError: cannot read checkpoint /m.pth: not a checkpoint\n")  # fmt: skip
    assert explain_ray_error(RuntimeError(text)) == (
        "a worker could not start or run: CheckpointError: cannot read checkpoint /m.pth: not a checkpoint"
    )
    assert explain_ray_error(ConnectionError("GCS\n  down")) == "ConnectionError: GCS down"
