// `npm start`: a short tour of what sediment does and how fast, on a store
// under ./data on local disk. Re-runnable: each section resets only its own
// topic. Sections are independent entries of SECTIONS; add one (KV, dedup,
// tiering, ...) by writing a DemoSection and listing it there.
//
//   node dist/src/demo.js [--dir DIR] [--records N]

import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Store } from './store.js';
import { RecordInput, StoredRecord } from './record.js';
import { SedimentError, StoreLockedError } from './errors.js';

/** What a section gets. */
export interface DemoContext {
  /** The open store (replaced by reopen()). */
  store: Store;
  /** Store directory as given on the command line (relative paths stay relative, for the printed commands). */
  dir: string;
  /** Records the log section writes (--records). */
  records: number;
  /** Prints one line. */
  log(line?: string): void;
  /** Closes the store cleanly and opens it again; returns [closeMs, openMs]. */
  reopen(): Promise<[number, number]>;
  /** CLI commands printed at the end, for exploring what the section left behind. */
  commands: string[];
}

export interface DemoSection {
  title: string;
  run(ctx: DemoContext): Promise<void>;
}

const fmt = new Intl.NumberFormat('en-US');
const n0 = (x: number) => fmt.format(Math.round(x));
const ms = (x: number) => `${x < 10 ? x.toFixed(2) : x.toFixed(0)} ms`;
const perSec = (count: number, millis: number) => n0(count / (millis / 1000));
const mbps = (bytes: number, millis: number) => (bytes / 1e6 / (millis / 1000)).toFixed(1);
const row = (label: string, value: string) => `  ${label.padEnd(26)} ${value}`;

/** Fills a 100-byte-style value for record i: its number, then a repeating pattern. Deterministic, so reads can be checked. */
function fillValue(out: Uint8Array, i: number): void {
  const head = `record ${String(i).padStart(9, '0')} `;
  for (let j = 0; j < out.length; j++) out[j] = j < head.length ? head.charCodeAt(j) : 97 + ((i + j) % 26);
}

function equalBytes(a: Uint8Array | null, b: Uint8Array): boolean {
  if (a === null || a.length !== b.length) return false;
  for (let j = 0; j < a.length; j++) if (a[j] !== b[j]) return false;
  return true;
}

/** Random integers in [0, n) from a fixed seed (xorshift32), so runs are comparable. */
function randoms(count: number, n: number, seed = 0x9e3779b9): number[] {
  let s = seed >>> 0;
  const out = new Array<number>(count);
  for (let i = 0; i < count; i++) {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    out[i] = s % n;
  }
  return out;
}

// --- the partitioned log ---------------------------------------------------------

export const LOG_TOPIC = 'demo-log';
const VALUE_BYTES = 100;
const BATCH = 1000;

