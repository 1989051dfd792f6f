// Benchmark runner: `npm run bench [-- [options] [group...]]`.
//
//   npm run bench                 every registered group
//   npm run bench -- crc xxhash   only these groups
//   npm run bench -- --list       list the groups
//   options: --quick (short smoke run), --time=MS (measured time per
//   contender per case), --rounds=N, --no-save (print only; no JSON, no
//   RESULTS.md)
//
// Progress goes to stderr, one line per case. Results go to
// bench/results/<date-time>.json and bench/RESULTS.md. Groups live in
// bench/groups/ and are registered in bench/groups/index.ts.

import { DEFAULT_OPTIONS, HarnessOptions, CaseResult, runCase, ContenderResult } from './harness.js';
import { loadavg } from 'node:os';
import { GROUPS } from './groups/index.js';
import { machineInfo, writeReport, writeResultsMarkdown, RunReport, fmt, fmtRatio, RESULTS_MD, LOAD_WARNING } from './report.js';
import { writeCharts } from './charts.js';
import { writeHeadline, README } from './headline.js';
import { checkPeers } from './lib/preflight.js';

/** The whole suite must finish within this on a 2-core machine (issue 8). */
const SUITE_BUDGET_SECONDS = 600;

function usage(): string {
  return 'usage: npm run bench -- [--quick] [--time=MS] [--rounds=N] [--no-save] [--list] [group...]\n' +
    `groups: ${GROUPS.map((g) => g.name).join(', ')}`;
}

function parseArgs(argv: string[]): { opts: HarnessOptions; groups: string[]; save: boolean; list: boolean } {
  const opts: HarnessOptions = { ...DEFAULT_OPTIONS };
  const groups: string[] = [];
  let save = true;
  let list = false;
  for (const a of argv) {
    if (a === '--quick') Object.assign(opts, { timeMs: 300, rounds: 3, warmupMs: 50 });
    else if (a.startsWith('--time=')) opts.timeMs = Number(a.slice(7));
    else if (a.startsWith('--rounds=')) opts.rounds = Number(a.slice(9));
    else if (a === '--no-save') save = false;
    else if (a === '--list') list = true;
    else if (a === '--help' || a === '-h') { console.log(usage()); process.exit(0); }
    else if (a.startsWith('-')) throw new Error(`unknown option ${a}\n${usage()}`);
    else groups.push(a);
  }
  if (!(opts.timeMs > 0) || !Number.isInteger(opts.rounds) || opts.rounds < 1) throw new Error(`bad --time or --rounds\n${usage()}`);
  return { opts, groups, save, list };
}

function progressLine(c: CaseResult): string {
  const fig = (k: ContenderResult) => {
    const r = c.ratios.find((x) => x.sediment === c.sediment.name && x.peer === k.name);
    return `${k.name} ${fmt(k.figure)}${r ? ` (${fmtRatio(r.ratio)})` : ''}`;
  };
  const bars = c.bars.map((b) => `${b.met ? 'MET' : 'NOT MET'}: ${b.label}`).join('; ');
  return `[${c.group}] ${c.name} (${c.unit}): ${c.contenders.map(fig).join(', ')}  [${c.elapsedSeconds.toFixed(1)} s]` +
    (bars ? `\n    ${bars}` : '');
}

