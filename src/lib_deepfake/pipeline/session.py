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

Large collections: discovery streams (``todo()`` yields the first file while the walk goes on; ``total`` is known
once it ends); files with the same content are scanned once, the copies get the first one's row with
``duplicate_of`` (:mod:`~lib_deepfake.pipeline.content_id`); with a ``cache`` folder, videos already scored with the
same model and settings by any earlier scan take their cached row (:mod:`~lib_deepfake.pipeline.result_cache`).
Rows are never held in memory: the summary is tallied as they are written, and report.html is written by streaming
the result files (:mod:`lib_deepfake.report`).
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
from lib_deepfake.pipeline.inputs import Discovery, stream_inputs
from lib_deepfake.pipeline.outcomes import VideoOutcome, error_outcome
from lib_deepfake.pipeline.results import (
    REPORT_DATA,
    REPORT_HTML,
    RESULTS_JSONL,
    OutputError,
    ResultsStore,
    now_iso,
)
from lib_deepfake.pipeline.summary import RowTally, read_labels

logger = logging.getLogger(__name__)

#: ``fn(row, done, total)`` after each video this run: ``done`` videos of ``total`` to scan (None while the inputs
#: are still being discovered).
ProgressCallback = Callable[[dict[str, Any], int, "int | None"], None]

