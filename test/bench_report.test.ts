// The benchmark report's derived outputs (bench/charts.ts, bench/headline.ts)
// on synthetic runs: which run's points a chart takes, how lines and axes are
// drawn, and how the README headline picks its ratio and rewrites only the
// text between its markers.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { CaseResult, ChartPoint, ContenderResult, BarResult } from '../bench/harness.js';
import type { RunReport } from '../bench/report.js';
import { collectCharts, renderChart, formatX, tickLabel } from '../bench/charts.js';
import { headlineCells, renderHeadline, writeHeadline, HeadlineRow, HEADLINE_START, HEADLINE_END } from '../bench/headline.js';

function contender(name: string, role: 'sediment' | 'peer', figure: number): ContenderResult {
  const t = { median: 1 / figure, p25: 1 / figure, p75: 1 / figure, p99: 1 / figure, min: 1 / figure, roundSpread: 0 };
  return { name, role, figure, figureP25: figure, figureP75: figure, figureP99: figure, secondsPerOp: t, opsPerSample: 1, samples: 8, verified: true };
}

function caseResult(group: string, name: string, figures: Record<string, number>, opts: { chart?: ChartPoint; unit?: string; bars?: BarResult[] } = {}): CaseResult {
  const contenders = Object.entries(figures).map(([n, f], i) => contender(n, i === 0 ? 'sediment' : 'peer', f));
  const sed = contenders[0]!;
  const ratios = contenders.slice(1).map((p) => ({ sediment: sed.name, peer: p.name, ratio: sed.figure / p.figure }));
  return {
    group, name, unit: opts.unit ?? 'GB/s', higherIsBetter: true, itemsPerOp: 1,
    sediment: { name: sed.name, figure: sed.figure },
    peers: ratios.map((r) => ({ name: r.peer, figure: contenders.find((c) => c.name === r.peer)!.figure, ratio: r.ratio })),
    ratios, contenders, bars: opts.bars ?? [], elapsedSeconds: 1, ...(opts.chart ? { chart: opts.chart } : {}),
  };
}

function run(file: string, groups: string[], cases: CaseResult[], load = 0.1): { file: string; report: RunReport } {
  return {
    file,
    report: {
      startedAt: '2026-01-01T00:00:00.000Z', finishedAt: '2026-01-01T00:01:00.000Z', elapsedSeconds: 60,
      machine: { cpu: 'Test CPU', cores: 2, totalMemoryBytes: 2 ** 33, platform: 'linux', arch: 'x64', node: 'v20.0.0', v8: '11', loadAverage1m: load },
      loadAverageEnd1m: load,
      options: { timeMs: 2000, rounds: 8, warmupMs: 200, sampleMs: 0.25 },
      groups: groups.map((name) => ({ name, title: name, description: '', elapsedSeconds: 10 })),
      cases,
    },
  };
}

const kvPoint = (x: number): ChartPoint => ({ id: 'kv-get', title: 'KV get & <friends>', xLabel: 'keys', x, xFormat: 'count' });

test('charts take each group\'s newest run, merge groups into one chart and sort the points', () => {
  const old = run('a.json', ['scaling'], [caseResult('scaling', 'get 10k', { sed: 1, lmdb: 2 }, { chart: kvPoint(10_000) })]);
  const kv = run('b.json', ['kv'], [caseResult('kv', 'get 1M', { sed: 3, lmdb: 4 }, { chart: kvPoint(1_000_000) })]);
  const newer = run('c.json', ['scaling'], [
    caseResult('scaling', 'get 100k', { sed: 5, lmdb: 6 }, { chart: kvPoint(100_000) }),
    caseResult('scaling', 'get 10k', { sed: 7, lmdb: 8 }, { chart: kvPoint(10_000) }),
    caseResult('scaling', 'no chart', { sed: 1, lmdb: 1 }),
  ]);
  const charts = collectCharts([old, kv, newer]);
  assert.equal(charts.length, 1);
  const ch = charts[0]!;
  assert.equal(ch.id, 'kv-get');
  assert.deepEqual(ch.sources.sort(), ['b.json', 'c.json']);
  assert.deepEqual(ch.series.map((s) => s.name), ['sed', 'lmdb']);
  // a.json's 10k point is superseded by c.json (the newest scaling run).
  assert.deepEqual(ch.series[0]!.points, [{ x: 10_000, y: 7 }, { x: 100_000, y: 5 }, { x: 1_000_000, y: 3 }]);
  assert.deepEqual(ch.series[1]!.points, [{ x: 10_000, y: 8 }, { x: 100_000, y: 6 }, { x: 1_000_000, y: 4 }]);
});

