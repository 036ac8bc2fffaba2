"""Rows and the files they go to: results.jsonl (the record), results.csv, faces.jsonl, report_data.jsonl, run.json.

One row per input file, built only by :func:`build_row` (CPU scans, GPU scans and Ray workers all call it, so
their rows are identical). :class:`ResultsStore` writes them **incrementally**: per video, its faces and report
lines first, then its results.jsonl line (the commit point), then its CSV line, each flushed and fsynced. After a
crash, ``--resume`` repairs the files: a torn last line is cut off, faces/report lines of videos whose row never
landed are dropped, the CSV is rebuilt from results.jsonl, and finished files are skipped - so nothing is lost and
nothing is duplicated. A write error (read-only folder, disk full) raises :class:`OutputError` after cutting the
file back to its last complete line.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lib_deepfake.errors import LibDeepfakeError

logger = logging.getLogger(__name__)

STATUSES = ("ok", "no_face", "error")

#: results.csv columns, in order (results.jsonl rows have these keys plus ``identity_scores`` and ``missing_frames``).
ROW_FIELDS = (
    "path", "name", "status", "score", "verdict", "error", "error_kind",
    "frames_sampled", "frames_with_faces", "faces", "identities", "identities_scored", "top_identity",
    "codec", "container", "resolution", "width", "height", "rotation", "fps", "duration_s", "frame_count",
    "pix_fmt", "bit_depth", "size_bytes", "analysis_scale", "decoder",
    "decode_s", "detect_s", "crop_s", "classify_s", "seconds", "duplicate_of", "cached",
)  # fmt: skip

RESULTS_JSONL = "results.jsonl"
RESULTS_CSV = "results.csv"
FACES_JSONL = "faces.jsonl"
REPORT_DATA = "report_data.jsonl"
RUN_JSON = "run.json"
REPORT_HTML = "report.html"


class OutputError(LibDeepfakeError):
    """The output folder cannot be written (read-only, disk full, existing results without --resume)."""


def one_line(text: Any, limit: int = 300) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _r(v: float | None, nd: int = 6) -> float | None:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return None
    return round(float(v), nd)


def build_row(
    path: str,
    *,
    status: str,
    threshold: float,
    score: float | None = None,
    error: str | None = None,
    error_kind: str | None = None,
    info: dict[str, Any] | None = None,
    frames_sampled: int = 0,
    frames_with_faces: int = 0,
    faces: int = 0,
    identity_scores: list[dict[str, Any]] | None = None,
    top_identity: int | None = None,
    analysis_scale: float | None = None,
    decoder: str | None = None,
    timings: dict[str, float] | None = None,
    missing_frames: list[int] | None = None,
) -> dict[str, Any]:
    """The one place rows are made. ``status`` "ok" needs a score; "no_face" and "error" never carry one.

    Args:
        path: the file as reported (absolute).
        status: "ok", "no_face" or "error".
        threshold: verdict threshold.
        score: video score (P(fake) aggregate) for "ok".
        error: one-line reason for "error" (and the note for "no_face").
        error_kind: the error class name (NotAVideoError, DecodeTimeoutError, ...).
        info: ``VideoInfo.as_dict()`` when the video could be probed.
        timings: decode_s, detect_s, crop_s, classify_s (seconds attributed to this video; batch times are shared
            out by frames or faces).
    """
    from lib_deepfake.pipeline.aggregate import verdict

    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    if status == "ok" and (score is None or not math.isfinite(score)):
        raise ValueError("an ok row needs a finite score")
    if status != "ok":
        score = None
    info = info or {}
    timings = timings or {}
    idents = identity_scores or []
    size_bytes = None
    with contextlib.suppress(OSError):
        size_bytes = os.stat(path).st_size
    w, h = info.get("display_width"), info.get("display_height")
    row: dict[str, Any] = {
        "path": path,
        "name": os.path.basename(path),
        "status": status,
        "score": _r(score),
        "verdict": verdict(score, threshold) if status == "ok" else ("unknown" if status == "no_face" else "error"),
        "error": one_line(error) if error else None,
        "error_kind": error_kind if status == "error" else None,
        "frames_sampled": int(frames_sampled),
        "frames_with_faces": int(frames_with_faces),
        "faces": int(faces),
        "identities": len(idents),
        "identities_scored": sum(1 for x in idents if x.get("eligible")),
        "top_identity": top_identity,
        "codec": info.get("codec"),
        "container": info.get("container"),
        "resolution": f"{w}x{h}" if w and h else None,
        "width": w,
        "height": h,
        "rotation": info.get("rotation"),
        "fps": _r(info.get("fps"), 3),
        "duration_s": _r(info.get("duration_s"), 3),
        "frame_count": info.get("frame_count"),
        "pix_fmt": info.get("pix_fmt"),
        "bit_depth": info.get("bit_depth"),
        "size_bytes": size_bytes,
        "analysis_scale": _r(analysis_scale, 4),
        "decoder": decoder,
        "decode_s": _r(timings.get("decode_s"), 4),
        "detect_s": _r(timings.get("detect_s"), 4),
        "crop_s": _r(timings.get("crop_s"), 4),
        "classify_s": _r(timings.get("classify_s"), 4),
        "seconds": _r(sum(v for v in timings.values() if v is not None), 4),
        "identity_scores": idents,
        "missing_frames": list(missing_frames or []),
    }
    return row


def csv_line(row: dict[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["" if row.get(k) is None else row.get(k) for k in ROW_FIELDS])
    return buf.getvalue()


def csv_header() -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(ROW_FIELDS)
    return buf.getvalue()


def readable(path: Path) -> None:
    """Give a file written by ``atomic_open`` (0600, from mkstemp) the usual mode, 0666 minus the umask: results
    and reports are meant to be read by others."""
    mask = os.umask(0)
    os.umask(mask)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o666 & ~mask)


def _json_line(obj: Any) -> str:
    # ensure_ascii keeps the file valid whatever bytes a file name holds (surrogate-escaped names included).
    return json.dumps(obj, ensure_ascii=True, allow_nan=False, default=str) + "\n"


def read_jsonl(path: Path) -> tuple[list[dict[str, Any]], int, bool]:
    """Complete, parseable lines of a JSONL file.

    Returns:
        (records, byte offset after the last complete line, whether anything was dropped).
    """
    if not path.is_file():
        return [], 0, False
    data = path.read_bytes()
    records, good_end, dropped, pos = [], 0, False, 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        if nl < 0:  # torn last line (crash or disk full mid-write)
            dropped = True
            break
        line = data[pos:nl]
        pos = nl + 1
        if not line.strip():
            good_end = pos
            continue
        try:
            records.append(json.loads(line))
            good_end = pos
        except json.JSONDecodeError:
            dropped = True
            good_end = pos
    return records, good_end, dropped


class ResultsStore:
    """The output folder of one scan.

    Args:
        out_dir: the folder (created).
        resume: continue the scan recorded there (same settings fingerprint required).
        overwrite: start afresh even if results exist (old result files are replaced).
        faces: also write faces.jsonl.
        fingerprint: :meth:`ScanConfig.fingerprint` of this scan.

    Raises:
        OutputError: the folder is not writable, or holds results and neither ``resume`` nor ``overwrite`` is set,
            or ``resume`` meets results made with other settings.
    """

    def __init__(self, out_dir: Path | str, *, resume: bool = False, overwrite: bool = False, faces: bool = False,
                 fingerprint: str = "") -> None:  # fmt: skip
        self.out_dir = Path(out_dir)
        self.resume = resume
        self.overwrite = overwrite
        self.faces = faces
        self.fingerprint = fingerprint
        #: rows an earlier run finished (set by a resume; the session tallies them, then drops the list)
        self.resumed_rows: list[dict[str, Any]] = []
        #: path -> byte offset of its row in results.jsonl: which files are done, and where to read a row back
        #: (copies of a video take its row) without keeping rows in memory
        self.offsets: dict[str, int] = {}
        self._files: dict[str, int] = {}
        self._names: dict[str, str] = {}
        self._lock_fd: int | None = None
        self.repaired: list[str] = []

    # -- opening ------------------------------------------------------------------------------------------------
    def open(self) -> set[str]:
        """Prepare the folder; returns the paths already finished (empty unless resuming)."""
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the output folder {self.out_dir}: {one_line(exc)}") from exc
        if not os.access(self.out_dir, os.W_OK | os.X_OK):
            raise OutputError(f"the output folder {self.out_dir} is not writable")
        self._lock()
        try:
            self._prepare()
        except BaseException:
            self.close()
            raise
        return set(self.offsets)

    @property
    def done(self) -> set[str] | Any:
        """The paths that have their row (a live view: membership tests only)."""
        return self.offsets.keys()

    def _prepare(self) -> None:
        results = self.out_dir / RESULTS_JSONL
        exists = results.is_file() and results.stat().st_size > 0
        if exists and not (self.resume or self.overwrite):
            raise OutputError(
                f"{self.out_dir} already holds results ({RESULTS_JSONL}); pass --resume to continue that scan or "
                "--overwrite to start again"
            )
        try:
            if self.resume and exists:
                self._check_fingerprint()
                self._repair()
            else:
                for name in (RESULTS_JSONL, RESULTS_CSV, FACES_JSONL, REPORT_DATA):
                    (self.out_dir / name).unlink(missing_ok=True)
            csv_path = self.out_dir / RESULTS_CSV
            new_csv = not csv_path.is_file() or csv_path.stat().st_size == 0
            self._open("jsonl", results)
            self._open("csv", csv_path)
            if new_csv:
                self._write("csv", csv_header())
            self._open("report", self.out_dir / REPORT_DATA)
            if self.faces:
                self._open("faces", self.out_dir / FACES_JSONL)
        except OSError as exc:
            raise OutputError(f"cannot write to {self.out_dir}: {one_line(exc)}") from exc

    def _lock(self) -> None:
        """One scan per output folder: a second lib-infer on the same --out would interleave rows."""
        import fcntl

        try:
            fd = os.open(self.out_dir / ".lib-infer.lock", os.O_WRONLY | os.O_CREAT, 0o666)
        except OSError as exc:
            raise OutputError(f"cannot write to the output folder {self.out_dir}: {one_line(exc)}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise OutputError(
                f"another lib-infer is writing to {self.out_dir}; wait for it or use another --out"
            ) from exc
        self._lock_fd = fd

    def _open(self, key: str, path: Path) -> None:
        self._files[key] = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        self._names[key] = path.name

    def _check_fingerprint(self) -> None:
        run = self.out_dir / RUN_JSON
        if not run.is_file():
            return
        try:
            old = json.loads(run.read_text(encoding="utf-8")).get("fingerprint")
        except (OSError, ValueError):
            return
        if old and self.fingerprint and old != self.fingerprint:
            raise OutputError(
                f"--resume: {self.out_dir} holds a scan made with other settings (model, plan, detector, threshold "
                "or aggregation differ); use another --out, or --overwrite to start again"
            )

    def _repair(self) -> None:
        from lib_deepfake.atomic import atomic_open

        path = self.out_dir / RESULTS_JSONL
        records, good_end, dropped = read_jsonl(path)
        rows, seen = [], set()
        for r in records:
            p = r.get("path")
            if isinstance(p, str) and p not in seen and r.get("status") in STATUSES:
                seen.add(p)
                rows.append(r)
        if dropped or len(rows) != len(records):
            self.repaired.append(f"{RESULTS_JSONL}: kept {len(rows)} complete rows")
            with atomic_open(path) as fh:
                fh.writelines(_json_line(r) for r in rows)
            readable(path)
        offset = 0
        for r in rows:
            line = _json_line(r)
            self.offsets[r["path"]] = offset
            offset += len(line.encode("utf-8", "surrogateescape"))
        if offset != path.stat().st_size:  # rows written by another version: not byte-identical when re-dumped
            with atomic_open(path) as fh:
                fh.writelines(_json_line(r) for r in rows)
            readable(path)
        self.resumed_rows = rows
        for name in (FACES_JSONL, REPORT_DATA):
            fpath = self.out_dir / name
            if not fpath.is_file():
                continue
            recs, _, _ = read_jsonl(fpath)
            kept = []
            seen_report: set[str] = set()
            for r in recs:
                p = r.get("path")
                if p not in seen:
                    continue  # its row never landed: the video is scanned again
                if name == REPORT_DATA:
                    if p in seen_report:
                        continue
                    seen_report.add(p)
                kept.append(r)
            with atomic_open(fpath) as fh:
                fh.writelines(_json_line(r) for r in kept)
            readable(fpath)
        with atomic_open(self.out_dir / RESULTS_CSV) as fh:
            fh.write(csv_header())
            fh.writelines(csv_line(r) for r in rows)
        readable(self.out_dir / RESULTS_CSV)

    # -- writing ---------------------------------------------------------------------------------------------------
    def append(self, row: dict[str, Any], faces: Iterable[dict[str, Any]] = (), report: dict[str, Any] | None = None
               ) -> None:  # fmt: skip
        """Write one video: faces, report data, then the row (commit), then its CSV line; fsync each."""
        if row["path"] in self.offsets:
            logger.warning("not writing a second row for %s", row["path"])
            return
        if self.faces:
            self._write("faces", "".join(_json_line(f) for f in faces))
        if report is not None:
            self._write("report", _json_line(report))
        self.offsets[row["path"]] = self._write("jsonl", _json_line(row))
        self._write("csv", csv_line(row))

    def read_row(self, path: str) -> dict[str, Any] | None:
        """The row of ``path`` as written in results.jsonl (one seek and one line), or None."""
        offset = self.offsets.get(path)
        if offset is None:
            return None
        with open(self.out_dir / RESULTS_JSONL, "rb") as fh:
            fh.seek(offset)
            return json.loads(fh.readline())

    def _write(self, key: str, text: str) -> int:
        """Append ``text``; returns the offset it starts at."""
        # Unbuffered writes on a raw descriptor: after a failure nothing stays in a buffer to be flushed later, and
        # the file is cut back to where this record began, so no torn line is left behind.
        fd = self._files[key]
        data = text.encode("utf-8", "surrogateescape")
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise OutputError(f"cannot write {self._names[key]} in {self.out_dir}: {one_line(exc)}") from exc
        return start

    def close(self) -> None:
        for fd in self._files.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._files.clear()
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def write_run(self, payload: dict[str, Any]) -> None:
        from lib_deepfake.atomic import write_json_atomic

        try:
            write_json_atomic(self.out_dir / RUN_JSON, payload)
            readable(self.out_dir / RUN_JSON)
        except OSError as exc:
            raise OutputError(f"cannot write {RUN_JSON} in {self.out_dir}: {one_line(exc)}") from exc

    def report_entries(self) -> list[dict[str, Any]]:
        recs, _, _ = read_jsonl(self.out_dir / REPORT_DATA)
        return recs


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


__all__ = [
    "FACES_JSONL", "REPORT_DATA", "REPORT_HTML", "RESULTS_CSV", "RESULTS_JSONL", "ROW_FIELDS", "RUN_JSON",
    "STATUSES", "OutputError", "ResultsStore", "build_row", "csv_line", "read_jsonl",
]  # fmt: skip
