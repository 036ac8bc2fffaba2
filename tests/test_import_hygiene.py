"""`import lib_deepfake` and every `lib-* --help` import nothing heavy and work without onnxruntime, TensorRT,
DALI or CUDA (Polygraphy's dependency tests). Runs in subprocesses so this test session's imports don't leak in."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

HEAVY = ("onnxruntime", "onnx", "tensorrt", "nvidia.dali", "ray", "cupy", "pycuda", "onnxscript", "albumentations",
         "sklearn", "tensorboard", "matplotlib", "skimage")  # fmt: skip
COMMANDS = ["lib-train", "lib-prep", "lib-export", "lib-infer", "lib-bench", "lib-eval"]
MODULES = ["lib_deepfake", "lib_deepfake.model", "lib_deepfake.engines", "lib_deepfake.video", "lib_deepfake.faces",
           "lib_deepfake.pipeline", "lib_deepfake.export", "lib_deepfake.bench", "lib_deepfake.scale"]  # fmt: skip


def _loaded_after(code: str) -> list[str]:
    roots = sorted({h.split(".")[0] for h in HEAVY})
    report = f"import json, sys\nprint(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {roots!r})))\n"
    probe = textwrap.dedent(code) + "\n" + report
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    loaded = json.loads(out.strip().splitlines()[-1])
    return [m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY)]


@pytest.mark.parametrize("module", MODULES)
def test_import_is_light(module: str) -> None:
    assert _loaded_after(f"import {module}") == []


def _entry_point_modules() -> dict[str, str]:
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group="console_scripts") if ep.name in COMMANDS}


def test_all_commands_registered() -> None:
    assert sorted(_entry_point_modules()) == sorted(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_is_light_and_exits_zero(command: str) -> None:
    target = _entry_point_modules()[command]
    module, func = target.split(":")
    code = textwrap.dedent(
        f"""
        import sys
        from {module} import {func} as cli
        try:
            cli.main(["--help"], standalone_mode=False)
        except SystemExit as exc:
            assert exc.code in (0, None), exc.code
        import click
        ctx = click.Context(cli)
        for name in cli.list_commands(ctx) if isinstance(cli, click.Group) else []:
            sub = cli.get_command(ctx, name)  # lazy groups import the command's module here
            try:
                sub.main(["--help"], prog_name=name, standalone_mode=False)
            except SystemExit as exc:
                assert exc.code in (0, None), (name, exc.code)
        """
    )
    assert _loaded_after(code) == []


@pytest.mark.parametrize("command", COMMANDS)
def test_console_script_help(command: str) -> None:
    import shutil

    exe = shutil.which(command) or str(__import__("pathlib").Path(sys.executable).parent / command)
    result = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
