// Run reports: the machine description, the results JSON
// (bench/results/<date-time>.json) and bench/RESULTS.md, which shows for
// every group the newest run that included it.

import { cpus, totalmem, platform, arch, loadavg } from 'node:os';
import { mkdirSync, readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type { CaseResult, HarnessOptions } from './harness.js';

/** bench/ in the source tree (this file runs from dist/bench/). */
export const BENCH_DIR = fileURLToPath(new URL('../../bench/', import.meta.url));
export const RESULTS_DIR = join(BENCH_DIR, 'results');
export const RESULTS_MD = join(BENCH_DIR, 'RESULTS.md');

export interface MachineInfo {
  cpu: string;
  cores: number;
  totalMemoryBytes: number;
  platform: string;
  arch: string;
  node: string;
  v8: string;
  /** 1-minute load average when the run started (other processes compete for the cores above ~0). */
  loadAverage1m: number;
}

export function machineInfo(): MachineInfo {
  const c = cpus();
  return {
    cpu: c[0]?.model.trim() ?? 'unknown',
    cores: c.length,
    totalMemoryBytes: totalmem(),
    platform: platform(),
    arch: arch(),
    node: process.version,
    v8: process.versions.v8,
    loadAverage1m: loadavg()[0]!,
  };
}

/** 1-minute load average above which a run is flagged as disturbed. */
export const LOAD_WARNING = 1.0;

export interface GroupInfo {
  name: string;
  title: string;
  description: string;
  /** Wall-clock time of the group in that run, seconds (setup included; runs before issue 8 lack it). */
  elapsedSeconds?: number;
}

export interface RunReport {
  /** ISO date-time the run started. */
  startedAt: string;
  finishedAt: string;
  elapsedSeconds: number;
  machine: MachineInfo;
  /** 1-minute load average when the run finished. */
  loadAverageEnd1m: number;
  options: HarnessOptions;
  /** Groups this run covered, in order (groups that failed are not among them). */
  groups: GroupInfo[];
  cases: CaseResult[];
  /** Groups that threw, with the error: their cases are left out of the run. */
  failures?: { group: string; error: string }[];
}

/** File name of a run: its start time, with ':' replaced for portable names. */
export function reportFileName(startedAt: string): string {
  return `${startedAt.replace(/:/g, '-').replace(/\.\d+Z$/, 'Z')}.json`;
}

export function writeReport(r: RunReport): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, reportFileName(r.startedAt));
  writeFileSync(file, JSON.stringify(r, null, 2) + '\n');
  return file;
}

/** Every stored run, oldest first. */
export function loadReports(): { file: string; report: RunReport }[] {
  if (!existsSync(RESULTS_DIR)) return [];
  return readdirSync(RESULTS_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .flatMap((f) => {
      try {
        const report = JSON.parse(readFileSync(join(RESULTS_DIR, f), 'utf8')) as RunReport;
        return report.cases && report.groups ? [{ file: f, report }] : [];
      } catch {
        return [];
      }
    });
}

/** Formats a figure with 3 significant digits (no exponent for usual ranges). */
export function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  if (a >= 0.01) return x.toFixed(3);
  return x.toPrecision(3);
}

export function fmtRatio(x: number): string {
  return `${x >= 10 ? x.toFixed(1) : x.toFixed(2)}×`;
}

function esc(s: string): string {
  return s.replace(/\|/g, '\\|');
}

