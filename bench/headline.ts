// The README's headline table: a handful of ratios from the newest run of
// each group, with the issues' bars, written between the markers
// <!-- bench:headline:start --> and <!-- bench:headline:end --> in README.md.
// The full figures stay in bench/RESULTS.md.

import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { CaseResult } from './harness.js';
import { BENCH_DIR, loadReports, fmt, fmtRatio, RunReport } from './report.js';
import { collectCharts } from './charts.js';

export const README = join(BENCH_DIR, '..', 'README.md');
export const HEADLINE_START = '<!-- bench:headline:start -->';
export const HEADLINE_END = '<!-- bench:headline:end -->';

/** One row: a case of a group, sediment's contender, and what it is compared with. */
export interface HeadlineRow {
  what: string;
  group: string;
  /** Matches the case name. */
  case: RegExp;
  sediment: string;
  /** Peers for the ratio (the fastest is used); rows with a ratio bar use the bar's peers instead. */
  peers?: string[];
  /** Labels of the case's bars shown in this row; the first ratio bar gives the row's ratio. */
  bars?: string[];
}

const TS_CRC = ['pure TS slicing-by-16', 'pure TS 3-stream', 'pure TS folding'];

/** The headline rows (the issue 8 list), in README order. */
export const HEADLINE_ROWS: HeadlineRow[] = [
  { what: 'CRC-32C, 1 MiB, vs the best pure TS', group: 'crc', case: /^CRC-32C, 1 MiB$/, sediment: 'sediment wasm (at)', peers: TS_CRC,
    bars: ['wasm CRC-32C ≥ 2.5× the best pure-TS CRC-32C on 1 MiB'] },
  { what: 'CRC-32C, 1 MiB, vs native (SSE4.2)', group: 'crc', case: /^CRC-32C, 1 MiB$/, sediment: 'sediment wasm (at)', peers: ['@node-rs/crc32', 'sse4_crc32'] },
  { what: 'xxh64, a batch of 16-byte ids in one buffer, vs xxhash-wasm', group: 'xxhash', case: /^xxh64, 16-byte keys/, sediment: 'sediment hashFixed', peers: ['xxhash-wasm h64Raw'],
    bars: ['batched xxh64 (hashFixed: the batch\'s 16-byte keys in one buffer) ≥ 5× xxhash-wasm per 16-byte key'] },
  { what: 'xxh64, 16-byte ids as separate arrays, vs xxhash-wasm', group: 'xxhash', case: /^xxh64, 16-byte keys/, sediment: 'sediment hashMany', peers: ['xxhash-wasm h64Raw'],
    bars: ['batched xxh64 (hashMany: an array of separate 16-byte arrays, one copy each) ≥ 5× xxhash-wasm per 16-byte key'] },
  { what: 'RecordBatch encode (100 × 1 KiB) vs kafkajs', group: 'framing', case: /^encode 100 records, 1 KiB values$/, sediment: 'sediment wasm', peers: ['kafkajs'],
    bars: ['codec ≥ 10× kafkajs: encode'] },
  { what: 'RecordBatch scan + decode (100 × 100 B, views) vs kafkajs', group: 'framing', case: /^scan \+ decode 100 records, 100 B values$/, sediment: 'sediment decodeView', peers: ['kafkajs'],
    bars: ['codec ≥ 10× kafkajs: scan + decode'] },
  { what: 'RecordBatch scan + decode (100 × 1 KiB, views) vs kafkajs', group: 'framing', case: /^scan \+ decode 100 records, 1 KiB values$/, sediment: 'sediment decodeView', peers: ['kafkajs'],
    bars: ['codec ≥ 10× kafkajs: scan + decode'] },
  { what: 'append 1 KiB records vs plain fs write', group: 'log', case: /^append, 100 records of 1024 B/, sediment: 'sediment Partition.appendSync', peers: ['plain fs.writeSync'],
    bars: ['append ≥ 0.8× the plain-fs write of the same bytes'] },
  { what: 'append pre-framed batches (Kafka produce path, 1 KiB values) vs plain fs write', group: 'log', case: /^append, 100 records of 1024 B/,
    sediment: 'sediment Partition.appendBatchesSync (pre-framed)', peers: ['plain fs.writeSync'],
    bars: ['append of pre-framed batches (the Kafka produce path) ≥ 0.8× the plain-fs write of the same bytes'] },
  { what: 'append 1 KiB values vs hypercore 10', group: 'scaling', case: /^append, 256 × 1 KiB values/, sediment: 'sediment appendSync', peers: ['hypercore 10 append'] },
  { what: 'read + verify + decode (1 KiB) vs plain read', group: 'log', case: /^read \+ verify \+ decode 32 MiB, 1024 B/, sediment: 'sediment Partition.readViews (reuseBuffers)',
    peers: ['plain fs.readSync 1 MiB chunks'], bars: ['read + verify + decode ≥ 0.6× a plain read of the same file'] },
  { what: 'read 1 KiB values vs hypercore 10 get', group: 'scaling', case: /^read 1024 × 1 KiB values/, sediment: 'sediment read', peers: ['hypercore 10 get'] },
  { what: 'KV get (hot set, 1 M keys) vs lmdb', group: 'kv', case: /^get, /, sediment: 'sediment getSync', peers: ['lmdb get'], bars: ['get (cached working set) ≥ 1× lmdb'] },
  { what: 'KV batched put + flush vs lmdb', group: 'kv', case: /^batched put \+ flush/, sediment: 'sediment batch + flush', peers: ['lmdb transactionSync'],
    bars: ['batched put + flush ≥ 1× lmdb'] },
  { what: 'KV range scan vs classic-level', group: 'kv', case: /^range scan/, sediment: 'sediment range', peers: ['classic-level iterator'], bars: ['range scan ≥ 1× classic-level'] },
  { what: 'dedup checks, ids in one buffer, vs a JS Set', group: 'dedup', case: /^16-byte ids/, sediment: 'sediment hashFixed + checkInsertAt', peers: ['JS Set (hex given)', 'JS Set (hex from bytes)'],
    bars: ['dedup ≥ 5× a JS Set of string ids (hashFixed form)', 'dedup ≥ 10M checks/s (the batch\'s 16-byte ids in one buffer: hashFixed, checked)'] },
  { what: 'dedup checks, ids as separate arrays, vs a JS Set', group: 'dedup', case: /^16-byte ids/, sediment: 'sediment hashMany + checkInsertAt', peers: ['JS Set (hex given)', 'JS Set (hex from bytes)'],
    bars: ['dedup ≥ 5× a JS Set of string ids (hashMany form)', 'dedup ≥ 10M checks/s (ids as separate arrays: hashMany, checked)'] },
  { what: 'append with dedup on vs off', group: 'dedup-append', case: /, 0% duplicates/, sediment: 'sediment append, dedup on', peers: ['sediment append, dedup off'],
    bars: ['append with dedup on ≥ 0.8× append with dedup off'] },
  { what: 'tier upload (S3) vs plain OpenDAL write', group: 'tier', case: /^upload a closed 16 MiB segment.*s3/, sediment: 'sediment archiver upload', peers: ['OpenDAL write (bytes in memory)'],
    bars: ['tiered upload ≥ 0.9× plain OpenDAL write of the same bytes'] },
  { what: 'tier upload of 4 segments (S3) vs plain OpenDAL writes', group: 'tier', case: /^upload 4 closed 16 MiB segments.*s3/, sediment: 'sediment archiver upload (pipelined)',
    bars: ['tiered upload of several segments ≥ 0.9× plain OpenDAL writes of the same objects, sequential or concurrent (the faster)'] },
  { what: 'tier read of records (S3) vs plain OpenDAL read', group: 'tier', case: /^read an archived 16 MiB segment back.*s3/, sediment: 'sediment Partition.read (remote)',
    peers: ['OpenDAL read (whole object)'], bars: ['remote read of the records (decoded, through Partition.read) ≥ 0.9× plain OpenDAL read of the same bytes'] },
  { what: 'replay in Chromium vs plain fetch', group: 'replay', case: /^Chromium: whole archive/, sediment: 'sediment/replay (Chromium)', peers: ['plain fetch (Chromium)'],
    bars: ['replay in Chromium ≥ 0.5× a plain fetch of the same bytes'] },
];