async function main(): Promise<void> {
  const { opts, groups: wanted, save, list } = parseArgs(process.argv.slice(2));
  if (list) {
    for (const g of GROUPS) console.log(`${g.name.padEnd(10)} ${g.title}`);
    return;
  }
  const unknown = wanted.filter((n) => !GROUPS.some((g) => g.name === n));
  if (unknown.length > 0) throw new Error(`unknown group(s): ${unknown.join(', ')}\n${usage()}`);
  const selected = wanted.length === 0 ? GROUPS : GROUPS.filter((g) => wanted.includes(g.name));

  const startedAt = new Date().toISOString();
  const t0 = performance.now();
  const machine = machineInfo();
  process.stderr.write(`bench: ${selected.map((g) => g.name).join(', ')} on ${machine.cpu} (${machine.cores} cores), ` +
    `Node ${machine.node}, load average ${machine.loadAverage1m.toFixed(2)}; ` +
    `${opts.timeMs} ms per contender per case in ${opts.rounds} rounds\n`);
  if (machine.loadAverage1m > LOAD_WARNING) {
    process.stderr.write(`bench: warning: load average ${machine.loadAverage1m.toFixed(2)} on ${machine.cores} cores: ` +
      'other processes will disturb the figures\n');
  }
  // Every peer of the selected groups must load: a missing one stops the run here, loudly.
  await checkPeers(selected.map((g) => g.name));
  const cases: CaseResult[] = [];
  const groupSeconds: Record<string, number> = {};
  // A group that throws (a case's setup, a peer's output that differs, ...) is reported and left out of
  // the saved run; the other groups still run and are saved, and the process exits with status 1.
  const failures: { group: string; error: string }[] = [];
  const completed: typeof selected = [];
  for (const g of selected) {
    const tg = performance.now();
    const groupCases: CaseResult[] = [];
    try {
      const list = await g.cases();
      for (const bc of list) {
        const r = await runCase(g.name, bc, opts);
        groupCases.push(r);
        process.stderr.write(progressLine(r) + '\n');
      }
      cases.push(...groupCases);
      completed.push(g);
    } catch (err) {
      const error = describeError(err);
      failures.push({ group: g.name, error });
      process.stderr.write(`bench: FAILED: group ${g.name} (after ${groupCases.length} case(s)): ${error}\n` +
        '  its results are not saved; the run goes on with the other groups\n');
    }
    groupSeconds[g.name] = (performance.now() - tg) / 1000;
    process.stderr.write(`bench: group ${g.name} took ${groupSeconds[g.name]!.toFixed(0)} s\n`);
  }
  const report: RunReport = {
    startedAt,
    finishedAt: new Date().toISOString(),
    elapsedSeconds: (performance.now() - t0) / 1000,
    machine,
    loadAverageEnd1m: loadavg()[0]!,
    options: opts,
    groups: completed.map((g) => ({ name: g.name, title: g.title, description: g.description, elapsedSeconds: groupSeconds[g.name]! })),
    cases,
    ...(failures.length > 0 ? { failures } : {}),
  };
  const full = selected.length === GROUPS.length;
  process.stderr.write(`bench: done in ${report.elapsedSeconds.toFixed(0)} s (${selected.map((g) => `${g.name} ${groupSeconds[g.name]!.toFixed(0)} s`).join(', ')})\n`);
  if (full && report.elapsedSeconds > SUITE_BUDGET_SECONDS) {
    process.stderr.write(`bench: OVER BUDGET: the whole suite took ${report.elapsedSeconds.toFixed(0)} s; it must stay under ${SUITE_BUDGET_SECONDS} s on a 2-core machine ` +
      `(load average ${machine.loadAverage1m.toFixed(2)} at the start${machine.loadAverage1m > LOAD_WARNING ? ': a loaded machine is slower' : ''})\n`);
  }
  if (save && completed.length > 0) {
    const file = writeReport(report);
    writeResultsMarkdown(GROUPS.map((g) => g.name));
    const charts = writeCharts();
    const readme = writeHeadline();
    process.stderr.write(`bench: wrote ${file}, ${RESULTS_MD}, ${charts.length} chart(s) in bench/charts/` +
      `${readme ? ` and the headline in ${README}` : ` (README.md has no headline markers: not updated)`}\n`);
  }
  if (failures.length > 0) {
    process.stderr.write(`bench: FAILED: ${failures.map((f) => `${f.group}: ${f.error.split('\n')[0]}`).join('; ')}\n`);
    // Exit now: a group that failed may have left handles open (stores, servers) that would keep the process alive.
    process.exit(1);
  }
}

function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `\ncause: ${err.cause.message}` : err.cause !== undefined ? `\ncause: ${String(err.cause)}` : '';
  return `${err.stack ?? err.message}${cause}`;
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.cause ? `${err.stack}\ncause: ${String((err.cause as Error).message ?? err.cause)}` : err.stack) : err);
  process.exit(1);
});
