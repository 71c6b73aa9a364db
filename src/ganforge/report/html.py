"""One self-contained HTML page for one or more run directories (``ganforge report``).

The page needs nothing at view time: CSS and JS are inline, the sample grids are PNG data URIs
and the curves are drawn by a small script on <canvas>. It reads only what a run writes
(config.yaml, metrics.jsonl, eval.jsonl, samples/*.png), never the engine, so it also works on a
run that is still training or on one made by an older version.

The page reports on itself in ``<div id="status">`` (curves drawn, images loaded, script
errors), which is what tests/test_report.py reads back from a headless browser.
"""
from __future__ import annotations

import base64
import html
import json
import math
import re
from pathlib import Path

import yaml

from ..errors import RunDirError
from ..files import atomic_write_bytes

# eval keys that describe a measurement rather than being one; shown beside it or not at all
_EVAL_SETTINGS = {"time", "step", "data", "metrics", "n", "seed", "features", "extractor", "n_ref", "net",
                  "baseline", "eval_seconds", "kid_std", "kid_subset", "prdc_n", "n_classes"}
_NOT_CURVES = {"step", "time", "img_per_s"}
# What a grid's columns are, for the models whose grids are not plain samples from fixed noise.
_CAPTIONS = {
    "pix2pix": "each row one fixed training example: input | output | target",
    "cyclegan": "rows alternate A \u2192 B and B \u2192 A: input | output | target (paired data) "
                "or reconstruction (unpaired data)",
}
_SAMPLE = re.compile(r"step_(\d+)\.png$")


