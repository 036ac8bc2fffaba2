"""One scan's life in its output folder, whatever computes the rows (the local scanner, Ray actors)::

    with ScanSession(config, inputs, out_dir, resume=True, on_outcome=show) as session:
        session.start(resolved, model_manifest=manifest)   # run.json header: settings, choices, versions
        for outcome in compute(session.todo()):             # the inputs no earlier run of this scan finished
            session.append(outcome)                          # the one place outcomes are written; progress
    session.result                                           # ScanResult(summary, header)

The session owns everything a driver needs besides its loop: discovering the inputs, the
:class:`~lib_deepfake.pipeline.results.ResultsStore` (open, repair, resume), the run.json header, appending each
video's outcome and reporting progress, the summary, report.html, and Ctrl-C: on ``KeyboardInterrupt`` the summary
and the report are still written (``finished`` stays null, ``interrupted`` is true) before the interrupt propagates.
Any other exception leaves run.json as the header wrote it and propagates.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from lib_deepfake.pipeline.config import ScanConfig
from lib_deepfake.pipeline.inputs import Discovery, discover
from lib_deepfake.pipeline.outcomes import VideoOutcome
from lib_deepfake.pipeline.results import REPORT_HTML, OutputError, ResultsStore, now_iso, read_labels, summarize

logger = logging.getLogger(__name__)

#: ``fn(row, done, total)`` after each video this run: ``done`` videos of ``total`` to scan.
ProgressCallback = Callable[[dict[str, Any], int, int], None]


@dataclass(frozen=True)
class ScanResult(Mapping[str, Any]):
    """What a finished (or interrupted) scan wrote into run.json: ``summary`` and the ``header`` around it.

    Reads as its summary (``result["files"]``, ``result["status"]``), which is what scripts index.
    """

    summary: dict[str, Any]
    header: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.summary[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.summary)

    def __len__(self) -> int:
        return len(self.summary)


class ScanSession:
    """The output side of one scan (see the module docstring); use as a context manager.

    Args:
        config: the scan settings (threshold, faces.jsonl, report, fingerprint).
        inputs: files, folders, list files (see :mod:`lib_deepfake.pipeline.inputs`), and whatever ``discover``
            accepts besides (URLs for the Ray driver).
        out_dir: output folder.
        resume: skip what an earlier run of the same settings in ``out_dir`` finished.
        overwrite: replace earlier results in ``out_dir``.
        labels: optional ``path,label`` CSV: the summary then reports video-level AUC and accuracy.
        all_files: scan every file in folders, not only video extensions.
        on_outcome: progress callback, ``fn(row, done, total)`` after each video of this run.
        discover: ``fn(inputs, all_files=...) -> Discovery`` (default: local files, folders and list files).

    Raises (on entry):
        InputError: an input does not exist or a list file cannot be read (before the output folder is touched).
        OutputError: the folder cannot be written, holds results and neither ``resume`` nor ``overwrite`` is set,
            or ``resume`` meets results made with other settings.
    """

    def __init__(self, config: ScanConfig, inputs: Iterable[str | Path], out_dir: Path | str, *, resume: bool = False,
                 overwrite: bool = False, labels: Path | str | None = None, all_files: bool = False,
                 on_outcome: ProgressCallback | None = None,
                 discover: Callable[..., Discovery] = discover) -> None:  # fmt: skip
        self.config = config
        self.store = ResultsStore(out_dir, resume=resume, overwrite=overwrite, faces=config.faces_jsonl,
                                  fingerprint=config.fingerprint())  # fmt: skip
        self.on_outcome = on_outcome
        self.header: dict[str, Any] = {}
        self.count = 0
        self.result: ScanResult | None = None
        self._inputs, self._all_files, self._discover, self._labels = inputs, all_files, discover, labels
        self._t0 = time.perf_counter()
        self._details: Callable[[], dict[str, Any]] = dict
        self.discovery = Discovery()
        self.label_map: dict[str, int] | None = None
        self.done: set[str] = set()
        self._todo: list[str] = []

    @property
    def out_dir(self) -> Path:
        return self.store.out_dir

    @property
    def total(self) -> int:
        """Videos to scan this run."""
        return len(self._todo)

    # -- lifecycle -----------------------------------------------------------------------------------------------
    def __enter__(self) -> ScanSession:
        self._t0 = time.perf_counter()
        self.discovery = self._discover(self._inputs, all_files=self._all_files)
        self.label_map = read_labels(self._labels) if self._labels is not None else None
        self.done = self.store.open()
        self._todo = [k for k in self.discovery.scan_keys() if k not in self.done]
        if self.discovery.skipped_non_video:
            logger.info("skipped %d file(s) without a video extension (use --all-files to scan them)",
                        self.discovery.skipped_non_video)  # fmt: skip
        if self.done:
            logger.info("resume: %d file(s) already done, %d to scan", len(self.done), len(self._todo))
        for note in self.store.repaired:
            logger.warning("resume repaired %s", note)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        try:
            if self.header and self.result is None:
                if exc_type is None:
                    self.finish()
                elif issubclass(exc_type, KeyboardInterrupt):
                    self.finish(interrupted=True)
        finally:
            self.store.close()

    # -- the scan ----------------------------------------------------------------------------------------------------
    def todo(self) -> Iterator[str]:
        """The keys to scan this run (paths, then URLs), in discovery order, without those already finished."""
        return iter(self._todo)

    def start(self, resolved: dict[str, Any], *, model_manifest: dict[str, Any] | None = None,
              details: Callable[[], dict[str, Any]] | None = None, **sections: Any) -> None:  # fmt: skip
        """Write the run.json header.

        Args:
            resolved: what was chosen automatically, with the reasons (engine, decoder, provider, ...).
            model_manifest: the model's manifest (None: unknown yet or none).
            details: called when the scan ends (Ctrl-C included) for the summary's driver-specific parts: its
                ``stages`` (time and counts per stage) and sections such as ``ray``.
            sections: more header sections (``ray``: the cluster and pool).
        """
        from lib_deepfake.manifest import library_versions  # versions of what this process has imported

        cfg, found = self.config, self.discovery
        inputs = {"files": len(found.files), "skipped_non_video": found.skipped_non_video,
                  "duplicates": found.duplicates, "missing": len(found.missing)}  # fmt: skip
        if found.urls is not None:
            inputs["urls"] = len(found.urls)
        self.header = {
            "tool": "lib-infer",
            "started": now_iso(),
            "finished": None,
            "fingerprint": self.store.fingerprint,
            "config": cfg.to_dict(),
            "resolved": resolved,
            "aggregation_rule": cfg.aggregation_rule(),
            "verdict_rule": f"fake if score >= {cfg.threshold}, real below; no_face and error rows have no score",
            "model_manifest": model_manifest,
            "inputs": inputs,
            "versions": library_versions(),
            "resumed": bool(self.done),
            **sections,
        }
        self._details = details or dict
        self.write_header()

    def write_header(self) -> None:
        """Rewrite run.json with the header as it is now (drivers add what they learn while scanning)."""
        self.store.write_run(self.header)

    def has_row(self, key: str) -> bool:
        """Whether ``key`` has its row in the output folder (from this run or an earlier one)."""
        return key in self.store.done

    def append(self, outcome: VideoOutcome) -> bool:
        """Write one video's outcome (row, faces, report data) and report progress; False for a video that already
        has its row (nothing is written twice)."""
        if self.has_row(outcome.key):
            logger.debug("not writing a second row for %s", outcome.key)
            return False
        self.store.append(outcome.row, outcome.faces, outcome.report)
        self.count += 1
        if self.on_outcome is not None:
            self.on_outcome(outcome.row, self.count, self.total)
        return True

    def finish(self, *, complete: bool = True, interrupted: bool = False) -> ScanResult:
        """Summarise, write run.json (``finished`` only for a complete, uninterrupted scan) and report.html.

        Args:
            complete: False when the driver failed part-way (its rows are kept; ``--resume`` continues).
            interrupted: the scan was stopped with Ctrl-C.
        """
        wall = time.perf_counter() - self._t0
        details = self._details()
        summary = summarize(self.store.rows, self.label_map, self.config.threshold)
        summary.update({"scanned_this_run": self.count, "skipped_done": len(self.done), "wall_s": round(wall, 3),
                        "videos_per_s": round(self.count / wall, 4) if wall > 0 else None,
                        "stages": details.pop("stages", {}), "interrupted": interrupted,
                        "skipped_non_video": self.discovery.skipped_non_video,
                        "duplicates": self.discovery.duplicates, **details})  # fmt: skip
        self.header.update({"finished": now_iso() if complete and not interrupted else None, "summary": summary})
        self.write_header()
        if self.config.report:
            self._write_report(summary)
        self.result = ScanResult(summary, self.header)
        return self.result

    def _write_report(self, summary: dict[str, Any]) -> None:
        from lib_deepfake.pipeline.report import write_report

        store = self.store
        try:
            write_report(store.out_dir / REPORT_HTML, store.rows, store.report_entries(), self.header, summary)
        except OSError as exc:
            raise OutputError(f"cannot write {REPORT_HTML} in {store.out_dir}: {exc}") from exc


__all__ = ["ProgressCallback", "ScanResult", "ScanSession"]
