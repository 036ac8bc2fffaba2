"""report.html: one self-contained page (no network, no external file) viewable from disk.

Contents: the run header (model, engine, decoder, device, aggregation rule), summary counts, a sortable table of
every file (click a column header), and per scanned video its highest-scoring face crops (JPEG data: URIs) and a
per-frame score timeline (inline SVG). Every user-controlled string (file names, error messages, paths) goes
through :func:`html.escape` - in text and in attributes - so a file called ``<script>alert(1)</script>.mp4`` is
shown, never run. The only script is the fixed sorter below; no data is placed inside it.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em;color:#1b1b1b;background:#fff}
h1{font-size:1.4em;margin:0 0 .3em} h2{font-size:1.1em;margin:1.4em 0 .4em}
.meta{color:#555;font-size:.92em} .meta code{background:#f3f3f3;padding:0 .25em}
.cards{display:flex;gap:.8em;flex-wrap:wrap;margin:.8em 0}
.card{border:1px solid #ddd;border-radius:6px;padding:.5em .9em;min-width:6em}
.card b{display:block;font-size:1.5em}
table{border-collapse:collapse;width:100%;font-size:.92em}
th,td{border-bottom:1px solid #e5e5e5;padding:.3em .5em;text-align:left;vertical-align:top}
th{cursor:pointer;background:#fafafa;position:sticky;top:0;user-select:none}
th:after{content:" \\2195";color:#bbb} td.num{text-align:right;font-variant-numeric:tabular-nums}
.fake{color:#b00020;font-weight:600} .real{color:#1b6e20;font-weight:600} .unknown,.error{color:#8a6d00}
.err{color:#8a1c00;font-size:.9em;word-break:break-word} .path{word-break:break-all}
.video{border-top:1px solid #ddd;padding:.6em 0;display:flex;gap:1em;flex-wrap:wrap;align-items:flex-start}
.video .name{min-width:16em;max-width:28em;word-break:break-all}
.thumbs figure{display:inline-block;margin:0 .4em 0 0;text-align:center;font-size:.8em}
.thumbs img{width:96px;height:96px;image-rendering:auto;border:1px solid #ccc}
svg.tl{background:#fcfcfc;border:1px solid #e3e3e3}
"""

_JS = """
(function(){
  function key(td){var v=td.getAttribute('data-v');if(v===null)v=td.textContent;var n=parseFloat(v);
    return (v!==''&&!isNaN(n)&&isFinite(v))?[0,n]:[1,v.toLowerCase()];}
  document.querySelectorAll('table.sortable').forEach(function(t){
    t.querySelectorAll('th').forEach(function(th,i){th.addEventListener('click',function(){
      var body=t.tBodies[0],rows=Array.prototype.slice.call(body.rows),asc=th.getAttribute('data-dir')!=='asc';
      t.querySelectorAll('th').forEach(function(h){h.removeAttribute('data-dir');});
      th.setAttribute('data-dir',asc?'asc':'desc');
      rows.sort(function(a,b){var x=key(a.cells[i]),y=key(b.cells[i]);
        if(x[0]!==y[0])return x[0]-y[0];var r=x[1]<y[1]?-1:x[1]>y[1]?1:0;return asc?r:-r;});
      rows.forEach(function(r){body.appendChild(r);});});});});
})();
"""


def esc(value: Any) -> str:
    """HTML-escape anything (quotes too, for attributes); None -> empty."""
    return "" if value is None else html.escape(str(value), quote=True)


def _anchor(path: Any) -> str:
    import hashlib

    return "v" + hashlib.sha1(str(path).encode("utf-8", "surrogateescape")).hexdigest()[:12]


def _num(value: Any, nd: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.{nd}f}"
    return str(value)