def _finite(v):
    """JSON for the browser: NaN and infinities (a diverged loss) become null, not invalid JSON."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_finite(x) for x in v]
    return v


def _jsonl(path: Path) -> tuple[list[dict], int]:
    """The rows of a .jsonl file and how many lines could not be read (a run still writing leaves
    a partial last line; a report should show the rest rather than fail)."""
    if not path.is_file():
        return [], 0
    rows, bad = [], 0
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            rows.append(row)
        else:
            bad += 1
    return rows, bad


def _pick(items: list, k: int) -> list:
    """At most ``k`` items evenly spread over ``items``, always keeping the first and the last."""
    if len(items) <= k:
        return items
    if k == 1:
        return items[-1:]
    idx = sorted({round(i * (len(items) - 1) / (k - 1)) for i in range(k)})
    return [items[i] for i in idx]


def read_run(path, max_samples: int = 40) -> dict:
    """Everything the page shows of one run directory."""
    path = Path(path)
    if not path.exists():
        raise RunDirError(f"{path} does not exist")
    if not path.is_dir():
        raise RunDirError(f"{path} is not a directory (a run is a directory with config.yaml)")
    if not (path / "config.yaml").is_file():
        raise RunDirError(f"{path} is not a ganforge run (no config.yaml)")
    try:
        cfg = yaml.safe_load((path / "config.yaml").read_text())
    except yaml.YAMLError as e:
        raise RunDirError(f"cannot parse {path / 'config.yaml'}: {str(e).splitlines()[0]}") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model"), str):
        raise RunDirError(f"{path / 'config.yaml'} names no model; it is not a ganforge run's config")
    metrics, bad_m = _jsonl(path / "metrics.jsonl")
    evals, bad_e = _jsonl(path / "eval.jsonl")
    files = sorted((int(m.group(1)), p) for p in (path / "samples").glob("step_*.png")
                   if (m := _SAMPLE.search(p.name)))
    shown = _pick(files, max_samples)
    samples = [(step, "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode("ascii"))
               for step, p in shown]
    notes = []
    if bad_m or bad_e:
        notes.append(f"{bad_m + bad_e} unreadable log line(s) skipped")
    if len(shown) < len(files):
        notes.append(f"{len(shown)} of {len(files)} sample grids shown")
    return {"name": str(path), "label": path.resolve().name or str(path), "config": cfg, "metrics": metrics, "evals": evals, "samples": samples,
            "notes": notes}


def _eval_rows(run: dict) -> list[dict]:
    """The evaluation table over steps: eval_* keys logged in training, then ``ganforge eval`` rows."""
    rows = []
    for r in run["metrics"]:
        vals = {k[5:]: v for k, v in r.items() if k.startswith("eval_")}
        if vals:
            rows.append({"step": r["step"], "source": f"training ({vals.pop('net', '?')})", **vals})
    for r in run["evals"]:
        what = {"real": "baseline: real", "untrained": "baseline: untrained"}.get(r.get("baseline"))
        src = what or f"ganforge eval ({r.get('net', '?')}, n={r.get('n', '?')})"
        rows.append({**{k: v for k, v in r.items() if k not in ("time", "step")}, "step": r["step"], "source": src})
    return rows


def _metric_names(rows: list[dict]) -> list[str]:
    names = []
    for r in rows:
        for k, v in r.items():
            if k not in _EVAL_SETTINGS and k != "source" and isinstance(v, (int, float)) \
                    and not isinstance(v, bool) and k not in names:
                names.append(k)
    return names


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.4g}"
    return str(v)


def _cell(row: dict, k: str) -> str:
    v = row.get(k)
    if k == "kid" and row.get("kid_std") is not None and v is not None:
        return f"{_fmt(v)} \u00b1 {_fmt(row['kid_std'])}"
    if k == "classes" and row.get("n_classes") is not None and v is not None:
        return f"{v} / {row['n_classes']}"
    return _fmt(v)


def _table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _eval_table(run: dict) -> str:
    rows = _eval_rows(run)
    if not rows:
        return '<p class="muted">No evaluations yet (train with <code>--eval-every N</code> or run ' \
               '<code>ganforge eval RUN</code>).</p>'
    names = _metric_names(rows)
    rows.sort(key=lambda r: r["step"])
    return _table(["step", "source", *names], [[str(r["step"]), r["source"], *(_cell(r, k) for k in names)]
                                               for r in rows], "num")


def _latest_eval(run: dict) -> dict:
    """The most recent measurement of the trained generator (baselines excluded); eval.jsonl wins a tie,
    it usually has more samples."""
    rows = [r for r in _eval_rows(run) if not r["source"].startswith("baseline")]
    return max(rows, key=lambda r: (r["step"], r["source"].startswith("ganforge eval")), default={})


def _curve_keys(metrics: list[dict]) -> tuple[list[str], list[str]]:
    """(loss keys, other logged training values such as D(x)), in the order the log has them."""
    keys = []
    for r in metrics:
        keys += [k for k, v in r.items() if k not in keys and k not in _NOT_CURVES and not k.startswith("eval_")
                 and isinstance(v, (int, float)) and not isinstance(v, bool)]
    losses = [k for k in keys if k.endswith("loss")]
    return losses, [k for k in keys if k not in losses]


def _series(run: dict, keys: list[str], prefix: str = "") -> list[dict]:
    return [{"label": k, "points": [[r["step"], r.get(prefix + k)] for r in run["metrics"] if prefix + k in r]}
            for k in keys]


def _chart(title: str, series: list[dict], small: bool = False) -> dict | None:
    series = [s for s in series if any(y is not None for _, y in s["points"])]
    w, h = (360, 200) if small else (560, 300)
    return {"title": title, "series": series, "w": w, "h": h} if series else None


def _canvases(charts: list[dict], prefix: str) -> str:
    """The <canvas> elements of ``charts`` (which get their ids here), drawn by the page's script."""
    for j, c in enumerate(charts):
        c["id"] = f"{prefix}-{j}"
    return "".join(f'<canvas class="chart" data-chart="{c["id"]}" width="{c["w"]}" height="{c["h"]}" '
                   f'style="width:{c["w"]}px;height:{c["h"]}px"></canvas>' for c in charts)


