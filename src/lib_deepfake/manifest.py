"""The JSON manifest written beside every exported artifact (``OUT.onnx.json``, ``OUT.plan.json``).

It makes an artifact self-describing: the I/O contract, the model config and preprocessing, where it came from,
the library versions and (for TensorRT plans) the GPU it was built for. Engines read it to refuse artifacts they
cannot run faithfully.
"""

from __future__ import annotations

import json
import platform
import shlex
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lib_deepfake.errors import ArtifactMismatchError

MANIFEST_VERSION = 1

# The engine contract shared by every artifact (see docs/ARCHITECTURE.md).
INPUT_NAME = "faces"
OUTPUT_NAME = "prob_fake"


def contract_io(input_size: int, batch: int | None = None) -> dict[str, Any]:
    """The I/O description: uint8 [N, S, S, 3] RGB in, float32 [N] out (``None`` = dynamic batch)."""
    return {
        "inputs": [
            {
                "name": INPUT_NAME,
                "dtype": "uint8",
                "shape": [batch, input_size, input_size, 3],
                "layout": "NHWC",
                "color": "RGB",
            }  # fmt: skip
        ],
        "outputs": [{"name": OUTPUT_NAME, "dtype": "float32", "shape": [batch], "meaning": "P(fake)"}],
    }


def manifest_path(artifact: Path | str) -> Path:
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".json")


def library_versions() -> dict[str, str]:
    """Versions of what produced/ran an artifact; only modules already imported are asked (no heavy imports)."""
    from lib_deepfake import __version__

    versions = {"lib_deepfake": __version__, "python": platform.python_version()}
    for name in ("torch", "onnx", "onnxruntime", "onnxscript", "tensorrt"):
        module = sys.modules.get(name)
        version = getattr(module, "__version__", None) if module is not None else None
        if version:
            versions[name] = str(version)
    cuda = getattr(getattr(sys.modules.get("torch"), "version", None), "cuda", None)
    if cuda:
        versions["cuda"] = str(cuda)
    return versions


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name, *sys.argv[1:]])


@dataclass
class Manifest:
    """Describes one artifact. ``extra`` holds format-specific fields (TensorRT profile, GPU, parity, ...)."""

    format: str  # "onnx" | "tensorrt" | "checkpoint"
    precision: str  # "fp32" | "fp16"
    io: dict[str, Any]
    model: dict[str, Any]  # LIBConfig.to_dict(), includes "preprocessing"
    source_checkpoint_sha256: str = ""
    source: str = ""  # "official" | "lib-deepfake" | path of the ONNX a plan was built from
    versions: dict[str, str] = field(default_factory=library_versions)
    created_by: str = field(default_factory=command_line)
    extra: dict[str, Any] = field(default_factory=dict)
    manifest_version: int = MANIFEST_VERSION

    @property
    def input_size(self) -> int:
        return int(self.model["preprocessing"]["input_size"])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, artifact: Path | str) -> Path:
        from lib_deepfake.atomic import write_json_atomic

        path = manifest_path(artifact)
        write_json_atomic(path, self.to_dict())
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        version = int(data.get("manifest_version", 0))
        if version > MANIFEST_VERSION:
            raise ArtifactMismatchError(
                f"manifest version {version} is newer than this lib-deepfake understands ({MANIFEST_VERSION})"
            )
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    @classmethod
    def load(cls, artifact: Path | str) -> Manifest | None:
        """The manifest beside ``artifact``, or None when there is none."""
        path = manifest_path(artifact)
        if not path.is_file():
            return None
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, TypeError, KeyError) as exc:
            raise ArtifactMismatchError(f"unreadable manifest {path}: {exc}") from exc