def timeline_svg(timeline: list[list[Any]], threshold: float, width: int = 420, height: int = 90) -> str:
    """Inline SVG of per-sampled-frame max face score (dots; gaps where no face) with the threshold line."""
    if not timeline:
        return ""
    pad = 6
    times = [float(t[1]) for t in timeline]
    t0, t1 = min(times), max(times)
    span = (t1 - t0) or 1.0

    def x(t: float) -> float:
        return pad + (t - t0) / span * (width - 2 * pad)

    def y(s: float) -> float:
        return pad + (1 - s) * (height - 2 * pad)

    parts = [f'<svg class="tl" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="per-frame score timeline">']  # fmt: skip
    parts.append(f'<line x1="{pad}" x2="{width - pad}" y1="{y(threshold):.1f}" y2="{y(threshold):.1f}" '
                 'stroke="#d88" stroke-dasharray="4 3"/>')  # fmt: skip
    pts: list[tuple[float, float] | None] = []
    for frame, t, s in timeline:
        if s is None:
            parts.append(f'<circle cx="{x(float(t)):.1f}" cy="{height - pad}" r="1.5" fill="#ccc">'
                         f"<title>frame {int(frame)}: no face</title></circle>")  # fmt: skip
            pts.append(None)
            continue
        colour = "#b00020" if s >= threshold else "#1b6e20"
        parts.append(f'<circle cx="{x(float(t)):.1f}" cy="{y(float(s)):.1f}" r="2.5" fill="{colour}">'
                     f"<title>frame {int(frame)} ({float(t):.2f} s): {float(s):.3f}</title></circle>")  # fmt: skip
        pts.append((x(float(t)), y(float(s))))
    segs: list[list[tuple[float, float]]] = []
    cur: list[tuple[float, float]] = []
    for p in pts:
        if p is None:
            if len(cur) > 1:
                segs.append(cur)
            cur = []
        else:
            cur.append(p)
    if len(cur) > 1:
        segs.append(cur)
    for seg in segs:
        d = " ".join(f"{px:.1f},{py:.1f}" for px, py in seg)
        parts.append(f'<polyline points="{d}" fill="none" stroke="#888" stroke-width="1"/>')
    parts.append("</svg>")
    return "".join(parts)