export interface HeadlineCell {
  row: HeadlineRow;
  found: boolean;
  sedimentFigure?: string;
  peerFigure?: string;
  peer?: string;
  ratio?: number;
  bars: { label: string; required: string; met: boolean }[];
  file?: string;
}

function esc(s: string): string { return s.replace(/\|/g, '\\|'); }

/** Evaluates the rows against the newest run of each group. */
export function headlineCells(runs: { file: string; report: RunReport }[] = loadReports(), rows = HEADLINE_ROWS): HeadlineCell[] {
  const newest = new Map<string, { file: string; report: RunReport }>();
  for (const run of runs) for (const g of run.report.groups) newest.set(g.name, run);
  return rows.map((row) => {
    const run = newest.get(row.group);
    const c: CaseResult | undefined = run?.report.cases.find((x) => x.group === row.group && row.case.test(x.name));
    if (!run || !c) return { row, found: false, bars: [] };
    const sed = c.contenders.find((k) => k.name === row.sediment);
    if (!sed) throw new Error(`headline '${row.what}': no contender '${row.sediment}' in '${c.name}'`);
    const bars = (row.bars ?? []).map((label) => {
      const b = c.bars.find((x) => x.label === label);
      if (!b) throw new Error(`headline '${row.what}': no bar '${label}' in '${c.name}'`);
      return b;
    });
    const ratioBar = bars.find((b) => b.against !== undefined);
    let peerName: string | undefined;
    let ratio: number | undefined;
    if (ratioBar) { peerName = ratioBar.against; ratio = ratioBar.measured; } else {
      const rs = c.ratios.filter((r) => r.sediment === row.sediment && (row.peers ?? []).includes(r.peer));
      if (rs.length === 0) throw new Error(`headline '${row.what}': none of ${String(row.peers)} in '${c.name}'`);
      const worst = rs.reduce((a, b) => (b.ratio < a.ratio ? b : a));
      peerName = worst.peer; ratio = worst.ratio;
    }
    const peer = c.contenders.find((k) => k.name === peerName)!;
    return {
      row, found: true, file: run.file, peer: peerName, ratio,
      sedimentFigure: `${fmt(sed.figure)} ${c.unit}`,
      peerFigure: `${fmt(peer.figure)} ${c.unit}`,
      bars: bars.map((b) => ({
        label: b.label, met: b.met,
        required: b.against !== undefined ? `≥ ${fmtRatio(b.required)}` : `${c.higherIsBetter ? '≥' : '≤'} ${fmt(b.required)} ${c.unit}`,
      })),
    };
  });
}

