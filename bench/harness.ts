// The benchmark harness: the group and case interfaces every benchmark
// implements (documented in bench/README.md), and the measurement of one
// case with tinybench.
//
// Method, per case:
//   1. setup() builds the contenders (sediment and its peers) on shared data.
//   2. Every contender's output() is compared (deepStrictEqual) with the
//      first one's; a mismatch throws before anything is timed.
//   3. Calibration: each contender runs once, then ops-per-sample n is chosen
//      so one sample lasts about sampleMs (timer overhead and resolution
//      then stay below 0.1% of a sample; short samples keep preemption by
//      other processes to a few samples, which the median ignores).
//   4. Rounds: in each round every contender (in an order rotated each round,
//      so none always runs first or last) gets one tinybench task of
//      timeMs / rounds, each sample calling contender.run(n) once. Round 0
//      runs tinybench's warm-up first. Contenders of one case are therefore
//      interleaved, in one process, on the same data.
//   5. Samples of all rounds are merged and divided by n (time per op); the
//      figure is taken at the median, with p25/p75/p99 and the spread of the
//      per-round medians as the measure of noise.
//
// Each contender supplies its own run(n) loop (its own function, so its own
// type feedback): a single harness loop calling many different functions
// goes megamorphic and adds nanoseconds to small operations
// (/work/shared/reference/wasm-perf.md section 6).

import { Bench } from 'tinybench';
import { deepStrictEqual } from 'node:assert/strict';

/** How a case turns time per operation into the reported figure. */
export interface Metric {
  /** Unit label, e.g. 'GB/s', 'ns/key', 'M checks/s', 'µs/batch'. */
  unit: string;
  /** Work items in one operation (bytes, keys, checks, batches). */
  itemsPerOp: number;
  /** True when a larger figure is better (rates); false for times. */
  higherIsBetter: boolean;
  /** Figure = scale / secondsPerItem (rates) or secondsPerItem * scale (times). */
  scale: number;
}

/** Bytes per op, reported as GB/s (10^9 bytes per second). */
export function gbPerSec(bytesPerOp: number): Metric {
  return { unit: 'GB/s', itemsPerOp: bytesPerOp, higherIsBetter: true, scale: 1e-9 };
}
/** Items per op, reported as nanoseconds per item (e.g. 'ns/key'). */
export function nsPer(itemsPerOp: number, item: string): Metric {
  return { unit: `ns/${item}`, itemsPerOp, higherIsBetter: false, scale: 1e9 };
}
/** Items per op, reported as microseconds per item (e.g. 'µs/batch'). */
export function usPer(itemsPerOp: number, item: string): Metric {
  return { unit: `µs/${item}`, itemsPerOp, higherIsBetter: false, scale: 1e6 };
}
/** Items per op, reported as millions of items per second (e.g. 'M checks/s'). */
export function millionsPerSec(itemsPerOp: number, items: string): Metric {
  return { unit: `M ${items}/s`, itemsPerOp, higherIsBetter: true, scale: 1e-6 };
}

/** Converts seconds per item to the metric's figure. */
export function figureOf(m: Metric, secondsPerItem: number): number {
  return m.higherIsBetter ? m.scale / secondsPerItem : secondsPerItem * m.scale;
}

/** One implementation taking part in a case. */
export interface Contender {
  /** Display name, unique within the case, e.g. 'sediment wasm (at)'. */
  name: string;
  /** 'sediment' for this project's code, 'peer' for everything it is compared with. */
  role: 'sediment' | 'peer';
  /** Short description of what the contender is (shown in RESULTS.md). */
  note?: string;
  /**
   * Performs the case's operation n times and returns something derived from
   * the results (kept in a sink so nothing is optimised away). Give every
   * contender its own function with its own loop. May be async (set async).
   */
  run(n: number): unknown;
  /** True when run returns a promise. */
  async?: boolean;
  /**
   * The result of one operation, compared with deepStrictEqual against the
   * other contenders' before timing. Contenders without output() are not
   * compared (say why in their note).
   */
  output?(): unknown;
}

