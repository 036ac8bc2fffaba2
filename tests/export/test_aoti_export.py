"""lib-export to-aoti and the aoti engine: the AOTInductor package keeps the contract (uint8 [N,S,S,3] RGB in, float32
[N] out, dynamic batch) and agrees with PyTorch; mismatched packages are refused. Compiled on CPU with a tiny model
(FP32; FP16 is the GPU mode, marked gpu)."""

from __future__ import annotations

import pytest
import torch
from tests.engines._artifacts import tiny_checkpoint

from lib_deepfake.engines import create_engine
from lib_deepfake.engines.aoti_engine import AotiEngine, check_package
from lib_deepfake.engines.torch_engine import TorchEngine
from lib_deepfake.errors import ArtifactMismatchError, LibDeepfakeError
from lib_deepfake.export.aoti import export_aoti
from lib_deepfake.manifest import Manifest, contract_io
from lib_deepfake.model.testing import random_faces

SIZE = 32
# The host wrapper compiled at -O0: several times faster to build on the 2-core machine; the kernels are unchanged.
FAST = {"aot_inductor.compile_wrapper_opt_level": "O0"}


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    root = tmp_path_factory.mktemp("aoti")
    ckpt = tiny_checkpoint(root / "tiny.pth")
    result = export_aoti(ckpt, root / "tiny.pt2", inductor_configs=FAST)
    return {"ckpt": ckpt, "result": result}


def test_export_writes_package_and_manifest(package):
    result = package["result"]
    manifest = Manifest.load(result.path)
    assert result.path.is_file() and manifest is not None
    assert manifest.format == "aoti" and manifest.precision == "fp32"
    assert manifest.extra["torch"] == torch.__version__ and manifest.extra["device"] == "cpu"
    assert manifest.extra["max_batch"] == 4096 and manifest.io["inputs"][0]["shape"] == [None, SIZE, SIZE, 3]
    assert manifest.extra["opt_batch"] == 16 and manifest.extra["inductor_configs"] == FAST
    assert manifest.extra["parity"]["passed"] is True
    assert not list(result.path.parent.glob(".*partial*"))
    # the checkpoint has no model card: the manifest says 0.5 and why (a carded one: test_manifest_card.py)
    assert manifest.extra["model_card"] is None and manifest.extra["threshold"]["value"] == 0.5
    assert manifest.extra["model_card_note"].startswith("no model card in the source")


@pytest.mark.parametrize("batch", [1, 5, 17])
def test_engine_contract_and_parity_at_any_batch(package, batch):
    faces = random_faces(batch, SIZE, seed=batch)
    with TorchEngine(package["ckpt"]) as ref:
        expected = ref.infer(faces).clone()
    with create_engine(package["result"].path) as engine:  # .pt2 -> aoti
        assert engine.name == "aoti" and engine.input_size == SIZE and engine.precision == "fp32"
        out = engine.infer(faces)
    assert out.dtype == torch.float32 and out.shape == (batch,)
    assert (out - expected).abs().max() < 1e-4


def test_batches_above_the_package_maximum_are_split(package):
    faces = random_faces(5, SIZE, seed=2)
    with AotiEngine(package["result"].path) as engine:
        whole = engine.infer(faces).clone()
        engine._max_batch = 2  # as a package exported with max_batch=2 would say
        split = engine.infer(faces)
    assert torch.allclose(whole, split, atol=1e-6)


def test_bad_input_is_a_contract_error(package):
    from lib_deepfake.errors import ContractError

    with AotiEngine(package["result"].path) as engine, pytest.raises(ContractError, match="uint8"):
        engine.infer(random_faces(2, SIZE).float())


def _manifest(**extra):
    base = {"torch": "2.13.0+cpu", "device": "cpu", "max_batch": 64}
    return Manifest("aoti", "fp32", contract_io(SIZE), {"preprocessing": {"input_size": SIZE}}, extra={**base, **extra})


def test_check_package_refuses_mismatches():
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    check_package(_manifest(), cpu, "2.13.0+cpu", {"device": "cpu"})
    with pytest.raises(ArtifactMismatchError, match="tied to their torch version"):
        check_package(_manifest(), cpu, "2.14.0", {"device": "cpu"})
    with pytest.raises(ArtifactMismatchError, match="compiled for cpu"):
        check_package(_manifest(), cuda, "2.13.0+cpu", {"device": "cuda", "compute_capability": "9.0"})
    gpu = _manifest(device="cuda", gpu_name="NVIDIA H100", compute_capability="9.0")
    check_package(gpu, cuda, "2.13.0+cpu", {"device": "cuda", "compute_capability": "9.0"})
    with pytest.raises(ArtifactMismatchError, match=r"sm 9\.0.*sm 8\.0"):
        check_package(gpu, cuda, "2.13.0+cpu", {"device": "cuda", "compute_capability": "8.0", "gpu_name": "A100"})
    other = Manifest("onnx", "fp32", contract_io(SIZE), {}, extra={})
    with pytest.raises(ArtifactMismatchError, match="not an AOTInductor package"):
        check_package(other, cpu, "2.13.0+cpu", {"device": "cpu"})


def test_package_without_manifest_is_refused(package, tmp_path):
    bare = tmp_path / "bare.pt2"
    bare.write_bytes(package["result"].path.read_bytes())
    with pytest.raises(ArtifactMismatchError, match="has no manifest"):
        AotiEngine(bare).load()


def test_export_argument_checks(tmp_path, package):
    with pytest.raises(LibDeepfakeError, match=r"\.pt2"):
        export_aoti(package["ckpt"], tmp_path / "x.onnx")
    with pytest.raises(LibDeepfakeError, match="GPU mode"):
        export_aoti(package["ckpt"], tmp_path / "x.pt2", precision="fp16")
    with pytest.raises(LibDeepfakeError, match="max batch"):
        export_aoti(package["ckpt"], tmp_path / "x.pt2", max_batch=0)


@pytest.mark.gpu
def test_fp16_package_on_cuda(package, tmp_path):
    result = export_aoti(package["ckpt"], tmp_path / "tiny.fp16.pt2", device="cuda", inductor_configs=FAST)
    faces = random_faces(8, SIZE, seed=4)
    with TorchEngine(package["ckpt"]) as ref:
        expected = ref.infer(faces).clone()
    with create_engine(result.path, device="cuda") as engine:
        out = engine.infer(faces.cuda()).cpu()
    assert engine.precision == "fp16" and (out - expected).abs().max() < 1e-2


def test_verify_accepts_the_package(package):
    from lib_deepfake.export.verify import verify_artifact

    report = verify_artifact(package["result"].path, package["ckpt"], samples=8)  # .pt2 -> aoti by suffix
    assert report.engine["engine"] == "aoti" and report.passed


def test_cli_to_aoti_refuses_fp16_on_cpu(package, tmp_path):
    from click.testing import CliRunner

    from lib_deepfake.cli.export import main

    res = CliRunner().invoke(main, ["to-aoti", str(package["ckpt"]), "-o", str(tmp_path / "x.pt2"), "--precision",
                                    "fp16"])  # fmt: skip
    assert res.exit_code == 1 and "GPU mode" in res.output and not (tmp_path / "x.pt2").exists()