#: Row fields that describe the work done for one file; a copy did none of it.
_WORK_FIELDS = ("decode_s", "detect_s", "crop_s", "classify_s")


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
        config: the scan settings (threshold, faces.jsonl, report, fingerprint); a threshold of None (the model's) is
            settled here from the model card (:mod:`~lib_deepfake.pipeline.scan_threshold`): drivers scan with
            :attr:`config`, and run.json records where the threshold came from.
        inputs: files, folders, list files (see :mod:`lib_deepfake.pipeline.inputs`), and whatever ``discover``
            accepts besides (URLs for the Ray driver).
        out_dir: output folder.
        resume: skip what an earlier run of the same settings in ``out_dir`` finished.
        overwrite: replace earlier results in ``out_dir``.
        labels: optional ``path,label`` CSV: the summary then reports video-level AUC and accuracy.
        all_files: scan every file in folders, not only video extensions.
        on_outcome: progress callback, ``fn(row, done, total)`` after each video of this run.
        discover: ``fn(inputs, all_files=...) -> Discovery`` (default: local files, folders and list files,
            streamed).
        dedupe: scan files with the same content once (copies get the row with ``duplicate_of``).
        cache: a result-cache folder shared between scans (None: no cache).

    Raises (on entry):
        InputError: an input does not exist or a list file cannot be read (before the output folder is touched).
        OutputError: the folder cannot be written, holds results and neither ``resume`` nor ``overwrite`` is set,
            or ``resume`` meets results made with other settings.
    """

    def __init__(self, config: ScanConfig, inputs: Iterable[str | Path], out_dir: Path | str, *, resume: bool = False,
                 overwrite: bool = False, labels: Path | str | None = None, all_files: bool = False,
                 on_outcome: ProgressCallback | None = None, discover: Callable[..., Discovery] = stream_inputs,
                 dedupe: bool = True, cache: Path | str | None = None) -> None:  # fmt: skip
        from lib_deepfake.pipeline.scan_threshold import resolve_scan_threshold

        # The threshold is settled first (None: the model card's): the fingerprint and every verdict use the number;
        # drivers scan with ``session.config``.
        self.config, self.threshold = resolve_scan_threshold(config)
        config = self.config
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
        self.tally = RowTally()
        self._total: int | None = None
        self._dedupe, self._cache_dir = dedupe, cache
        self._dups: Any = None
        self._cache: Any = None
        self._model_hash: str | None = None
        self._waiting: dict[str, list[str]] = {}  # original -> copies found before its row was written

    @property
    def out_dir(self) -> Path:
        return self.store.out_dir

    @property
    def total(self) -> int | None:
        """Files to give a row this run (scanned, copies, cached); None until discovery has ended."""
        return self._total

    # -- lifecycle -----------------------------------------------------------------------------------------------
    def __enter__(self) -> ScanSession:
        self._t0 = time.perf_counter()
        self.discovery = self._discover(self._inputs, all_files=self._all_files)
        self.label_map = read_labels(self._labels) if self._labels is not None else None
        self.tally = RowTally(self.label_map, self.config.threshold)
        self.done = self.store.open()
        for row in self.store.resumed_rows:
            self.tally.add(row)
        self.store.resumed_rows = []
        if self._dedupe:
            from lib_deepfake.pipeline.content_id import DuplicateIndex

            self._dups = DuplicateIndex()
        if self._cache_dir is not None:
            from lib_deepfake.pipeline.result_cache import ResultCache

            self._cache = ResultCache(self._cache_dir)
        if self.done:
            logger.info("resume: %d file(s) already done", len(self.done))
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
        """The keys to scan this run (paths, then URLs), in discovery order, as discovery finds them: without those
        already finished, copies of a file met before (their rows are written when the first one's is) and files the
        cache knows (their rows are written here). One pass."""
        n = 0
        for key in self.discovery.iter_keys():
            local = "://" not in key
            if key in self.done:
                if self._dups is not None and local:
                    self._dups.original_of(key)  # an earlier run's file can still be the original of a new copy
                continue
            n += 1
            if self._dups is not None and local:
                first = self._dups.original_of(key)
                if first is not None:
                    self._copy_later(key, first)
                    continue
            if self._cache is not None and local and self._from_cache(key):
                continue
            yield key
        self._total = n
        found = self.discovery
        if found.skipped_non_video:
            logger.info("skipped %d file(s) without a video extension (use --all-files to scan them)",
                        found.skipped_non_video)  # fmt: skip
        logger.info("discovery ended: %d file(s) to give a row this run", n)

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

        cfg = self.config
        self.header = {
            "tool": "lib-infer",
            "started": now_iso(),
            "finished": None,
            "fingerprint": self.store.fingerprint,
            "config": cfg.to_dict(),
            "resolved": resolved,
            "aggregation_rule": cfg.aggregation_rule(),
            "verdict_rule": f"fake if score >= {cfg.threshold}, real below; no_face and error rows have no score",
            **self.threshold.header(),  # threshold (value, origin, rule), threshold_source, model_card
            "model_manifest": model_manifest,
            "inputs": self._inputs_section(),
            "versions": library_versions(),
            "resumed": bool(self.done),
            **sections,
        }
        self._details = details or dict
        self.write_header()

    def write_header(self) -> None:
        """Rewrite run.json with the header as it is now (drivers add what they learn while scanning)."""
        self.store.write_run(self.header)

    def _inputs_section(self) -> dict[str, Any]:
        found = self.discovery
        inputs = {"files": len(found.files) or found.count, "skipped_non_video": found.skipped_non_video,
                  "duplicates": found.duplicates, "missing": len(found.missing)}  # fmt: skip
        if not found.complete:
            inputs["discovering"] = True
        if found.urls is not None:
            inputs["urls"] = len(found.urls)
        return inputs

    def has_row(self, key: str) -> bool:
        """Whether ``key`` has its row in the output folder (from this run or an earlier one)."""
        return key in self.store.done

    def append(self, outcome: VideoOutcome) -> bool:
        """Write one video's outcome (row, faces, report data) and report progress; False for a video that already
        has its row (nothing is written twice). Copies of the video waiting for this row get theirs."""
        if not self._write(outcome):
            return False
        key = outcome.key
        if self._cache is not None and "://" not in key and not outcome.row.get("cached"):
            self._cache_put(key, outcome)
        for copy in self._waiting.pop(key, []):
            self._write_copy(copy, key, outcome.row)
        return True

    def _write(self, outcome: VideoOutcome) -> bool:
        if self.has_row(outcome.key):
            logger.debug("not writing a second row for %s", outcome.key)
            return False
        self.store.append(outcome.row, outcome.faces, outcome.report)
        self.tally.add(outcome.row)
        self.count += 1
        if self.on_outcome is not None:
            self.on_outcome(outcome.row, self.count, self.total)
        return True

    # -- copies and the cache ------------------------------------------------------------------------------------
    def _copy_later(self, key: str, first: str) -> None:
        row = self.store.read_row(first) if self.has_row(first) else None
        if row is not None:
            self._write_copy(key, first, row)
        else:
            self._waiting.setdefault(first, []).append(key)

    def _write_copy(self, key: str, first: str, row: dict[str, Any]) -> None:
        import contextlib
        import os

        copy = dict(row, path=key, name=os.path.basename(key), duplicate_of=first, cached=None, seconds=0.0)
        copy.update(dict.fromkeys(_WORK_FIELDS))
        with contextlib.suppress(OSError):
            copy["size_bytes"] = os.stat(key).st_size
        self._write(VideoOutcome(copy))

    def _cache_key(self, key: str) -> str:
        from lib_deepfake.pipeline.content_id import full_digest
        from lib_deepfake.pipeline.result_cache import cache_key

        if self._model_hash is None:
            self._model_hash = full_digest(self.config.model)
        digest = self._dups.content_digest(key) if self._dups is not None else full_digest(key)
        return cache_key(digest, self._model_hash, self.config.fingerprint())

    def _from_cache(self, key: str) -> bool:
        try:
            hit = self._cache.get(self._cache_key(key), key)
        except OSError:
            return False  # unreadable: the scan reports the file's error itself
        if hit is None:
            return False
        self._write(VideoOutcome(hit["row"], hit["faces"], hit["report"]))
        for copy in self._waiting.pop(key, []):
            self._write_copy(copy, key, hit["row"])
        return True

    def _cache_put(self, key: str, outcome: VideoOutcome) -> None:
        try:
            self._cache.put(self._cache_key(key), outcome.row, outcome.faces, outcome.report)
        except OSError as exc:
            logger.warning("not caching %s: %s", key, exc)

    def finish(self, *, complete: bool = True, interrupted: bool = False) -> ScanResult:
        """Summarise, write run.json (``finished`` only for a complete, uninterrupted scan) and report.html.

        Args:
            complete: False when the driver failed part-way (its rows are kept; ``--resume`` continues).
            interrupted: the scan was stopped with Ctrl-C.
        """
        wall = time.perf_counter() - self._t0
        self._settle_copies(final=complete and not interrupted)
        details = self._details()
        summary = self.tally.as_dict()
        if self._cache is not None:
            summary["cache"] = {"folder": str(self._cache.root), "hits": self._cache.hits, "misses": self._cache.misses}
        self.header["inputs"] = self._inputs_section()
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

    def _settle_copies(self, final: bool) -> None:
        """Copies whose original has its row get theirs; at the end of a complete scan, a copy whose original never
        got one is an error row (a stopped or failed scan leaves it to ``--resume``)."""
        waiting, self._waiting = self._waiting, {}
        for first, copies in waiting.items():
            row = self.store.read_row(first) if self.has_row(first) else None
            for copy in copies:
                if row is not None:
                    self._write_copy(copy, first, row)
                elif final:
                    self._write(error_outcome(copy, f"a copy of {first}, which has no result",
                                              "OriginalNotScanned", threshold=self.config.threshold))  # fmt: skip

    def _write_report(self, summary: dict[str, Any]) -> None:
        from lib_deepfake.report import write_report

        out = self.store.out_dir
        try:
            write_report(out / REPORT_HTML, results=out / RESULTS_JSONL, report_data=out / REPORT_DATA,
                         run=self.header, summary=summary)  # fmt: skip
        except OSError as exc:
            raise OutputError(f"cannot write {REPORT_HTML} in {out}: {exc}") from exc


__all__ = ["ProgressCallback", "ScanResult", "ScanSession"]
