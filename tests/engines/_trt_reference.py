"""NVIDIA's TensorRT runtime API, read from the real lean bindings, to check fakes and stubs against.

``tensorrt_lean_bindings`` (wheels ``tensorrt-lean-cu13-libs`` + ``tensorrt-lean-cu13-bindings``, extra
``trt-lean``) imports without a GPU and carries the real ``Runtime``, ``ICudaEngine`` and ``IExecutionContext``
classes and the enums. Their pybind11 docstrings give each method's signature(s); :func:`signatures` parses them
into :class:`inspect.Signature` objects. :func:`checked` wraps a fake object so that every attribute the code under
test touches must exist on the real class, and every call must bind to a real overload with arguments of the
documented kinds. Constructing the real ``Runtime`` without a GPU crashes the process: nothing here does.

The builder classes exist only in the full bindings, which need TensorRT's libraries and cannot be installed on a
CPU machine: :class:`StubChecked` holds fakes of those to the documented API in ``typings/tensorrt.pyi`` instead.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path
from typing import Any

import pytest

try:
    LEAN: Any = importlib.import_module("tensorrt_lean_bindings")
except ImportError:
    LEAN = None

#: The real classes, taken at import (tests may monkeypatch the module's attributes, e.g. Runtime).
REAL: dict[str, Any] = {}
if LEAN is not None:
    REAL = {name: getattr(LEAN, name) for name in ("Runtime", "ICudaEngine", "IExecutionContext", "ITimingCache")}

requires_lean = pytest.mark.skipif(
    LEAN is None, reason="needs NVIDIA's lean TensorRT bindings: pip install 'lib-deepfake[trt-lean]'"
)

_OPEN, _CLOSE = "([<{", ")]>}"


def _split_top(text: str, sep: str = ",") -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        parts.append("".join(cur))
    return [p.strip() for p in parts]


def _param_text(line: str, name: str) -> str | None:
    start = line.find(f"{name}(")
    if start < 0:
        return None
    i, depth = start + len(name), 0
    for j in range(i, len(line)):
        if line[j] in _OPEN:
            depth += 1
        elif line[j] in _CLOSE:
            depth -= 1
            if depth == 0:
                return line[i + 1 : j]
    return None


def signatures(func: Any) -> list[tuple[inspect.Signature, dict[str, str]]]:
    """Every overload of a pybind11 function as (signature, {parameter: annotation text}), ``self`` included."""
    name = func.__name__
    doc = func.__doc__ or ""
    out = []
    for raw in doc.splitlines():
        line = raw.strip()
        if line[:1].isdigit() and ". " in line:
            line = line.split(". ", 1)[1]
        if not line.startswith(f"{name}(") or "*args" in line:
            continue
        text = _param_text(line, name)
        if text is None:
            continue
        params, kinds = [], {}
        for part in _split_top(text):
            head, _, default = part.partition("=")
            pname, _, annotation = head.partition(":")
            pname = pname.strip()
            kinds[pname] = annotation.strip()
            params.append(inspect.Parameter(pname, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                            default=... if default else inspect.Parameter.empty))  # fmt: skip
        out.append((inspect.Signature(params), kinds))
    if not out:
        raise AssertionError(f"no signature found in the docstring of {name}")
    return out


def _kind_ok(annotation: str, value: Any) -> bool:
    """A light check of the documented argument kinds that matter for the engine: names, integers, buffers."""
    if annotation == "str":
        return isinstance(value, str)
    if annotation in ("typing.SupportsInt", "int"):
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation == "bool":
        return isinstance(value, bool)
    if annotation == "typing_extensions.Buffer":
        return isinstance(value, (bytes, bytearray, memoryview))
    if annotation == "tuple":
        return isinstance(value, tuple)
    if annotation == "list":
        return isinstance(value, list)
    return True


def check_call(real_cls: type, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """AssertionError unless ``real_cls.method(self, *args, **kwargs)`` binds to a documented overload."""
    errors = []
    for sig, kinds in signatures(getattr(real_cls, method)):
        try:
            bound = sig.bind(object(), *args, **kwargs)
        except TypeError as exc:
            errors.append(str(exc))
            continue
        bad = [n for n, v in list(bound.arguments.items())[1:] if not _kind_ok(kinds.get(n, ""), v)]
        if not bad:
            return
        errors.append(f"argument(s) {bad} of the wrong kind for {sig}")
    raise AssertionError(f"{real_cls.__name__}.{method}{args}{kwargs} matches no TensorRT overload: {errors}")


def real_member(real_cls: type, name: str) -> Any:
    member = inspect.getattr_static(real_cls, name, None)
    if member is None:
        version = getattr(LEAN, "__version__", "?")
        raise AssertionError(f"{real_cls.__name__}.{name} does not exist in TensorRT {version}")
    return member


def _label(api: Any) -> str:
    return str(getattr(api, "__name__", api))


class _Guarded:
    """A fake behind an API: ``_kind(name)`` says "attribute", "settable" or returns a call checker; ``fake`` is the
    fake itself."""

    def __init__(self, fake: Any, api: Any) -> None:
        object.__setattr__(self, "fake", fake)
        object.__setattr__(self, "api", api)

    def _kind(self, name: str) -> Any:
        raise NotImplementedError

    def __getattr__(self, name: str) -> Any:
        kind = self._kind(name)
        value = getattr(self.fake, name)
        if kind in ("attribute", "settable"):
            return value
        if not callable(value):
            raise AssertionError(f"{_label(self.api)}.{name} is a method in TensorRT, the code reads it as data")

        def call(*args: Any, **kwargs: Any) -> Any:
            kind(args, kwargs)
            return value(*args, **kwargs)

        return call

    def __setattr__(self, name: str, value: Any) -> None:
        if self._kind(name) != "settable":
            raise AssertionError(f"{_label(self.api)}.{name} is not a settable attribute in TensorRT")
        setattr(self.fake, name, value)


class Checked(_Guarded):
    """A fake that answers only to the real class's API (see the module docstring)."""

    def _kind(self, name: str) -> Any:
        member = real_member(self.api, name)
        if isinstance(member, property):
            return "settable" if member.fset is not None else "attribute"
        return lambda args, kwargs: check_call(self.api, name, args, kwargs)


