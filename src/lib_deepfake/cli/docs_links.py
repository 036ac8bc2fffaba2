"""Where each command is documented: the ``--help`` epilog that sends a user to the command's docs page.

The documentation lives in the source tree (``docs/*.md``); there is no published site, so the epilog names the
page by its path relative to the repository root. Importing this module imports nothing.
"""

from __future__ import annotations

#: Command (as typed, without options) -> its docs pages, relative to the repository root. A subcommand without an
#: entry of its own is documented on its group's page.
COMMAND_PAGES: dict[str, tuple[str, ...]] = {
    "lib-prep": ("docs/prep.md",),
    "lib-prep export-detector": ("docs/faces.md",),
    "lib-prep faceforensics": ("docs/datasets.md",),
    "lib-prep celebdf": ("docs/datasets.md",),
    "lib-prep dfdc": ("docs/datasets.md",),
    "lib-train": ("docs/train.md",),
    "lib-eval": ("docs/eval.md",),
    "lib-export": ("docs/export.md",),
    "lib-infer": ("docs/infer.md", "docs/ray.md"),
    "lib-bench": ("docs/benchmarks.md",),
    "lib-bench engines": ("docs/engines.md", "docs/benchmarks.md"),
    "lib-bench decode": ("docs/video.md",),
    "lib-bench crops": ("docs/native.md",),
    "lib-bench detect": ("docs/faces.md",),
    "lib-bench gpu-check": ("docs/gpu-check.md",),
    "lib-bench ray": ("docs/ray.md",),
    "lib-bench train": ("docs/train.md",),
}


def docs_pages(command: str) -> tuple[str, ...]:
    """The docs pages of ``command`` (``"lib-bench gpu-check"``), falling back from a subcommand to its group.

    Raises:
        KeyError: no page is registered for the command or any group above it.
    """
    key = " ".join(command.split())
    while key:
        if key in COMMAND_PAGES:
            return COMMAND_PAGES[key]
        key = key.rpartition(" ")[0]
    raise KeyError(f"no documentation page is registered for {command!r}")


def docs_epilog(command: str) -> str:
    """The ``--help`` epilog for ``command``: ``"Documentation: docs/infer.md, docs/ray.md (in the source tree)."``"""
    return f"Documentation: {', '.join(docs_pages(command))} (in the lib-deepfake source tree)."