def _run_section(i: int, run: dict) -> tuple[str, list[dict]]:
    esc = html.escape
    cfg = run["config"]
    losses, others = _curve_keys(run["metrics"])
    charts = [c for c in (_chart("losses", _series(run, losses)),
                          _chart("other logged values", _series(run, others)),
                          _chart("images per second", _series(run, ["img_per_s"]))) if c]
    chart_html = _canvases(charts, f"{i}") or '<p class="muted">No metrics logged yet.</p>'
    eval_keys = _metric_names([{k[5:]: v for k, v in r.items() if k.startswith("eval_")} for r in run["metrics"]])
    eval_charts = [c for k in eval_keys if (c := _chart(f"{k} during training", _series(run, [k], "eval_"), True))]
    eval_html = _canvases(eval_charts, f"{i}-eval")
    charts += eval_charts

    caption = _CAPTIONS.get(cfg["model"], "2-D samples (blue) over the real data (grey)"
                            if cfg.get("data") in ("ring8", "grid25") else
                            "samples from the same fixed noise at every step")
    if run["samples"]:
        imgs = "".join(f'<img class="grid{"" if k == len(run["samples"]) - 1 else " hidden"}" '
                       f'data-step="{s}" alt="samples at step {s}" src="{uri}">'
                       for k, (s, uri) in enumerate(run["samples"]))
        last = len(run["samples"]) - 1
        samples = (f'<div class="samples" data-run="{i}"><label>step <span class="stepno">'
                   f'{run["samples"][-1][0]}</span> ({len(run["samples"])} grids) '
                   f'<input type="range" min="0" max="{last}" value="{last}" step="1"></label>'
                   f'<figure>{imgs}<figcaption>{esc(caption)}</figcaption></figure></div>')
    else:
        samples = '<p class="muted">No sample grids yet.</p>'
    notes = "".join(f'<p class="note">{esc(n)}</p>' for n in run["notes"])
    cfg_text = yaml.safe_dump(cfg, sort_keys=True, default_flow_style=None)
    last_step = run["metrics"][-1]["step"] if run["metrics"] else 0
    head = (f'<section class="run" id="run-{i}"><h2>{esc(run["name"])}</h2>'
            f'<p class="muted">{esc(cfg["model"])} on {esc(str(cfg.get("data")))}, step {last_step} of '
            f'{esc(str(cfg.get("steps")))}</p>{notes}')
    body = (f'<h3>Curves</h3><div class="charts">{chart_html}</div>'
            f'<h3>Sample grids over training</h3>{samples}'
            f'<h3>Evaluation over steps</h3>{_eval_table(run)}<div class="charts">{eval_html}</div>'
            f'<details><summary>config.yaml</summary><pre>{esc(cfg_text)}</pre></details></section>')
    return head + body, charts


def _comparison(runs: list[dict]) -> tuple[str, list[dict]]:
    loss_keys, eval_names, rows = [], [], []
    for r in runs:
        loss_keys += [k for k in _curve_keys(r["metrics"])[0] if k not in loss_keys]
    latest = [_latest_eval(r) for r in runs]
    for ev in latest:
        eval_names += [k for k in _metric_names([ev]) if k not in eval_names]
    for r, ev in zip(runs, latest):
        last = r["metrics"][-1] if r["metrics"] else {}
        rows.append([r["label"], r["config"]["model"], str(r["config"].get("data")),
                     f"{last.get('step', 0)} / {r['config'].get('steps')}",
                     *(_fmt(last.get(k)) for k in loss_keys),
                     f"{ev['step']}: {ev['source']}" if ev else "", *(_cell(ev, k) for k in eval_names)])
    table = _table(["run", "model", "data", "steps", *(f"last {k}" for k in loss_keys), "latest eval",
                    *eval_names], rows, "num")
    charts = []
    for k in loss_keys:
        c = _chart(f"{k}, all runs", [{"label": r["label"], "points": p} for r in runs
                                      if (p := _series(r, [k])[0]["points"])])
        if c:
            charts.append(c)
    for k in _metric_names([{kk[5:]: v for kk, v in m.items() if kk.startswith("eval_")}
                            for r in runs for m in r["metrics"]]):
        c = _chart(f"{k} during training, all runs", [{"label": r["label"], "points": p} for r in runs
                                                      if (p := _series(r, [k], "eval_")[0]["points"])], True)
        if c and len(c["series"]) > 1:
            charts.append(c)
    canvases = _canvases(charts, "cmp")
    return (f'<section id="compare"><h2>Comparison</h2>{table}<div class="charts">{canvases}</div></section>',
            charts)


def render(runs: list[dict], title: str = "ganforge report") -> str:
    """The page as a string."""
    sections, charts = [], []
    if len({r["label"] for r in runs}) < len(runs):  # runs/a/x and runs/b/x: only the paths tell them apart
        for r in runs:
            r["label"] = r["name"]
    if len(runs) > 1:
        s, c = _comparison(runs)
        sections.append(s)
        charts += c
    for i, run in enumerate(runs):
        s, c = _run_section(i, run)
        sections.append(s)
        charts += c
    # Inside <script>, "</" would end the element early: escape it (valid JSON either way).
    data = json.dumps(_finite(charts), allow_nan=False).replace("</", "<\\/")
    toc = "".join(f'<li><a href="#run-{i}">{html.escape(r["name"])}</a> ({html.escape(r["config"]["model"])})</li>'
                  for i, r in enumerate(runs))
    return (_PAGE.replace("%TITLE%", html.escape(title)).replace("%TOC%", toc)
            .replace("%BODY%", "".join(sections)).replace("%DATA%", data))