function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(1)} GiB`;
}

/** Renders the tables of one group's cases (from one run). */
export function renderGroup(g: GroupInfo, cases: CaseResult[], from: { file: string; report: RunReport }): string {
  const out: string[] = [];
  const m = from.report.machine;
  out.push(`## ${g.name}: ${g.title}`, '');
  out.push(g.description.trim(), '');
  if ((m.loadAverage1m ?? 0) > LOAD_WARNING || (from.report.loadAverageEnd1m ?? 0) > LOAD_WARNING) {
    out.push(`**Warning:** other processes were loading the machine during this run (1-minute load average above ${LOAD_WARNING} ` +
      `on ${m.cores} cores), so absolute figures, and to a lesser degree ratios, are disturbed. Re-run on a quiet machine.`, '');
  }
  out.push(`Run \`results/${from.file}\` (${m.cpu}, ${m.cores} cores, Node ${m.node}; ` +
    `1-minute load average ${m.loadAverage1m?.toFixed(2) ?? '?'} at the start, ${from.report.loadAverageEnd1m?.toFixed(2) ?? '?'} at the end` +
    `${g.elapsedSeconds !== undefined ? `; the group took ${g.elapsedSeconds.toFixed(0)} s` : ''}).`, '');
  // Scaling charts drawn from these cases (bench/charts.ts).
  const charts = new Map<string, string>();
  for (const c of cases) if (c.chart && !charts.has(c.chart.id)) charts.set(c.chart.id, c.chart.title);
  for (const [id, title] of charts) out.push(`![${title.replace(/[[\]]/g, '')}](charts/${id}.svg)`, '');

  // Summary: one row per case, one column per contender.
  const columns: string[] = [];
  for (const c of cases) for (const k of c.contenders) if (!columns.includes(k.name)) columns.push(k.name);
  out.push(`| case | unit | ${columns.map(esc).join(' | ')} |`);
  out.push(`|---|---|${columns.map(() => '---:').join('|')}|`);
  for (const c of cases) {
    const cells = columns.map((name) => {
      const k = c.contenders.find((x) => x.name === name);
      if (!k) return '';
      if (name === c.sediment.name) return `**${fmt(k.figure)}**`;
      const r = c.ratios.find((x) => x.sediment === c.sediment.name && x.peer === name);
      if (r) return `${fmt(k.figure)} (${fmtRatio(r.ratio)})`;
      const primary = c.contenders.find((x) => x.name === c.sediment.name)!;
      return `${fmt(k.figure)} (${fmtRatio(k.secondsPerOp.median / primary.secondsPerOp.median)})`;
    });
    out.push(`| ${esc(c.name)} | ${c.unit}${c.higherIsBetter ? ' ↑' : ' ↓'} | ${cells.join(' | ')} |`);
  }
  out.push('');
  out.push('Bold: the case\'s first sediment contender. (n×): its speed divided by that contender\'s speed ' +
    '(> 1: sediment is faster; for ↓ units, lower is better, and the ratio is still a speed ratio).', '');

  const bars = cases.flatMap((c) => c.bars.map((b) => ({ c, b })));
  if (bars.length > 0) {
    out.push('| requirement | measured | required | met |', '|---|---:|---:|:---:|');
    for (const { c, b } of bars) {
      const isRatio = b.against !== undefined;
      const measured = isRatio ? `${fmtRatio(b.measured)} vs ${esc(b.against!)}` : `${fmt(b.measured)} ${c.unit}`;
      const required = isRatio ? `≥ ${fmtRatio(b.required)}` : `${c.higherIsBetter ? '≥' : '≤'} ${fmt(b.required)} ${c.unit}`;
      out.push(`| ${esc(b.label)} | ${measured} | ${required} | ${b.met ? 'yes' : '**no**'} |`);
    }
    out.push('');
  }

  out.push('<details><summary>Spread per contender (figures at the median, p25 and p75, and p99 sample times; round spread = range of the per-round medians / median)</summary>', '');
  out.push('| case | contender | role | median | at p25 – p75 time | at p99 time (slow tail) | round spread | ops/sample × samples | verified |');
  out.push('|---|---|---|---:|---:|---:|---:|---:|:---:|');
  for (const c of cases) {
    for (const k of c.contenders) {
      out.push(`| ${esc(c.name)} | ${esc(k.name)} | ${k.role} | ${fmt(k.figure)} ${c.unit} | ${fmt(k.figureP25)} – ${fmt(k.figureP75)} | ` +
        `${fmt(k.figureP99)} | ${(k.secondsPerOp.roundSpread * 100).toFixed(1)}% | ${k.opsPerSample} × ${k.samples} | ${k.verified ? 'yes' : '–'} |`);
    }
  }
  out.push('', '</details>', '');
  const notes = new Map<string, string>();
  for (const c of cases) for (const k of c.contenders) if (k.note && !notes.has(k.name)) notes.set(k.name, k.note);
  if (notes.size > 0) {
    out.push('Contenders:', '');
    for (const [name, note] of notes) out.push(`- **${esc(name)}**: ${note}`);
    out.push('');
  }
  return out.join('\n');
}

