// Scaling charts: one SVG line chart per chart id (bench/charts/<id>.svg),
// drawn from the newest run of each group in bench/results/. A case joins a
// chart through its `chart` point (harness.ts ChartPoint); each contender is
// one line, x is the case's parameter (log scale), y the contender's figure
// (log scale: peers differ by orders of magnitude). A small SVG writer of our
// own: no chart dependency.

import { mkdirSync, writeFileSync, readdirSync, rmSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { CaseResult, ChartPoint } from './harness.js';
import { BENCH_DIR, loadReports, fmt, RunReport } from './report.js';

export const CHARTS_DIR = join(BENCH_DIR, 'charts');

/** One line of a chart: a contender's figure at each x. */
export interface Series {
  name: string;
  role: 'sediment' | 'peer';
  points: { x: number; y: number }[];
}

/** Everything needed to draw one chart. */
export interface ChartData {
  id: string;
  title: string;
  xLabel: string;
  xFormat: ChartPoint['xFormat'];
  unit: string;
  higherIsBetter: boolean;
  series: Series[];
  /** Result files the points come from. */
  sources: string[];
}

/**
 * Collects the chart points of the newest run of each group (the runs
 * RESULTS.md shows). Throws when the cases of one chart disagree on the unit.
 */
export function collectCharts(runs: { file: string; report: RunReport }[] = loadReports()): ChartData[] {
  const newest = new Map<string, { file: string; report: RunReport }>();
  for (const run of runs) for (const g of run.report.groups) newest.set(g.name, run);
  const charts = new Map<string, ChartData>();
  for (const [group, run] of newest) {
    for (const c of run.report.cases as CaseResult[]) {
      if (c.group !== group || !c.chart) continue;
      const p = c.chart;
      let ch = charts.get(p.id);
      if (!ch) {
        ch = { id: p.id, title: p.title, xLabel: p.xLabel, xFormat: p.xFormat, unit: c.unit, higherIsBetter: c.higherIsBetter, series: [], sources: [] };
        charts.set(p.id, ch);
      }
      if (ch.unit !== c.unit) throw new Error(`chart ${p.id}: case '${c.name}' is in ${c.unit}, others in ${ch.unit}`);
      if (!ch.sources.includes(run.file)) ch.sources.push(run.file);
      for (const k of c.contenders) {
        let s = ch.series.find((x) => x.name === k.name);
        if (!s) { s = { name: k.name, role: k.role, points: [] }; ch.series.push(s); }
        s.points = s.points.filter((q) => q.x !== p.x);
        s.points.push({ x: p.x, y: k.figure });
      }
    }
  }
  for (const ch of charts.values()) {
    for (const s of ch.series) s.points.sort((a, b) => a.x - b.x);
    // sediment lines first (drawn on top last, listed first in the legend).
    ch.series.sort((a, b) => (a.role === b.role ? 0 : a.role === 'sediment' ? -1 : 1));
  }
  return [...charts.values()].sort((a, b) => a.id.localeCompare(b.id));
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** x values as labels: 100 B, 16 KiB, 1 MiB, or 1, 10, 10k, 1M. */
export function formatX(x: number, format: ChartPoint['xFormat']): string {
  if (format === 'bytes') {
    if (x >= 1 << 20 && x % (1 << 20) === 0) return `${x / (1 << 20)} MiB`;
    if (x >= 1024 && x % 1024 === 0) return `${x / 1024} KiB`;
    return `${x} B`;
  }
  if (x >= 1e6 && x % 1e6 === 0) return `${x / 1e6}M`;
  if (x >= 1e3 && x % 1e3 === 0) return `${x / 1e3}k`;
  return String(x);
}

const COLORS = { sediment: ['#1558d6', '#0b8a8a'], peer: ['#e8710a', '#1e8e3e', '#9334e6', '#c5221f', '#5f6368', '#b08800'] };
const MARKERS = ['circle', 'square', 'diamond', 'triangle'] as const;

function marker(kind: (typeof MARKERS)[number], x: number, y: number, color: string): string {
  const r = 4.5;
  switch (kind) {
    case 'circle': return `<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="${r}" fill="${color}"/>`;
    case 'square': return `<rect x="${(x - r).toFixed(1)}" y="${(y - r).toFixed(1)}" width="${2 * r}" height="${2 * r}" fill="${color}"/>`;
    case 'diamond': return `<path d="M${x.toFixed(1)} ${(y - r - 1).toFixed(1)}l${r + 1} ${r + 1}l${-r - 1} ${r + 1}l${-r - 1} ${-r - 1}z" fill="${color}"/>`;
    case 'triangle': return `<path d="M${x.toFixed(1)} ${(y - r - 1).toFixed(1)}l${r + 1} ${2 * r}h${-2 * r - 2}z" fill="${color}"/>`;
  }
}

/** Compact tick labels: 0.0005, 2, 500, 20k, 1M. */
export function tickLabel(v: number): string {
  if (v >= 1e6) return `${Number((v / 1e6).toPrecision(2))}M`;
  if (v >= 1e4) return `${Number((v / 1e3).toPrecision(2))}k`;
  return String(Number(v.toPrecision(2)));
}

/** Decade ticks (1, 2, 5 × 10^k) covering [lo, hi]. */
function logTicks(lo: number, hi: number): { v: number; major: boolean }[] {
  const out: { v: number; major: boolean }[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= lo * 0.999 && v <= hi * 1.001) out.push({ v, major: m === 1 });
    }
  }
  return out;
}