def write_report(run_dirs, out, title: str | None = None, max_samples: int = 40) -> Path:
    """Write the report of ``run_dirs`` to ``out`` (atomically) and return its path."""
    out = Path(out)
    if out.is_dir():
        raise RunDirError(f"--out {out} is a directory; name the .html file to write")
    if out.suffix.lower() not in (".html", ".htm"):
        raise RunDirError(f"--out must end in .html, got {out.name!r}")
    if max_samples < 1:
        raise RunDirError(f"--max-samples must be at least 1, got {max_samples}")
    runs = [read_run(d, max_samples) for d in run_dirs]
    if not runs:
        raise RunDirError("name at least one run directory")
    default = f"ganforge report: {runs[0]['name']}" if len(runs) == 1 else f"ganforge report: {len(runs)} runs"
    atomic_write_bytes(out, render(runs, title or default).encode("utf-8"))
    return out


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>%TITLE%</title>
<script>
// Runs first, apart from the page's own script, so that the status line is written even when that
// script fails: script errors, curves drawn (set by the page's script), images that loaded.
window.__report = {errors: 0, messages: [], curves: 0};
window.onerror = function (msg) { window.__report.errors++; window.__report.messages.push(String(msg)); };
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images), r = window.__report;
  var loaded = imgs.filter(function (im) { return im.complete && im.naturalWidth > 0; }).length;
  var st = document.getElementById("status");
  st.setAttribute("data-curves", r.curves);
  st.setAttribute("data-charts", document.querySelectorAll("canvas.chart").length);
  st.setAttribute("data-images", imgs.length);
  st.setAttribute("data-images-loaded", loaded);
  st.setAttribute("data-errors", r.errors);
  st.setAttribute("data-done", "1");
  st.textContent = r.curves + " curves drawn, " + loaded + " of " + imgs.length + " images loaded, " +
                   r.errors + " script errors" + (r.errors ? ": " + r.messages.join("; ") : "");
});
</script>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1240px;
       padding: 0 20px 40px; color: #222; background: #fafafa; }
