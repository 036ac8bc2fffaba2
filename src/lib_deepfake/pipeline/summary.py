"""The scan's summary: counts by status, verdict and error kind, copies and cached rows, seconds, and - with a
labels file - video-level AUC and accuracy. Tallied one row at a time (:class:`RowTally`), so a scan never holds its
rows in memory."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lib_deepfake.pipeline.results import STATUSES, OutputError, one_line


class RowTally:
    """What the summary needs from the rows, fed one row at a time, so a scan never holds its rows in memory: counts
    by status, verdict and error kind, copies and cached rows, seconds, and - with labels - the (score, label) pairs
    of the labelled scored videos (bounded by the labels file)."""

    def __init__(self, labels: dict[str, int] | None = None, threshold: float = 0.5) -> None:
        self.labels, self.threshold = labels, threshold
        self.files = 0
        self.status = dict.fromkeys(STATUSES, 0)
        self.verdicts = dict.fromkeys(("fake", "real", "unknown", "error"), 0)
        self.error_kinds: dict[str, int] = {}
        self.copies = 0
        self.cached = 0
        self.seconds = 0.0
        self.labelled = 0
        self.pairs: list[tuple[float, int]] = []

    def add(self, row: dict[str, Any]) -> None:
        self.files += 1
        status, verdict = row.get("status"), row.get("verdict")
        if status in self.status:
            self.status[status] += 1
        if verdict in self.verdicts:
            self.verdicts[verdict] += 1
        if status == "error":
            kind = row.get("error_kind") or "error"
            self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1
        self.copies += bool(row.get("duplicate_of"))
        self.cached += bool(row.get("cached"))
        self.seconds += row.get("seconds") or 0
        if self.labels and row.get("path") in self.labels:
            self.labelled += 1
            if status == "ok":
                self.pairs.append((float(row["score"]), int(self.labels[row["path"]])))

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"files": self.files, "status": dict(self.status), "verdicts": dict(self.verdicts),
                               "error_kinds": dict(self.error_kinds),
                               "seconds_total": round(self.seconds, 3)}  # fmt: skip
        if self.copies:
            out["copies"] = self.copies
        if self.cached:
            out["cached"] = self.cached
        if self.labels:
            out["metrics"] = _metrics(self.pairs, self.labelled, self.threshold)
        return out


def summarize(rows: Iterable[dict[str, Any]], labels: dict[str, int] | None = None, threshold: float = 0.5
              ) -> dict[str, Any]:  # fmt: skip
    """Counts by status and verdict, timing totals, and - with ``labels`` (path -> 0 real / 1 fake) - video AUC and
    accuracy over the scored videos."""
    tally = RowTally(labels, threshold)
    for r in rows:
        tally.add(r)
    return tally.as_dict()


def video_metrics(rows: list[dict[str, Any]], labels: dict[str, int], threshold: float) -> dict[str, Any]:
    """Video-level AUC (rank statistic, ties count half) and accuracy at ``threshold`` over labelled ok rows."""
    return summarize(rows, labels, threshold)["metrics"]


def _metrics(pairs: list[tuple[float, int]], labelled: int, threshold: float) -> dict[str, Any]:
    res: dict[str, Any] = {"labelled": labelled, "scored": len(pairs), "unscored": labelled - len(pairs)}
    pos = sorted(s for s, y in pairs if y == 1)
    neg = sorted(s for s, y in pairs if y == 0)
    res["fake"], res["real"] = len(pos), len(neg)
    if pos and neg:
        # rank statistic in O(n log n): for each fake, the reals below it (ties count half)
        import bisect

        wins = sum(bisect.bisect_left(neg, p) + 0.5 * (bisect.bisect_right(neg, p) - bisect.bisect_left(neg, p))
                   for p in pos)  # fmt: skip
        res["auc"] = round(wins / (len(pos) * len(neg)), 4)
    else:
        res["auc"] = None
    if pairs:
        res["accuracy"] = round(sum((s >= threshold) == (y == 1) for s, y in pairs) / len(pairs), 4)
    return res


def read_labels(path: Path | str) -> dict[str, int]:
    """``path,label`` CSV (a header row with ``path`` and ``label``; label 0/1 or real/fake) -> absolute path -> 0/1.
    Relative paths are relative to the CSV's folder (the layout of ``lib-prep synth``)."""
    path = Path(path)
    out: dict[str, int] = {}
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or "path" not in reader.fieldnames or "label" not in reader.fieldnames:
                raise OutputError(f"{path}: a labels CSV needs 'path' and 'label' columns")
            for rec in reader:
                lab = str(rec["label"]).strip().lower()
                y = 1 if lab in ("1", "fake") else 0 if lab in ("0", "real") else None
                if y is None:
                    continue
                p = Path(rec["path"])
                out[os.path.abspath(p if p.is_absolute() else path.parent / p)] = y
    except OSError as exc:
        raise OutputError(f"cannot read labels {path}: {one_line(exc)}") from exc
    return out


__all__ = ["RowTally", "read_labels", "summarize", "video_metrics"]