test('a chart whose cases disagree on the unit is refused', () => {
  const a = run('a.json', ['kv'], [caseResult('kv', 'get', { sed: 1, p: 2 }, { chart: kvPoint(1), unit: 'ns/get' })]);
  const b = run('b.json', ['scaling'], [caseResult('scaling', 'get', { sed: 1, p: 2 }, { chart: kvPoint(2), unit: 'GB/s' })]);
  assert.throws(() => collectCharts([a, b]), /in GB\/s, others in ns\/get|in ns\/get, others in GB\/s/);
});

test('renderChart draws one line per contender inside the plot, escapes text, and has a legend', () => {
  const r = run('r.json', ['scaling'], [1e4, 1e5, 1e6].map((x, i) =>
    caseResult('scaling', `c${i}`, { 'sediment <a>': 1000 * (i + 1), 'peer & co': 0.01 * (i + 1), third: 5 }, { chart: kvPoint(x) })));
  const ch = collectCharts([r])[0]!;
  const svg = renderChart(ch);
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.ok(svg.trimEnd().endsWith('</svg>'));
  assert.ok(svg.includes('KV get &amp; &lt;friends&gt;'));
  assert.ok(svg.includes('sediment &lt;a&gt;') && svg.includes('peer &amp; co') && svg.includes('>third<'));
  const text = svg.replace(/<[^>]*>/g, '');
  assert.ok(!/[<>]/.test(text) && !/&(?!amp;|lt;|gt;|quot;)/.test(text), 'no raw markup characters in text');
  const lines = [...svg.matchAll(/<polyline [^>]*points="([^"]+)"/g)].map((m) => m[1]!.split(' ').map((p) => p.split(',').map(Number)));
  assert.equal(lines.length, 3);
  for (const pts of lines) {
    assert.equal(pts.length, 3);
    for (const [x, y] of pts) {
      assert.ok(Number.isFinite(x) && Number.isFinite(y));
      assert.ok(x! >= 84 && x! <= 760 - 24, `x ${x} inside the plot`);
      assert.ok(y! >= 58 && y! <= 58 + 300, `y ${y} inside the plot`);
    }
    // x grows left to right with the parameter.
    assert.ok(pts[0]![0]! < pts[1]![0]! && pts[1]![0]! < pts[2]![0]!);
  }
  // Higher figures sit higher (smaller y): the sediment line (1000..3000) above the 0.01..0.03 peer.
  assert.ok(lines[2]![0]![1]! < lines[0]![0]![1]!);
  // Seven decades: only decades are labelled.
  assert.ok(svg.includes('>0.01<') && svg.includes('>10k<') && !svg.includes('>0.02<'));
});

test('axis labels', () => {
  assert.deepEqual([100, 1024, 16384, 262144, 1 << 20].map((x) => formatX(x, 'bytes')), ['100 B', '1 KiB', '16 KiB', '256 KiB', '1 MiB']);
  assert.deepEqual([1, 10, 30, 10_000, 100_000, 1_000_000].map((x) => formatX(x, 'count')), ['1', '10', '30', '10k', '100k', '1M']);
  assert.deepEqual([0.0001, 0.002, 0.5, 1, 50, 5000, 20_000, 1_000_000].map(tickLabel), ['0.0001', '0.002', '0.5', '1', '50', '5000', '20k', '1M']);
});