h1 { font-size: 22px; margin: 18px 0 4px; } h2 { font-size: 18px; margin: 28px 0 4px; word-break: break-all; }
h3 { font-size: 15px; margin: 18px 0 6px; color: #444; }
section { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 4px 18px 14px; margin: 16px 0; }
.muted { color: #777; } .note { color: #a15c00; margin: 2px 0; }
table { border-collapse: collapse; margin: 6px 0; font-size: 13px; display: block; overflow-x: auto; }
th, td { border: 1px solid #ddd; padding: 3px 8px; white-space: nowrap; } th { background: #f0f0f0; }
table.num td { text-align: right; } table.num td:first-child, table.num td:nth-child(2) { text-align: left; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
canvas.chart { border: 1px solid #eee; background: #fff; }
.samples figure { margin: 6px 0; } .samples img { image-rendering: pixelated; max-width: 100%;
       border: 1px solid #ddd; min-width: 360px; } .samples img.hidden { display: none; }
.samples input { width: 320px; vertical-align: middle; } figcaption { color: #555; font-size: 13px; }
pre { background: #f6f6f6; padding: 8px; overflow-x: auto; font-size: 12px; }
#status { color: #999; font-size: 12px; margin-top: 24px; }
</style></head><body>
<h1>%TITLE%</h1><ul>%TOC%</ul>
%BODY%
<div id="status" data-done="0">status not written: the page did not finish loading</div>
<script type="application/json" id="chart-data">%DATA%</script>
<script>
(function () {
  var COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                "#7f7f7f", "#bcbd22"];

  function ticks(lo, hi, n) {  // round numbers between lo and hi
    var span = hi - lo || Math.abs(hi) || 1, step = Math.pow(10, Math.floor(Math.log10(span / n)));
    [1, 2, 5, 10].some(function (m) { if (span / (step * m) <= n) { step *= m; return true; } return false; });
    var out = [];
    for (var t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(+t.toPrecision(12));
    return out;
  }

  function fmt(v) { return Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(1) : String(+v.toPrecision(4)); }

  // Draws one chart; returns how many pixels its curves coloured (0: nothing visible was drawn).
  function draw(canvas, chart) {
    var ratio = window.devicePixelRatio || 1, W = chart.w, H = chart.h;
    canvas.width = W * ratio; canvas.height = H * ratio;
    var ctx = canvas.getContext("2d");
    ctx.scale(ratio, ratio);
    var L = 58, R = 12, T = 26, B = 34, xs = [], ys = [];
    chart.series.forEach(function (s) { s.points.forEach(function (p) {
      if (p[1] !== null) { xs.push(p[0]); ys.push(p[1]); } }); });
    var x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs);
    var y0 = Math.min.apply(null, ys), y1 = Math.max.apply(null, ys);
    if (x0 === x1) { x0 -= 1; x1 += 1; }
    if (y0 === y1) { y0 -= Math.abs(y0) * 0.1 || 1; y1 += Math.abs(y1) * 0.1 || 1; }
    var pad = (y1 - y0) * 0.05; y0 -= pad; y1 += pad;
    var X = function (x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
    var Y = function (y) { return T + (y1 - y) / (y1 - y0) * (H - T - B); };
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H);
    ctx.font = "11px sans-serif"; ctx.strokeStyle = "#e5e5e5"; ctx.fillStyle = "#666"; ctx.lineWidth = 1;
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    ticks(y0, y1, 6).forEach(function (t) {
      ctx.beginPath(); ctx.moveTo(L, Y(t)); ctx.lineTo(W - R, Y(t)); ctx.stroke(); ctx.fillText(fmt(t), L - 4, Y(t)); });
    ctx.textAlign = "center"; ctx.textBaseline = "top";
    ticks(x0, x1, 7).forEach(function (t) {
      ctx.beginPath(); ctx.moveTo(X(t), T); ctx.lineTo(X(t), H - B); ctx.stroke(); ctx.fillText(fmt(t), X(t), H - B + 4); });
    ctx.fillText("step", (L + W - R) / 2, H - 14);
    ctx.strokeStyle = "#999"; ctx.strokeRect(L, T, W - L - R, H - T - B);
    ctx.font = "bold 12px sans-serif"; ctx.textAlign = "left"; ctx.fillStyle = "#222";
    ctx.fillText(chart.title, L, 6);
    chart.series.forEach(function (s, k) {
      var pen = false;
      ctx.strokeStyle = ctx.fillStyle = COLORS[k % COLORS.length]; ctx.lineWidth = 1.6; ctx.beginPath();
      s.points.forEach(function (p) {
        if (p[1] === null) { pen = false; return; }  // a gap where a value was not finite
        if (pen) ctx.lineTo(X(p[0]), Y(p[1])); else ctx.moveTo(X(p[0]), Y(p[1]));
        pen = true;
      });
      ctx.stroke();
      if (s.points.length === 1) { ctx.beginPath(); ctx.arc(X(s.points[0][0]), Y(s.points[0][1]), 3, 0, 7); ctx.fill(); }
    });
    var ink = inked(ctx, canvas);  // before the legend, whose colour swatches would count too
    var lx = L + 8, ly = T + 6;
    ctx.font = "11px sans-serif";
    var lw = Math.max.apply(null, chart.series.map(function (s) { return ctx.measureText(s.label).width; }));
    ctx.fillStyle = "rgba(255,255,255,0.85)"; ctx.fillRect(lx - 4, ly - 3, lw + 24, chart.series.length * 14 + 4);
    chart.series.forEach(function (s, k) {
      ctx.fillStyle = COLORS[k % COLORS.length]; ctx.fillRect(lx, ly + 3, 10, 3);
      ctx.fillStyle = "#333"; ctx.fillText(s.label, lx + 14, ly); ly += 14;
    });
    return ink;
  }

  // Coloured pixels: only the curves are drawn in colour, axes and text are grey.
  function inked(ctx, canvas) {
    var d = ctx.getImageData(0, 0, canvas.width, canvas.height).data, n = 0;
    for (var i = 0; i < d.length; i += 4) if (d[i + 3] && (d[i] !== d[i + 1] || d[i + 1] !== d[i + 2])) n++;
    return n;
  }

  var charts = JSON.parse(document.getElementById("chart-data").textContent), byId = {}, drawn = 0;
  charts.forEach(function (c) { byId[c.id] = c; });
  document.querySelectorAll("canvas.chart").forEach(function (cv) {
    var c = byId[cv.getAttribute("data-chart")];
    if (c && draw(cv, c) > 0) drawn++;
  });

  document.querySelectorAll(".samples").forEach(function (box) {
    var imgs = box.querySelectorAll("img"), label = box.querySelector(".stepno");
    box.querySelector("input").addEventListener("input", function (e) {
      imgs.forEach(function (im, k) { im.classList.toggle("hidden", k !== +e.target.value); });
      label.textContent = imgs[+e.target.value].getAttribute("data-step");
    });
  });

  window.__report.curves = drawn;
})();
</script>
</body></html>
"""