export const logSection: DemoSection = {
  title: 'Partitioned log (Kafka RecordBatch v2 segments, offset and time indexes)',
  async run(ctx) {
    const N = ctx.records;
    let store = ctx.store;
    if (store.hasTopic(LOG_TOPIC)) await store.deleteTopic(LOG_TOPIC);
    await store.createTopic(LOG_TOPIC, { partitions: 1, config: { segmentBytes: 8 << 20 } });
    ctx.log(row('topic', `${LOG_TOPIC} (1 partition, 8 MiB segments)`));

    // Records are built before the clock starts: the figures are the log's.
    const t0 = Date.now() - N; // one distinct millisecond per record, all in the past
    const batches: RecordInput[][] = [];
    const keys = Array.from({ length: 1000 }, (_, u) => new TextEncoder().encode(`user-${u}`));
    for (let b = 0; b < N; b += BATCH) {
      const slab = new Uint8Array(Math.min(BATCH, N - b) * VALUE_BYTES);
      const recs: RecordInput[] = [];
      for (let i = b; i < Math.min(N, b + BATCH); i++) {
        const value = slab.subarray((i - b) * VALUE_BYTES, (i - b + 1) * VALUE_BYTES);
        fillValue(value, i);
        recs.push({ key: keys[i % keys.length]!, value, timestamp: t0 + i });
      }
      batches.push(recs);
    }

    const part = store.partition(LOG_TOPIC, 0);
    let start = performance.now();
    for (const recs of batches) await part.append(recs);
    const appendMs = performance.now() - start;
    start = performance.now();
    await part.flush();
    const flushMs = performance.now() - start;
    const bytes = part.sizeBytes;
    const payload = N * VALUE_BYTES;
    ctx.log(row('append', `${n0(N)} records (${VALUE_BYTES} B values, ${BATCH} per append) in ${ms(appendMs)}`));
    ctx.log(row('', `${perSec(N, appendMs)} records/s, ${mbps(bytes, appendMs)} MB/s of log (${mbps(payload, appendMs)} MB/s of values)`));
    ctx.log(row('flush (fdatasync)', `${ms(flushMs)}; ${(bytes / 1e6).toFixed(1)} MB in ${part.segments.length} segments`));

    // Read everything back, checking every record.
    start = performance.now();
    let i = 0;
    const expect = new Uint8Array(VALUE_BYTES);
    for await (const r of part.read({ offset: 0 })) {
      fillValue(expect, i);
      if (r.offset !== i || r.timestamp !== t0 + i || !equalBytes(r.value, expect) || !equalBytes(r.key, keys[i % keys.length]!)) {
        throw new Error(`demo: record ${i} read back wrong (offset ${r.offset})`);
      }
      i++;
    }
    const readMs = performance.now() - start;
    if (i !== N) throw new Error(`demo: read ${i} records, wrote ${N}`);
    ctx.log(row('read back, verified', `${n0(N)} records in ${ms(readMs)}: ${perSec(N, readMs)} records/s, ${mbps(bytes, readMs)} MB/s`));

    // Random seeks: one record at an offset, the first record at a timestamp.
    const seeks = Math.min(2000, Math.ceil(N / 10));
    const targets = randoms(seeks, N);
    start = performance.now();
    for (const o of targets) {
      const it = part.read({ offset: o }, { maxRecords: 1 });
      const first = await it.next();
      await it.return(undefined);
      if (first.done || (first.value as StoredRecord).offset !== o) throw new Error(`demo: seek to offset ${o} failed`);
    }
    const seekMs = performance.now() - start;
    ctx.log(row('seek by offset', `${n0(seeks)} random reads of 1 record: ${perSec(seeks, seekMs)} lookups/s`));
    start = performance.now();
    for (const o of targets) {
      const found = await part.offsetForTimestamp(t0 + o);
      if (found !== o) throw new Error(`demo: timestamp ${t0 + o} gave offset ${found}, expected ${o}`);
    }
    const tsMs = performance.now() - start;
    ctx.log(row('seek by timestamp', `${n0(seeks)} random timestamps -> offset: ${perSec(seeks, tsMs)} lookups/s`));

    // Close (clean shutdown marker) and open again: no recovery scan needed.
    const [closeMs, openMs] = await ctx.reopen();
    store = ctx.store;
    const again = store.partition(LOG_TOPIC, 0);
    if (again.logEndOffset !== N) throw new Error(`demo: reopened log ends at ${again.logEndOffset}, expected ${N}`);
    ctx.log(row('close + reopen', `${ms(closeMs)} + ${ms(openMs)} (clean shutdown: indexes loaded, no scan); logEndOffset ${n0(again.logEndOffset)}`));

    const mid = Math.floor(N / 2);
    ctx.commands.push(
      `npx sediment topics describe --dir ${ctx.dir} --topic ${LOG_TOPIC}`,
      `npx sediment consume --dir ${ctx.dir} --topic ${LOG_TOPIC} --partition 0 --offset ${mid} --max 3`,
      `npx sediment consume --dir ${ctx.dir} --topic ${LOG_TOPIC} --partition 0 --timestamp ${t0 + mid} --max 1 --format json`,
      `npx sediment dump ${path.join(ctx.dir, `${LOG_TOPIC}-0`, '00000000000000000000.log')} | head -5`,
      `npx sediment dump ${path.join(ctx.dir, `${LOG_TOPIC}-0`, '00000000000000000000.index')} | head -5`,
      `seq 1 5 | npx sediment produce --dir ${ctx.dir} --topic ${LOG_TOPIC}`,
      `npx sediment verify --dir ${ctx.dir}`,
    );
  },
};

/** The demo's sections, run in order on one store. */
export const SECTIONS: DemoSection[] = [logSection];

export interface DemoOptions { dir?: string; records?: number; out?: (line: string) => void }

/** Runs every section; returns the exit code (0, or 4 when another process holds the store). */
export async function runDemo(opts: DemoOptions = {}): Promise<number> {
  const dir = opts.dir ?? 'data';
  const records = opts.records ?? 200_000;
  const out = opts.out ?? ((line: string) => process.stdout.write(line + '\n'));
  if (!Number.isSafeInteger(records) || records < 1 || records > 10_000_000) throw new Error(`--records must be in [1, 10000000], got ${records}`);
  const started = performance.now();
  let store: Store;
  try {
    store = await Store.open(dir, { retentionCheckMs: -1 });
  } catch (err) {
    if (err instanceof StoreLockedError) {
      out(`sediment demo: ${err.message}. Is another demo running?`);
      return 4;
    }
    throw err;
  }
  const ctx: DemoContext = {
    store,
    dir,
    records,
    log: (line = '') => out(line),
    commands: [],
    async reopen() {
      let t = performance.now();
      await ctx.store.close();
      const closeMs = performance.now() - t;
      t = performance.now();
      ctx.store = await Store.open(dir, { retentionCheckMs: -1 });
      return [closeMs, performance.now() - t];
    },
  };
  out(`sediment demo: store at ${path.resolve(dir)} (Node ${process.versions.node}, ${process.platform}/${process.arch})`);
  try {
    for (const s of SECTIONS) {
      out('');
      out(s.title);
      await s.run(ctx);
    }
  } finally {
    await ctx.store.close();
  }
  out('');
  out(`done in ${((performance.now() - started) / 1000).toFixed(1)} s. Explore the data with the CLI:`);
  for (const c of ctx.commands) out(`  ${c}`);
  return 0;
}

function parseArgs(argv: string[]): DemoOptions {
  const o: DemoOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--dir') o.dir = argv[++i];
    else if (a === '--records') o.records = Number(argv[++i]);
    else throw new Error(`usage: node dist/src/demo.js [--dir DIR] [--records N] (unknown argument ${a})`);
  }
  return o;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  runDemo(parseArgs(process.argv.slice(2))).then((code) => { process.exitCode = code; }, (err) => {
    process.stderr.write(`sediment demo: ${err instanceof SedimentError ? err.message : (err as Error)?.stack ?? err}\n`);
    process.exitCode = 1;
  });
}