def render_report(rows: list[dict[str, Any]], report_data: list[dict[str, Any]], run: dict[str, Any],
                  summary: dict[str, Any], max_detailed: int = 500) -> str:  # fmt: skip
    """The whole page as a string.

    Args:
        rows: result rows (results.jsonl).
        report_data: per-video thumbnails and timelines (report_data.jsonl), matched to rows by path.
        run: run.json content (config, resolved choices, aggregation rule).
        summary: :func:`lib_deepfake.pipeline.results.summarize` output.
        max_detailed: per-video sections (thumbnails, timeline) for at most this many videos, highest scores first.
    """
    threshold = float(run.get("config", {}).get("threshold", 0.5))
    by_path = {d.get("path"): d for d in report_data}
    resolved = run.get("resolved", {})
    cfg = run.get("config", {})
    counts = summary.get("status", {})
    verdicts = summary.get("verdicts", {})
    out = ["<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
           "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
           # Nothing may load from the network, even by accident (a future template change): the CSP forbids it.
           "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
           "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">",
           "<title>lib-infer report</title><style>", _CSS, "</style></head><body>",
           "<h1>lib-infer report</h1>"]  # fmt: skip
    meta = [
        ("model", cfg.get("model")),
        ("engine", f"{resolved.get('engine_label', resolved.get('engine', ''))} ({resolved.get('engine_choice', '')})"),
        ("decoder", f"{resolved.get('decoder', '')} ({resolved.get('decoder_choice', '')})"),
        ("device", resolved.get("device")),
        ("provider", resolved.get("provider")),
        ("detector", f"{resolved.get('detector', '')} on {resolved.get('detector_provider') or 'n/a'}"),
        ("sampling", cfg.get("plan")),
        ("threshold", threshold),
        ("aggregation", run.get("aggregation_rule")),
        ("started / finished", f"{run.get('started', '')} / {run.get('finished', '')}"),
    ]
    out.append('<div class="meta">' + "<br>".join(f"<b>{esc(k)}</b>: <code>{esc(v)}</code>" for k, v in meta)
               + "</div>")  # fmt: skip
    cards = [("files", summary.get("files", len(rows))), ("fake", verdicts.get("fake", 0)),
             ("real", verdicts.get("real", 0)), ("no face", counts.get("no_face", 0)),
             ("errors", counts.get("error", 0))]  # fmt: skip
    metrics = summary.get("metrics")
    if metrics and metrics.get("auc") is not None:
        cards.append(("video AUC", metrics["auc"]))
    out.append('<div class="cards">' + "".join(f'<div class="card"><b>{esc(v)}</b>{esc(k)}</div>' for k, v in cards)
               + "</div>")  # fmt: skip
    cols = [("file", "path"), ("status", "status"), ("verdict", "verdict"), ("score", "score"),
            ("frames", "frames_sampled"), ("with faces", "frames_with_faces"), ("faces", "faces"),
            ("identities", "identities"), ("codec", "codec"), ("size", "resolution"), ("duration s", "duration_s"),
            ("seconds", "seconds"), ("error", "error")]  # fmt: skip
    out.append('<h2>Files</h2><table class="sortable"><thead><tr>')
    out.append("".join(f"<th>{esc(c)}</th>" for c, _ in cols) + "</tr></thead><tbody>")
    for r in rows:
        cells = []
        for _, k in cols:
            v = r.get(k)
            if k == "path":
                anchor = _anchor(r.get("path"))
                cells.append(f'<td class="path" data-v="{esc(v)}"><a href="#{anchor}">{esc(r.get("name"))}</a></td>')
            elif k == "verdict":
                cells.append(f'<td class="{esc(v)}">{esc(v)}</td>')
            elif k == "error":
                cells.append(f'<td class="err">{esc(v)}</td>')
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                cells.append(f'<td class="num" data-v="{esc(v)}">{esc(_num(v))}</td>')
            else:
                cells.append(f"<td>{esc(v)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")

    def rank(r: dict[str, Any]) -> float:
        return -float(r["score"]) if r.get("score") is not None else 1.0

    detailed = sorted((r for r in rows if r.get("status") in ("ok", "no_face")), key=rank)[:max_detailed]
    if detailed:
        out.append("<h2>Videos (highest scores first)</h2>")
    for r in detailed:
        d = by_path.get(r.get("path"), {})
        anchor = _anchor(r.get("path"))
        verdict = r.get("verdict")
        head = (f'<div class="name" id="{anchor}"><b>{esc(r.get("name"))}</b><br><span class="meta path">'
                f'{esc(r.get("path"))}</span><br><span class="{esc(verdict)}">{esc(verdict)}</span> '
                f'score {esc(_num(r.get("score")))} &middot; {esc(r.get("faces"))} faces, '
                f'{esc(r.get("identities"))} identities</div>')  # fmt: skip
        thumbs = "".join(
            f'<figure><img alt="face crop" src="data:image/jpeg;base64,{esc(t.get("jpeg", ""))}">'
            f"<figcaption>{esc(_num(t.get('score')))} &middot; f{esc(t.get('frame'))} id{esc(t.get('identity'))}"
            "</figcaption></figure>"
            for t in d.get("thumbs", [])
            if t.get("jpeg")
        )
        out.append(f'<div class="video">{head}<div class="thumbs">{thumbs}</div>'
                   f"{timeline_svg(d.get('timeline', []), threshold)}</div>")  # fmt: skip
    out.append("<script>" + _JS + "</script></body></html>\n")
    return "".join(out)


def write_report(path: Path | str, rows: list[dict[str, Any]], report_data: list[dict[str, Any]],
                 run: dict[str, Any], summary: dict[str, Any]) -> Path:  # fmt: skip
    """Render and write report.html atomically."""
    from lib_deepfake.atomic import atomic_open

    path = Path(path)
    from lib_deepfake.pipeline.results import readable

    with atomic_open(path) as fh:
        fh.write(render_report(rows, report_data, run, summary))
    readable(path)
    return path


__all__ = ["esc", "render_report", "timeline_svg", "write_report"]