def checked(fake: Any, real_name: str) -> Any:
    """``fake`` wrapped in :class:`Checked` against ``LEAN.<real_name>`` (``fake`` itself without the module)."""
    return fake if LEAN is None else Checked(fake, REAL[real_name])


def unwrap(obj: Any) -> Any:
    return obj.fake if isinstance(obj, Checked) else obj


# ---- the documented builder API (typings/tensorrt.pyi): the full bindings cannot be installed here --------------

STUB = Path(__file__).resolve().parents[2] / "typings" / "tensorrt.pyi"


def _ast_signature(fn: ast.FunctionDef) -> inspect.Signature:
    args = fn.args
    positional = args.posonlyargs + args.args
    defaults = [inspect.Parameter.empty] * (len(positional) - len(args.defaults)) + [...] * len(args.defaults)
    params = [inspect.Parameter(a.arg, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=d)
              for a, d in zip(positional, defaults)]  # fmt: skip
    return inspect.Signature(params)


def stub_classes() -> dict[str, dict[str, Any]]:
    """``{class: {member: Signature (methods) | "attribute"}}`` from typings/tensorrt.pyi."""
    tree = ast.parse(STUB.read_text())
    out: dict[str, dict[str, Any]] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        members: dict[str, Any] = {}
        for item in node.body:
            if isinstance(item, ast.FunctionDef):
                is_property = any(isinstance(d, ast.Name) and d.id == "property" for d in item.decorator_list)
                members[item.name] = "attribute" if is_property else _ast_signature(item)
            elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                members[item.target.id] = "attribute"
            elif isinstance(item, ast.Assign):
                for target in item.targets:
                    if isinstance(target, ast.Name):
                        members[target.id] = "attribute"
        out[node.name] = members
    return out


class StubChecked(_Guarded):
    """A fake builder object that answers only to the documented API of class ``api`` in the stub."""

    def _kind(self, name: str) -> Any:
        members = stub_classes()[self.api]
        if name not in members:
            raise AssertionError(f"{self.api}.{name} is not in the documented API (typings/tensorrt.pyi)")
        member = members[name]
        if member == "attribute":
            return "settable"  # the stub does not say which attributes are read-only

        def check(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            try:
                member.bind(object(), *args, **kwargs)
            except TypeError as exc:
                raise AssertionError(f"{self.api}.{name}{args}{kwargs} does not fit {member}: {exc}") from None

        return check