/**
 * Rewrites RESULTS.md from the stored runs: for each group, the newest run
 * that included it. Groups appear in the order of `order` (the registry),
 * then any others found in old runs.
 */
export function writeResultsMarkdown(order: string[]): void {
  const runs = loadReports();
  const newest = new Map<string, { g: GroupInfo; run: { file: string; report: RunReport } }>();
  for (const run of runs) for (const g of run.report.groups) newest.set(g.name, { g, run });
  const names = [...order.filter((n) => newest.has(n)), ...[...newest.keys()].filter((n) => !order.includes(n))];
  const out: string[] = [];
  out.push('# Benchmark results', '');
  out.push('Generated by `npm run bench` (bench/run.ts) from the newest run of each group in `bench/results/`; ' +
    'do not edit by hand. Method and how to add a group: [bench/README.md](README.md).', '');
  const machines = new Set<string>();
  for (const n of names) {
    const m = newest.get(n)!.run.report.machine;
    machines.add(`${m.cpu}, ${m.cores} cores, ${gib(m.totalMemoryBytes)} RAM, ${m.platform}/${m.arch}, Node ${m.node} (V8 ${m.v8})`);
  }
  for (const m of machines) out.push(`Machine: ${m}.`);
  out.push('');
  const times = names.map((n) => ({ n, s: newest.get(n)!.g.elapsedSeconds }));
  if (times.every((t) => t.s !== undefined)) {
    const total = times.reduce((a, t) => a + t.s!, 0);
    out.push(`Run time (the newest run of each group, setup included): ${times.map((t) => `${t.n} ${t.s!.toFixed(0)} s`).join(', ')}; ` +
      `**${total.toFixed(0)} s in all** (budget for the whole suite: 600 s on a 2-core machine).`, '');
  }
  out.push('Figures are medians of per-operation times over interleaved rounds (all contenders of a case run in one process, ' +
    'on the same data, after a warm-up; outputs are checked equal first). Ratios are speed ratios within one run: ' +
    'sediment ÷ peer, > 1 means sediment is faster.', '');

  const allBars = names.flatMap((n) => {
    const { run } = newest.get(n)!;
    return run.report.cases.filter((c) => c.group === n).flatMap((c) => c.bars.map((b) => ({ c, b })));
  });
  if (allBars.length > 0) {
    out.push('## Requirements', '', '| group | requirement | measured | met |', '|---|---|---:|:---:|');
    for (const { c, b } of allBars) {
      const measured = b.against !== undefined ? `${fmtRatio(b.measured)} (≥ ${fmtRatio(b.required)})`
        : `${fmt(b.measured)} ${c.unit} (${c.higherIsBetter ? '≥' : '≤'} ${fmt(b.required)})`;
      out.push(`| ${c.group} | ${esc(b.label)} | ${measured} | ${b.met ? 'yes' : '**no**'} |`);
    }
    out.push('');
  }
  for (const n of names) {
    const { g, run } = newest.get(n)!;
    out.push(renderGroup(g, run.report.cases.filter((c) => c.group === n), run));
  }
  writeFileSync(RESULTS_MD, out.join('\n').trimEnd() + '\n');
}