/** A speed requirement from an issue, checked after the case runs. */
export interface Bar {
  /** Text of the requirement, e.g. 'wasm CRC-32C >= 2.5x best pure TS on 1 MiB'. */
  label: string;
  /** The sediment contender the bar is about. */
  sediment: string;
  /** Peers compared against; the fastest of them is used. Omit for an absolute bar. */
  peers?: string[];
  /** Required speed ratio (sediment speed / peer speed). */
  minRatio?: number;
  /** Required figure of the sediment contender, in the case's unit (rates: at least; times: at most). */
  figure?: number;
}

/** What setup() returns: the contenders and an optional teardown. */
export interface CaseRun {
  contenders: Contender[];
  teardown?(): void | Promise<void>;
}

/**
 * Places a case on a scaling chart (bench/charts/<id>.svg, drawn by
 * bench/charts.ts): cases with the same id are the points of one chart, x is
 * the case's parameter, and every contender (by name) is one line.
 */
export interface ChartPoint {
  /** File name of the chart (bench/charts/<id>.svg): lower case, digits and '-'. */
  id: string;
  /** Chart title. */
  title: string;
  /** Label of the x axis, e.g. 'value size'. */
  xLabel: string;
  /** This case's x value (> 0; the x axis is logarithmic). */
  x: number;
  /** How x values are printed: 'bytes' (1 KiB, 1 MiB) or 'count' (10k, 1M). */
  xFormat: 'bytes' | 'count';
}

/** One measured comparison, e.g. 'CRC-32C, 1 MiB'. */
export interface BenchCase {
  name: string;
  metric: Metric;
  /**
   * Fraction of the run's measured time (--time) given to this case's
   * contenders, in (0, 1]: for slow cases in a large sweep. Rounds and the
   * warm-up are unchanged.
   */
  timeScale?: number;
  /** Where this case appears on a scaling chart (optional). */
  chart?: ChartPoint;
  /** Requirements checked against this case's results. */
  bars?: Bar[];
  /** Builds the data and the contenders; called right before the case runs. */
  setup(): CaseRun | Promise<CaseRun>;
}

/** A named set of cases, selected on the command line (`npm run bench -- <name>`). */
export interface BenchGroup {
  /** Command-line name: lower case, no spaces (e.g. 'crc'). */
  name: string;
  /** Heading in RESULTS.md. */
  title: string;
  /** One paragraph (markdown) on what is measured and how to read it. */
  description: string;
  /** The cases, in order. Build data lazily in each case's setup(). */
  cases(): BenchCase[] | Promise<BenchCase[]>;
}

export interface HarnessOptions {
  /** Measured time per contender per case, ms (split over the rounds). */
  timeMs: number;
  /** Rounds per case (contenders interleaved round by round). */
  rounds: number;
  /** tinybench warm-up time before round 0, ms. */
  warmupMs: number;
  /** Target duration of one sample, ms. */
  sampleMs: number;
}

export const DEFAULT_OPTIONS: HarnessOptions = { timeMs: 2000, rounds: 8, warmupMs: 200, sampleMs: 0.25 };

/** Time statistics of one contender, seconds per operation. */
export interface TimeStats {
  median: number;
  p25: number;
  p75: number;
  p99: number;
  min: number;
  /** (max - min) / median of the per-round medians. */
  roundSpread: number;
}

export interface ContenderResult {
  name: string;
  role: 'sediment' | 'peer';
  note?: string;
  /** Figure at the median time per op. */
  figure: number;
  /** Figures at the p25 / p75 / p99 times per op (p99 = the slow tail). */
  figureP25: number;
  figureP75: number;
  figureP99: number;
  secondsPerOp: TimeStats;
  /** Operations per sample and number of samples. */
  opsPerSample: number;
  samples: number;
  /** Whether output() was compared with the other contenders. */
  verified: boolean;
}

export interface RatioResult {
  sediment: string;
  peer: string;
  /** Speed ratio, sediment / peer: > 1 means sediment is faster. */
  ratio: number;
}

export interface BarResult {
  label: string;
  met: boolean;
  /** Measured value: a ratio (minRatio bars) or a figure (figure bars). */
  measured: number;
  required: number;
  /** For ratio bars, the peer the ratio was taken against (the fastest). */
  against?: string;
}