/** The headline as markdown (the text between the README markers). */
export function renderHeadline(cells: HeadlineCell[], runs: { file: string; report: RunReport }[] = loadReports(),
  charts: { id: string; title: string }[] = []): string {
  const out: string[] = [];
  out.push('| comparison | sediment | peer | ratio | bar | met |', '|---|---:|---:|---:|:---:|:---:|');
  for (const c of cells) {
    if (!c.found) { out.push(`| ${esc(c.row.what)} | not run yet | | | | |`); continue; }
    const bar = c.bars.map((b) => b.required).join('; ') || '–';
    const met = c.bars.length === 0 ? '–' : c.bars.map((b) => (b.met ? 'yes' : '**no**')).join('; ');
    out.push(`| ${esc(c.row.what)} | ${c.sedimentFigure} | ${c.peerFigure} (${esc(c.peer!)}) | **${fmtRatio(c.ratio!)}** | ${bar} | ${met} |`);
  }
  const files = [...new Set(cells.filter((c) => c.found).map((c) => c.file!))];
  const machines = new Set(files.map((f) => runs.find((r) => r.file === f)!.report.machine).map((m) => `${m.cpu}, ${m.cores} cores, Node ${m.node}`));
  const loads = files.map((f) => runs.find((r) => r.file === f)!.report.machine.loadAverage1m);
  out.push('');
  out.push(`Ratio: sediment's speed ÷ the peer's (> 1: sediment is faster), both measured in the same run, on the same data. ` +
    `Bars are the issues' requirements. Machine: ${[...machines].join('; ')}` +
    (loads.some((l) => l > 1) ? ` (shared with other work during these runs: 1-minute load average up to ${Math.max(...loads).toFixed(1)}, so figures are noisy)` : '') +
    `. Every figure, the scaling charts and the method: [bench/RESULTS.md](bench/RESULTS.md).`);
  if (charts.length > 0) {
    out.push('', `Scaling charts: ${charts.map((c) => `[${c.title.replace(/[[\]]/g, '')}](bench/charts/${c.id}.svg)`).join(' · ')}.`);
  }
  return out.join('\n');
}

/** Rewrites the README's headline between its markers. Returns false (and changes nothing) when the markers are missing. */
export function writeHeadline(readme = README, runs: { file: string; report: RunReport }[] = loadReports()): boolean {
  if (!existsSync(readme)) return false;
  const text = readFileSync(readme, 'utf8');
  const a = text.indexOf(HEADLINE_START);
  const b = text.indexOf(HEADLINE_END);
  if (a < 0 || b < a) return false;
  const body = renderHeadline(headlineCells(runs), runs, collectCharts(runs));
  const next = `${text.slice(0, a + HEADLINE_START.length)}\n${body}\n${text.slice(b)}`;
  if (next !== text) writeFileSync(readme, next);
  return true;
}