/** Renders one chart as a standalone SVG document. */
export function renderChart(ch: ChartData): string {
  const W = 760;
  const left = 84, right = 24, top = 58, plotH = 300;
  const legendRows = ch.series.length;
  const H = top + plotH + 56 + legendRows * 20 + 30;
  const plotW = W - left - right;
  const xs = [...new Set(ch.series.flatMap((s) => s.points.map((p) => p.x)))].sort((a, b) => a - b);
  const ys = ch.series.flatMap((s) => s.points.map((p) => p.y)).filter((y) => y > 0 && Number.isFinite(y));
  if (xs.length === 0 || ys.length === 0) throw new Error(`chart ${ch.id}: no points`);
  // x: log scale with half a step of margin on each side.
  const lx = xs.map(Math.log10);
  const span = Math.max(lx[lx.length - 1]! - lx[0]!, 1);
  const x0 = lx[0]! - span * 0.06, x1 = lx[lx.length - 1]! + span * 0.06;
  const X = (x: number) => left + ((Math.log10(x) - x0) / (x1 - x0)) * plotW;
  // y: log scale from the decade tick below the smallest figure to the one above the largest.
  let y0 = 10 ** Math.floor(Math.log10(Math.min(...ys)));
  let y1 = 10 ** Math.ceil(Math.log10(Math.max(...ys)));
  if (y1 / y0 < 10) { y0 /= 2; y1 *= 2; }
  const Y = (y: number) => top + plotH - ((Math.log10(y) - Math.log10(y0)) / (Math.log10(y1) - Math.log10(y0))) * plotH;

  const o: string[] = [];
  o.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  o.push(`<title>${esc(ch.title)}</title>`);
  o.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  o.push(`<text x="${left}" y="24" font-size="15" font-weight="bold" fill="#202124">${esc(ch.title)}</text>`);
  o.push(`<text x="${left}" y="42" fill="#5f6368">${esc(`${ch.unit}, ${ch.higherIsBetter ? 'higher is better' : 'lower is better'}; both axes logarithmic`)}</text>`);
  // Grid and y labels.
  // Over more than three decades only the decades are labelled (the 2 and 5 lines stay as a light grid).
  const labelMinor = Math.log10(y1 / y0) <= 3.01;
  for (const t of logTicks(y0, y1)) {
    const y = Y(t.v);
    o.push(`<line x1="${left}" y1="${y.toFixed(1)}" x2="${left + plotW}" y2="${y.toFixed(1)}" stroke="${t.major ? '#d0d4d9' : '#eceef1'}"/>`);
    if (t.major || labelMinor) o.push(`<text x="${left - 8}" y="${(y + 4).toFixed(1)}" text-anchor="end" fill="${t.major ? '#3c4043' : '#80868b'}">${esc(tickLabel(t.v))}</text>`);
  }
  for (const x of xs) {
    const px = X(x);
    o.push(`<line x1="${px.toFixed(1)}" y1="${top}" x2="${px.toFixed(1)}" y2="${top + plotH}" stroke="#eceef1"/>`);
    o.push(`<text x="${px.toFixed(1)}" y="${top + plotH + 18}" text-anchor="middle" fill="#3c4043">${esc(formatX(x, ch.xFormat))}</text>`);
  }
  o.push(`<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#9aa0a6"/>`);
  o.push(`<text x="${left + plotW / 2}" y="${top + plotH + 38}" text-anchor="middle" fill="#202124">${esc(ch.xLabel)}</text>`);
  o.push(`<text transform="translate(16 ${top + plotH / 2}) rotate(-90)" text-anchor="middle" fill="#202124">${esc(ch.unit)}</text>`);
  // Lines: peers first, sediment on top.
  let sed = 0, peer = 0;
  const styled = ch.series.map((s, i) => {
    const color = s.role === 'sediment' ? COLORS.sediment[sed++ % COLORS.sediment.length]! : COLORS.peer[peer++ % COLORS.peer.length]!;
    return { s, color, mark: MARKERS[i % MARKERS.length]!, dash: s.role === 'sediment' ? '' : (i % 2 === 0 ? '' : ' stroke-dasharray="6 4"') };
  });
  for (const { s, color, mark, dash } of [...styled].reverse()) {
    const pts = s.points.filter((p) => p.y > 0 && Number.isFinite(p.y));
    const width = s.role === 'sediment' ? 3 : 2;
    if (pts.length > 1) o.push(`<polyline fill="none" stroke="${color}" stroke-width="${width}"${dash} stroke-linejoin="round" points="${pts.map((p) => `${X(p.x).toFixed(1)},${Y(p.y).toFixed(1)}`).join(' ')}"/>`);
    for (const p of pts) o.push(marker(mark, X(p.x), Y(p.y), color));
  }
  // Value labels on the sediment line(s).
  for (const { s, color } of styled) {
    if (s.role !== 'sediment') continue;
    for (const p of s.points) o.push(`<text x="${X(p.x).toFixed(1)}" y="${(Y(p.y) - 9).toFixed(1)}" text-anchor="middle" font-size="11" fill="${color}" stroke="#ffffff" stroke-width="3" paint-order="stroke">${esc(fmt(p.y))}</text>`);
  }
  // Legend under the plot.
  let ly = top + plotH + 62;
  for (const { s, color, mark, dash } of styled) {
    o.push(`<line x1="${left}" y1="${ly - 4}" x2="${left + 30}" y2="${ly - 4}" stroke="${color}" stroke-width="${s.role === 'sediment' ? 3 : 2}"${dash}/>`);
    o.push(marker(mark, left + 15, ly - 4, color));
    o.push(`<text x="${left + 40}" y="${ly}" fill="#202124"${s.role === 'sediment' ? ' font-weight="bold"' : ''}>${esc(s.name)}</text>`);
    ly += 20;
  }
  o.push(`<text x="${left}" y="${H - 10}" font-size="10" fill="#80868b">${esc(`bench/results/${ch.sources.join(', ')} (npm run bench); figures are medians`)}</text>`);
  o.push('</svg>');
  return o.join('\n') + '\n';
}

/** Rewrites bench/charts/*.svg from the stored runs; removes charts no run defines any more. Returns the files written. */
export function writeCharts(): string[] {
  const charts = collectCharts();
  mkdirSync(CHARTS_DIR, { recursive: true });
  const keep = new Set(charts.map((c) => `${c.id}.svg`));
  if (existsSync(CHARTS_DIR)) for (const f of readdirSync(CHARTS_DIR)) if (f.endsWith('.svg') && !keep.has(f)) rmSync(join(CHARTS_DIR, f));
  const files: string[] = [];
  for (const ch of charts) {
    const file = join(CHARTS_DIR, `${ch.id}.svg`);
    writeFileSync(file, renderChart(ch));
    files.push(file);
  }
  return files;
}