export interface CaseResult {
  group: string;
  name: string;
  unit: string;
  higherIsBetter: boolean;
  itemsPerOp: number;
  /** The first sediment contender and its figure. */
  sediment: { name: string; figure: number };
  /** Every peer, with the ratio of the first sediment contender to it. */
  peers: { name: string; figure: number; ratio: number }[];
  /** Every sediment contender against every peer. */
  ratios: RatioResult[];
  contenders: ContenderResult[];
  bars: BarResult[];
  elapsedSeconds: number;
  /** Measured time per contender actually used (--time × the case's timeScale), ms. */
  timeMs?: number;
  /** The case's chart point, when it has one. */
  chart?: ChartPoint;
}

let sink: unknown = 0;
/** Keeps a value alive so benchmarked work cannot be optimised away. */
export function consume(v: unknown): void { sink = v; }
export function sinkValue(): unknown { return sink; }

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

function median(xs: number[]): number {
  return percentile([...xs].sort((a, b) => a - b), 0.5);
}

async function timeOnce(c: Contender, n: number): Promise<number> {
  const t0 = performance.now();
  consume(c.async ? await c.run(n) : c.run(n));
  return performance.now() - t0;
}

/** Chooses ops per sample so one sample lasts about sampleMs. */
async function calibrate(c: Contender, sampleMs: number): Promise<number> {
  let n = 1;
  await timeOnce(c, 1);
  for (;;) {
    const ms = await timeOnce(c, n);
    if (ms >= sampleMs || n >= 1 << 24) return n;
    // Aim a little past the target from the measured rate, at least doubling.
    const next = ms > 0 ? Math.ceil((n * sampleMs * 1.2) / ms) : n * 16;
    n = Math.min(1 << 24, Math.max(n * 2, next));
  }
}

async function runRound(c: Contender, n: number, timeMs: number, warmupMs: number): Promise<number[]> {
  const bench = new Bench({
    time: timeMs,
    // At least one sample per round: an operation slower than the round's time gives one sample per round
    // (rounds x 1 samples in all) instead of stretching every round to three operations.
    iterations: 1,
    warmup: warmupMs > 0,
    warmupTime: warmupMs,
    warmupIterations: 2,
    retainSamples: true,
    throws: true,
  });
  if (c.async) bench.add(c.name, async () => { consume(await c.run(n)); }, { async: true });
  else bench.add(c.name, () => { consume(c.run(n)); });
  await bench.run();
  const task = bench.tasks[0]!;
  const r = task.result as { latency?: { samples?: readonly number[] }; error?: Error; state?: string };
  if (r.error) throw r.error;
  const samples = r.latency?.samples;
  if (!samples || samples.length === 0) throw new Error(`tinybench returned no samples for ${c.name}`);
  return samples.map((ms) => ms / 1000 / n);
}

/** Verifies that every contender with output() agrees with the first one. */
export async function verifyOutputs(caseName: string, contenders: Contender[]): Promise<Set<string>> {
  const verified = new Set<string>();
  let ref: { name: string; value: unknown } | undefined;
  for (const c of contenders) {
    if (!c.output) continue;
    const v = await c.output();
    if (!ref) { ref = { name: c.name, value: v }; verified.add(c.name); continue; }
    try {
      deepStrictEqual(v, ref.value);
    } catch (err) {
      throw new Error(`${caseName}: output of '${c.name}' differs from '${ref.name}'`, { cause: err });
    }
    verified.add(c.name);
  }
  if (verified.size === 1) verified.clear(); // nothing to compare against
  return verified;
}

function checkBars(bench: BenchCase, results: ContenderResult[], ratios: RatioResult[]): BarResult[] {
  const out: BarResult[] = [];
  const m = bench.metric;
  for (const bar of bench.bars ?? []) {
    const sed = results.find((r) => r.name === bar.sediment);
    if (!sed) throw new Error(`${bench.name}: bar '${bar.label}' names unknown contender '${bar.sediment}'`);
    if (bar.minRatio !== undefined) {
      const candidates = ratios.filter((r) => r.sediment === bar.sediment && (bar.peers ?? []).includes(r.peer));
      if (candidates.length === 0) throw new Error(`${bench.name}: bar '${bar.label}' has no peers in the case`);
      // The fastest peer gives the smallest ratio.
      const worst = candidates.reduce((a, b) => (b.ratio < a.ratio ? b : a));
      out.push({ label: bar.label, met: worst.ratio >= bar.minRatio, measured: worst.ratio, required: bar.minRatio, against: worst.peer });
    }
    if (bar.figure !== undefined) {
      const met = m.higherIsBetter ? sed.figure >= bar.figure : sed.figure <= bar.figure;
      out.push({ label: bar.label, met, measured: sed.figure, required: bar.figure });
    }
  }
  return out;
}

