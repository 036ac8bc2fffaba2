"""report.html for scans of any size: a page that embeds the result table as compact data and renders it page by
page in the browser, with per-video details (face crops, score timeline) for the most suspicious videos kept in a
sidecar folder (``report_files/``) and loaded on demand.

Writing is streaming (two passes over the JSONL files, memory bounded by the number of detailed videos), so a scan
of 100,000 videos gets a page of a few MB that opens in a second or two, where one DOM row and inline images per
video did not open at all.
"""

from __future__ import annotations

from lib_deepfake.report.writer import REPORT_FILES, write_report

__all__ = ["REPORT_FILES", "write_report"]