const ROWS: HeadlineRow[] = [
  { what: 'with a bar', group: 'crc', case: /^CRC, 1 MiB$/, sediment: 'wasm', peers: ['ts1', 'ts2'], bars: ['wasm ≥ 2.5× TS'] },
  { what: 'fastest peer', group: 'crc', case: /^CRC, 1 MiB$/, sediment: 'wasm', peers: ['ts1', 'native'] },
  { what: 'missing group', group: 'kv', case: /^get/, sediment: 'x', peers: ['y'] },
];

function crcRun(load = 0.1): { file: string; report: RunReport } {
  const bar: BarResult = { label: 'wasm ≥ 2.5× TS', met: false, measured: 2, required: 2.5, against: 'ts2' };
  return run('2026.json', ['crc'], [caseResult('crc', 'CRC, 1 MiB', { wasm: 2, ts1: 0.5, ts2: 1, native: 4 }, { bars: [bar] })], load);
}

test('headline rows: ratio from the bar, else against the fastest listed peer; groups not run are marked', () => {
  const runs = [crcRun()];
  const cells = headlineCells(runs, ROWS);
  assert.equal(cells[0]!.ratio, 2);
  assert.equal(cells[0]!.peer, 'ts2');
  assert.deepEqual(cells[0]!.bars, [{ label: 'wasm ≥ 2.5× TS', met: false, required: '≥ 2.50×' }]);
  assert.equal(cells[1]!.peer, 'native');
  assert.equal(cells[1]!.ratio, 0.5);
  assert.equal(cells[2]!.found, false);
  const md = renderHeadline(cells, runs);
  const rows = md.split('\n').filter((l) => l.startsWith('| '));
  assert.equal(rows.length, 4);
  assert.equal(rows[1], '| with a bar | 2.00 GB/s | 1.00 GB/s (ts2) | **2.00×** | ≥ 2.50× | **no** |');
  assert.equal(rows[2], '| fastest peer | 2.00 GB/s | 4.00 GB/s (native) | **0.50×** | – | – |');
  assert.equal(rows[3], '| missing group | not run yet | | | | |');
  assert.ok(md.includes('[bench/RESULTS.md](bench/RESULTS.md)'));
  assert.ok(!md.includes('noisy'));
  assert.ok(renderHeadline(headlineCells([crcRun(7)], ROWS), [crcRun(7)]).includes('load average up to 7.0'));
  assert.ok(!md.includes('Scaling charts'));
  assert.ok(renderHeadline(cells, runs, [{ id: 'kv-get', title: 'KV [get]' }]).endsWith('Scaling charts: [KV get](bench/charts/kv-get.svg).'));
  // A row naming a contender the case does not have is an error, not a silent blank.
  assert.throws(() => headlineCells(runs, [{ ...ROWS[1]!, sediment: 'gone' }]), /no contender 'gone'/);
});

test('writeHeadline rewrites only the text between the markers, and nothing without them', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-headline-'));
  try {
    const readme = path.join(dir, 'README.md');
    const before = '# Title\n\n## Benchmarks\n\nIntro.\n\n';
    const after = '\n\n## Next\n\nMore text.\n';
    fs.writeFileSync(readme, `${before}${HEADLINE_START}\nold table\n${HEADLINE_END}${after}`);
    assert.equal(writeHeadline(readme, [crcRun()]), true);
    const text = fs.readFileSync(readme, 'utf8');
    assert.ok(text.startsWith(`${before}${HEADLINE_START}\n| comparison |`));
    assert.ok(text.endsWith(`\n${HEADLINE_END}${after}`));
    assert.ok(!text.includes('old table'));
    assert.equal(writeHeadline(readme, [crcRun()]), true);
    assert.equal(fs.readFileSync(readme, 'utf8'), text, 'idempotent');
    fs.writeFileSync(readme, 'no markers here\n');
    assert.equal(writeHeadline(readme, [crcRun()]), false);
    assert.equal(fs.readFileSync(readme, 'utf8'), 'no markers here\n');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
