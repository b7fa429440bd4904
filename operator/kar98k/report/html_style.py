"""Inline stylesheet of the HTML report (system fonts only: nothing to download), light and dark."""

CSS = """
:root {
  --bg: #f5f6f8; --panel: #ffffff; --fg: #1c2330; --muted: #667085; --line: #e6e8ec;
  --axis: #98a2b3; --target: #475467; --achieved: #2563eb; --spike: rgba(245, 158, 11, 0.16);
  --spike-edge: rgba(217, 119, 6, 0.55); --pass: #079455; --pass-bg: #dcfae6;
  --fail: #d92d20; --fail-bg: #fee4e2; --none: #475467; --none-bg: #eaecf0;
  --run: #1570ef; --run-bg: #d1e9ff; --warn: #b54708; --warn-bg: #fef0c7;
  --p50: #16a34a; --p95: #f59e0b; --p99: #dc2626; --hover: rgba(16, 24, 40, 0.06);
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0f1419; --panel: #171d25; --fg: #e6e9ee; --muted: #98a2b3; --line: #262f3b;
    --axis: #4b5565; --target: #cbd5e1; --achieved: #60a5fa; --spike: rgba(245, 158, 11, 0.14);
    --pass-bg: #053321; --pass: #47cd89; --fail-bg: #55160c; --fail: #f97066;
    --none-bg: #262f3b; --none: #cbd5e1; --run-bg: #102a56; --run: #84caff;
    --warn-bg: #4e1d09; --warn: #fdb022; --hover: rgba(255, 255, 255, 0.06);
  }
}
* { box-sizing: border-box; }
body {
  margin: 0; background: var(--bg); color: var(--fg);
  font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
    "Noto Sans", "DejaVu Sans", sans-serif;
  -webkit-font-smoothing: antialiased;
}
main { max-width: 1120px; margin: 0 auto; padding: 28px 20px 40px; }
header { margin-bottom: 18px; }
.title-row { display: flex; align-items: center; gap: 12px; flex-wrap: wrap; }
h1 { font-size: 26px; line-height: 1.2; margin: 0; font-weight: 650; word-break: break-all; }
h1 .brand { color: var(--muted); font-weight: 500; margin-right: 4px; }
h2 { font-size: 15px; margin: 0 0 12px; font-weight: 600; letter-spacing: 0.01em; }
.meta { color: var(--muted); margin: 6px 0 0; }
.badge {
  display: inline-block; padding: 4px 12px; border-radius: 999px; font-weight: 700;
  font-size: 13px; letter-spacing: 0.06em;
}
.badge.pass { color: var(--pass); background: var(--pass-bg); }
.badge.fail { color: var(--fail); background: var(--fail-bg); }
.badge.none { color: var(--none); background: var(--none-bg); }
.badge.running { color: var(--run); background: var(--run-bg); }
.badge.interrupted { color: var(--warn); background: var(--warn-bg); }
.figures {
  display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr)); gap: 12px;
  margin-bottom: 16px;
}
.card, .panel {
  background: var(--panel); border: 1px solid var(--line); border-radius: 10px;
}
.card { padding: 12px 14px; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase;
  letter-spacing: 0.05em; }
.card .value { font-size: 22px; font-weight: 650; font-variant-numeric: tabular-nums;
  margin-top: 2px; }
.card .sub { color: var(--muted); font-size: 12px; font-variant-numeric: tabular-nums; }
.panel { padding: 16px 18px; margin-bottom: 16px; }
.caption, .muted { color: var(--muted); font-size: 12.5px; margin: 8px 0 0; }
.warning {
  color: var(--warn); background: var(--warn-bg); padding: 8px 12px; border-radius: 8px;
  margin: 0 0 16px;
}
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 7px 10px; border-bottom: 1px solid var(--line); text-align: left;
  white-space: nowrap; }
td:last-child { white-space: normal; }
th { color: var(--muted); font-weight: 600; font-size: 12px; text-transform: uppercase;
  letter-spacing: 0.04em; }
tbody tr:hover { background: var(--hover); }
.num { text-align: right; }
.pill { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px;
  font-weight: 600; }
.pill.pass { color: var(--pass); background: var(--pass-bg); }
.pill.fail { color: var(--fail); background: var(--fail-bg); }
footer { color: var(--muted); font-size: 12px; text-align: center; margin-top: 24px; }
svg.chart { width: 100%; height: auto; display: block; overflow: visible; }
svg text { font-family: inherit; }
.axis { stroke: var(--axis); stroke-width: 1; }
.grid { stroke: var(--line); stroke-width: 1; }
.tick, .unit { font-size: 11px; fill: var(--muted); font-variant-numeric: tabular-nums; }
.legend { font-size: 12px; fill: var(--fg); }
.empty { font-size: 14px; fill: var(--muted); text-anchor: middle; }
.line { fill: none; stroke-width: 2; stroke-linejoin: round; stroke-linecap: round; }
.line.target { stroke: var(--target); stroke-dasharray: 6 4; stroke-width: 1.75; }
.line.achieved { stroke: var(--achieved); }
.area.achieved { fill: var(--achieved); opacity: 0.09; stroke: none; }
.line.p50 { stroke: var(--p50); } .line.p95 { stroke: var(--p95); }
.line.p99 { stroke: var(--p99); }
.tline { fill: none; stroke-width: 1.75; stroke-linejoin: round; stroke-linecap: round; }
.tl0 { stroke: #2563eb; fill: #2563eb; } .tl1 { stroke: #16a34a; fill: #16a34a; }
.tl2 { stroke: #f59e0b; fill: #f59e0b; } .tl3 { stroke: #9333ea; fill: #9333ea; }
.tl4 { stroke: #0891b2; fill: #0891b2; } .tl5 { stroke: #db2777; fill: #db2777; }
.tl6 { stroke: #65a30d; fill: #65a30d; } .tl7 { stroke: #78716c; fill: #78716c; }
path.tline { fill: none; }
line.threshold { stroke: var(--fail); stroke-width: 1.5; stroke-dasharray: 5 4; }
.threshold-label { fill: var(--fail); font-size: 11px; }
circle.p50 { fill: var(--p50); } circle.p95 { fill: var(--p95); }
circle.p99 { fill: var(--p99); } circle.achieved { fill: var(--achieved); }
circle.target { fill: var(--target); }
.spike { fill: var(--spike); }
.swatch.spike { stroke: var(--spike-edge); stroke-width: 1; }
.swatch.target { fill: var(--target); } .swatch.achieved { fill: var(--achieved); }
.swatch.p50 { fill: var(--p50); } .swatch.p95 { fill: var(--p95); }
.swatch.p99 { fill: var(--p99); }
.hover { fill: transparent; }
.hover:hover { fill: var(--hover); }
.line.errors { stroke: var(--fail); } circle.errors { fill: var(--fail); }
circle.step-fail { fill: none; stroke: var(--fail); stroke-width: 2; }
.bar-label { font-size: 12.5px; fill: var(--fg); }
.bar-total { font-size: 12px; fill: var(--muted); font-variant-numeric: tabular-nums; }
.seg:hover { opacity: 0.8; }
.o-ok { fill: #22c55e; } .o-ok2 { fill: #14b8a6; } .o-3xx { fill: #38bdf8; }
.o-1xx { fill: #a3a3a3; } .o-4xx { fill: #f59e0b; } .o-5xx { fill: #ef4444; }
.o-timeout { fill: #a855f7; } .o-connect { fill: #64748b; } .o-error { fill: #78716c; }
.o-x0 { fill: #e11d48; } .o-x1 { fill: #db2777; } .o-x2 { fill: #c026d3; }
.o-x3 { fill: #9333ea; } .o-x4 { fill: #ea580c; } .o-x5 { fill: #b91c1c; }
@media print { body { background: #fff; } .panel, .card { break-inside: avoid; } }
"""
