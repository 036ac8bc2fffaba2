"""One complete scan in this process (what ``lib-infer`` runs without ``--ray``): a
:class:`~lib_deepfake.pipeline.scanner.Scanner` computes the outcomes, a
:class:`~lib_deepfake.pipeline.session.ScanSession` writes them (results, run.json, report.html, resume, Ctrl-C).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lib_deepfake.pipeline.config import ScanConfig
from lib_deepfake.pipeline.session import ProgressCallback, ScanResult, ScanSession


def run_scan(
    config: ScanConfig,
    inputs: Iterable[str | Path],
    out_dir: Path | str,
    *,
    resume: bool = False,
    overwrite: bool = False,
    labels: Path | str | None = None,
    all_files: bool = False,
    on_outcome: ProgressCallback | None = None,
    scanner_kwargs: dict[str, Any] | None = None,
    dedupe: bool = True,
    cache: Path | str | None = None,
) -> ScanResult:
    """Scan ``inputs`` into ``out_dir``.

    Args:
        config: scan settings.
        inputs: files, folders, list files (see :mod:`lib_deepfake.pipeline.inputs`).
        out_dir: output folder.
        resume: skip files finished by an earlier run of the same settings in ``out_dir``.
        overwrite: replace earlier results in ``out_dir``.
        labels: optional ``path,label`` CSV: the summary then reports video-level AUC and accuracy.
        all_files: scan every file in folders, not only video extensions.
        on_outcome: ``fn(row, done, total)`` after each file (progress display).
        scanner_kwargs: passed to :class:`~lib_deepfake.pipeline.scanner.Scanner` (fakes in tests).
        dedupe: scan files with the same content once; the copies get its row with ``duplicate_of``.
        cache: a result-cache folder shared between scans (rows of videos already scored with this model and these
            settings are reused, marked ``cached``).

    Returns:
        The summary (counts, verdicts, error kinds, timing, metrics with labels) and the run.json header around it;
        the result reads as the summary.

    Raises:
        InputError, OutputError, and engine/detector loading errors: the scan could not run at all. Per-file
        problems never raise; they are rows. KeyboardInterrupt after the summary and report are written.
    """
    from lib_deepfake.pipeline.components import model_manifest
    from lib_deepfake.pipeline.scanner import Scanner

    with ScanSession(config, inputs, out_dir, resume=resume, overwrite=overwrite, labels=labels, all_files=all_files,
                     on_outcome=on_outcome, dedupe=dedupe, cache=cache) as session:  # fmt: skip
        with Scanner(session.config, **(scanner_kwargs or {})) as scanner:  # its threshold settled
            session.start(scanner.resolved, model_manifest=model_manifest(scanner.components.engine),
                          details=lambda: {"stages": scanner.totals.as_dict()})  # fmt: skip
            for outcome in scanner.scan(session.todo()):
                session.append(outcome)
        return session.finish()


__all__ = ["run_scan"]