/** Measures one case: setup, verify, calibrate, interleaved rounds, teardown. */
export async function runCase(group: string, bench: BenchCase, opts: HarnessOptions): Promise<CaseResult> {
  const started = performance.now();
  const setup = await bench.setup();
  try {
    const contenders = setup.contenders;
    const names = new Set(contenders.map((c) => c.name));
    if (names.size !== contenders.length) throw new Error(`${bench.name}: contender names must be unique`);
    if (!contenders.some((c) => c.role === 'sediment')) throw new Error(`${bench.name}: no sediment contender`);
    const verified = await verifyOutputs(bench.name, contenders);

    const ns: number[] = [];
    for (const c of contenders) ns.push(await calibrate(c, opts.sampleMs));
    const samples: number[][] = contenders.map(() => []);
    const roundMedians: number[][] = contenders.map(() => []);
    const scale = bench.timeScale ?? 1;
    if (!(scale > 0 && scale <= 1)) throw new Error(`${bench.name}: timeScale must be in (0, 1], got ${scale}`);
    const timeMs = opts.timeMs * scale;
    const perRound = timeMs / opts.rounds;
    for (let round = 0; round < opts.rounds; round++) {
      for (let j = 0; j < contenders.length; j++) {
        const i = (j + round) % contenders.length;
        const s = await runRound(contenders[i]!, ns[i]!, perRound, round === 0 ? opts.warmupMs : 0);
        samples[i]!.push(...s);
        roundMedians[i]!.push(median(s));
      }
    }

    const m = bench.metric;
    const results: ContenderResult[] = contenders.map((c, i) => {
      const sorted = samples[i]!.sort((a, b) => a - b);
      const med = percentile(sorted, 0.5);
      const rm = roundMedians[i]!;
      const stats: TimeStats = {
        median: med,
        p25: percentile(sorted, 0.25),
        p75: percentile(sorted, 0.75),
        p99: percentile(sorted, 0.99),
        min: sorted[0]!,
        roundSpread: (Math.max(...rm) - Math.min(...rm)) / med,
      };
      const fig = (s: number) => figureOf(m, s / m.itemsPerOp);
      return {
        name: c.name, role: c.role, ...(c.note ? { note: c.note } : {}),
        figure: fig(stats.median), figureP25: fig(stats.p25), figureP75: fig(stats.p75), figureP99: fig(stats.p99),
        secondsPerOp: stats, opsPerSample: ns[i]!, samples: sorted.length, verified: verified.has(c.name),
      };
    });
    const ratios: RatioResult[] = [];
    for (const s of results.filter((r) => r.role === 'sediment')) {
      for (const p of results.filter((r) => r.role === 'peer')) {
        ratios.push({ sediment: s.name, peer: p.name, ratio: p.secondsPerOp.median / s.secondsPerOp.median });
      }
    }
    const first = results.find((r) => r.role === 'sediment')!;
    return {
      group,
      name: bench.name,
      unit: m.unit,
      higherIsBetter: m.higherIsBetter,
      itemsPerOp: m.itemsPerOp,
      sediment: { name: first.name, figure: first.figure },
      peers: results.filter((r) => r.role === 'peer').map((p) => ({
        name: p.name, figure: p.figure, ratio: ratios.find((r) => r.sediment === first.name && r.peer === p.name)!.ratio,
      })),
      ratios,
      contenders: results,
      bars: checkBars(bench, results, ratios),
      elapsedSeconds: (performance.now() - started) / 1000,
      timeMs,
      ...(bench.chart ? { chart: bench.chart } : {}),
    };
  } finally {
    await setup.teardown?.();
  }
}
