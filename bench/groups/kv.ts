// The KV store (issue 4) against lmdb (lmdb-js, LMDB through N-API) and
// classic-level (LevelDB through N-API), on one store of 1,000,000 keys each:
// point gets over a hot working set, durable batched puts, range scans, and
// reopening. The three stores are loaded once for the group (keys in random
// order, 16-byte keys, 100-byte values) and closed after the last case.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { BenchGroup, BenchCase, Contender, Metric, nsPer } from '../harness.js';
import { Store } from '../../src/store.js';
import { KvStore, KvOp } from '../../src/kv/kv_store.js';
import { prng, randomBytes } from '../lib/data.js';

const require = createRequire(import.meta.url);

/** The parts of lmdb-js used here. */
export interface LmdbDb {
  get(key: Uint8Array): Uint8Array | undefined;
  put(key: Uint8Array, value: Uint8Array): Promise<boolean>;
  transactionSync<T>(fn: () => T): T;
  getRange(o: { start?: Uint8Array; limit?: number }): Iterable<{ key: Uint8Array; value: Uint8Array }>;
  getStats(): { entryCount: number };
  close(): Promise<void>;
}
interface LmdbModule { open(o: Record<string, unknown>): LmdbDb }

/** The parts of classic-level used here. */
export interface LevelDb {
  open(): Promise<void>;
  close(): Promise<void>;
  get(key: Uint8Array): Promise<Uint8Array | undefined>;
  batch(ops: { type: 'put'; key: Uint8Array; value: Uint8Array }[], o?: { sync?: boolean }): Promise<void>;
  compactRange(start: Uint8Array, end: Uint8Array): Promise<void>;
  iterator(o: { gte?: Uint8Array; limit?: number }): AsyncIterable<[Uint8Array, Uint8Array]> & { close(): Promise<void> };
}
interface ClassicLevelModule { ClassicLevel: new (location: string, o: Record<string, unknown>) => LevelDb }

/** Keys per store (SEDIMENT_BENCH_KV_KEYS overrides, for quick runs; the bars are about 1,000,000). */
export const KV_KEYS = Number(process.env.SEDIMENT_BENCH_KV_KEYS ?? 1_000_000);
export const VALUE_BYTES = 100;
export const HOT_KEYS = 10_000;
export const PUT_BATCH = 1_000;
const SCAN_KEYS = 1_000;

// The helpers below are shared with bench/groups/scaling.ts, which runs the get and put
// cases at 10k and 100k keys; this group's cases are the 1 M points of those charts.

export function keyOf(i: number): Uint8Array {
  const s = `key${String(i).padStart(13, '0')}`;
  const out = new Uint8Array(16);
  for (let j = 0; j < 16; j++) out[j] = s.charCodeAt(j);
  return out;
}

export function hex(b: Uint8Array): string { return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex'); }

interface Dataset {
  dir: string;
  values: Uint8Array;
  value(i: number): Uint8Array;
  store: Store;
  kv: KvStore;
  lmdb: LmdbDb;
  level: LevelDb;
  loadSeconds: { sediment: number; lmdb: number; level: number };
}

let data: Promise<Dataset> | null = null;

export function shuffled(n: number, seed: number): number[] {
  const next = prng(seed);
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) { const j = next() % (i + 1); const t = a[i]!; a[i] = a[j]!; a[j] = t; }
  return a;
}

export const KV_OPTS = { cacheBytes: 64 << 20 };

export async function openSediment(dir: string): Promise<{ store: Store; kv: KvStore }> {
  const store = await Store.open(path.join(dir, 'sediment'), { retentionCheckMs: -1 });
  return { store, kv: await store.kv('bench', KV_OPTS) };
}

export function openLmdb(dir: string): LmdbDb {
  const lmdb = require('lmdb') as LmdbModule;
  return lmdb.open({ path: path.join(dir, 'lmdb'), keyEncoding: 'binary', encoding: 'binary', compression: false });
}

export async function openLevel(dir: string): Promise<LevelDb> {
  const { ClassicLevel } = require('classic-level') as ClassicLevelModule;
  const db = new ClassicLevel(path.join(dir, 'level'), { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  return db;
}

/**
 * Loads the same 1M keys, in the same random order, into all three stores.
 * Keys are made on the fly (keyOf): a million Uint8Array objects held by the
 * benchmark itself would load the collector of every contender.
 */
function dataset(): Promise<Dataset> {
  data ??= (async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-bench-kv-'));
    const values = randomBytes(KV_KEYS * VALUE_BYTES, 7);
    const value = (i: number) => values.subarray(i * VALUE_BYTES, (i + 1) * VALUE_BYTES);
    const order = shuffled(KV_KEYS, 11);
    const chunk = 10_000;
    let t = performance.now();
    const { store, kv } = await openSediment(dir);
    for (let b = 0; b < KV_KEYS; b += chunk) {
      const ops: KvOp[] = [];
      for (let i = b; i < b + chunk; i++) ops.push({ type: 'put', key: keyOf(order[i]!), value: value(order[i]!) });
      kv.batchSync(ops);
    }
    await kv.flush();
    const sediment = (performance.now() - t) / 1000;
    t = performance.now();
    const lmdb = openLmdb(dir);
    for (let b = 0; b < KV_KEYS; b += chunk) {
      lmdb.transactionSync(() => { for (let i = b; i < b + chunk; i++) lmdb.put(keyOf(order[i]!), value(order[i]!)); });
    }
    const lm = (performance.now() - t) / 1000;
    t = performance.now();
    const level = await openLevel(dir);
    for (let b = 0; b < KV_KEYS; b += chunk) {
      const ops: { type: 'put'; key: Uint8Array; value: Uint8Array }[] = [];
      for (let i = b; i < b + chunk; i++) ops.push({ type: 'put', key: keyOf(order[i]!), value: value(order[i]!) });
      await level.batch(ops);
    }
    const lv = (performance.now() - t) / 1000;
    await settle(kv, level);
    process.stderr.write(`[kv] loaded ${KV_KEYS} keys: sediment ${sediment.toFixed(1)} s, lmdb ${lm.toFixed(1)} s, classic-level ${lv.toFixed(1)} s\n`);
    return { dir, values, value, store, kv, lmdb, level, loadSeconds: { sediment, lmdb: lm, level: lv } };
  })();
  return data;
}

/**
 * Lets both log-structured engines finish their background work before a
 * case: sediment's due maintenance (compaction, clustering by key,
 * checkpoint) and a full LevelDB compaction (more than LevelDB would do on
 * its own: the best layout for its reads).
 */
async function settle(kv: KvStore, level: LevelDb): Promise<void> {
  await kv.maintain();
  await level.compactRange(keyOf(0), keyOf(KV_KEYS - 1));
}

async function closeDataset(): Promise<void> {
  if (!data) return;
  const d = await data;
  data = null;
  await d.store.close();
  await d.lmdb.close();
  await d.level.close();
  fs.rmSync(d.dir, { recursive: true, force: true });
}

function getCase(): BenchCase {
  return {
    name: `get, ${HOT_KEYS.toLocaleString('en')}-key hot set of ${KV_KEYS.toLocaleString('en')} keys`,
    metric: nsPer(1, 'get'),
    chart: { id: 'kv-get', title: 'KV get (hot set of 10,000 keys) as the store grows', xLabel: 'keys in the store', x: KV_KEYS, xFormat: 'count' },
    bars: [{ label: 'get (cached working set) ≥ 1× lmdb', sediment: 'sediment getSync', peers: ['lmdb get'], minRatio: 1 }],
    async setup() {
      const d = await dataset();
      const next = prng(3);
      const hot = Array.from({ length: HOT_KEYS }, () => keyOf(next() % KV_KEYS));
      const probe = hot[17]!;
      // Warm both: every hot key read once.
      for (const k of hot) { d.kv.getSync(k); d.lmdb.get(k); }
      let i = 0;
      let j = 0;
      let q = 0;
      const contenders: Contender[] = [
        {
          name: 'sediment getSync', role: 'sediment',
          note: 'index lookup through the value cache (64 MiB); returns a fresh copy of the value',
          run(n) { let s = 0; for (let c = 0; c < n; c++) { s += d.kv.getSync(hot[i]!)!.length; i = i + 1 === HOT_KEYS ? 0 : i + 1; } return s; },
          output: () => hex(d.kv.getSync(probe)!),
        },
        {
          name: 'lmdb get', role: 'peer',
          note: 'lmdb-js get (synchronous, memory-mapped B+ tree; binary encoding returns a copy in a Buffer)',
          run(n) { let s = 0; for (let c = 0; c < n; c++) { s += d.lmdb.get(hot[j]!)!.length; j = j + 1 === HOT_KEYS ? 0 : j + 1; } return s; },
          output: () => hex(d.lmdb.get(probe)!),
        },
        {
          name: 'classic-level get', role: 'peer',
          note: 'classic-level get (asynchronous: one promise per get; LevelDB block cache 8 MiB)',
          async: true,
          async run(n) { let s = 0; for (let c = 0; c < n; c++) { s += (await d.level.get(hot[q]!))!.length; q = q + 1 === HOT_KEYS ? 0 : q + 1; } return s; },
          output: async () => hex((await d.level.get(probe))!),
        },
      ];
      return { contenders };
    },
  };
}

function putCase(): BenchCase {
  return {
    name: `batched put + flush, ${PUT_BATCH.toLocaleString('en')} keys per batch (overwrites in ${KV_KEYS.toLocaleString('en')} keys)`,
    metric: nsPer(PUT_BATCH, 'key'),
    chart: { id: 'kv-put', title: 'KV batched put + flush (1,000 keys per batch) as the store grows', xLabel: 'keys in the store', x: KV_KEYS, xFormat: 'count' },
    bars: [{ label: 'batched put + flush ≥ 1× lmdb', sediment: 'sediment batch + flush', peers: ['lmdb transactionSync'], minRatio: 1 }],
    async setup() {
      const d = await dataset();
      const next = prng(5);
      // A pre-built stream of batches over random existing keys (steady state: the key count does not grow).
      const ids = Array.from({ length: 64 }, () => Array.from({ length: PUT_BATCH }, () => next() % KV_KEYS));
      const batches = ids.map((b) => b.map(keyOf));
      const newValue = randomBytes(VALUE_BYTES, 9);
      let a = 0;
      let b = 0;
      let c = 0;
      const contenders: Contender[] = [
        {
          name: 'sediment batch + flush', role: 'sediment',
          note: 'batchSync (one atomic record batch) then flush() (fdatasync); background compaction and checkpoints run as configured by default',
          async: true,
          async run(n) {
            for (let r = 0; r < n; r++) {
              const ks = batches[a]!;
              a = (a + 1) % batches.length;
              d.kv.batchSync(ks.map((k) => ({ type: 'put' as const, key: k, value: newValue })));
              await d.kv.flush();
            }
            return a;
          },
        },
        {
          name: 'lmdb transactionSync', role: 'peer',
          note: 'the same puts in one lmdb transactionSync (a synchronous commit flushed to disk before it returns)',
          run(n) {
            for (let r = 0; r < n; r++) {
              const ks = batches[b]!;
              b = (b + 1) % batches.length;
              d.lmdb.transactionSync(() => { for (const k of ks) d.lmdb.put(k, newValue); });
            }
            return b;
          },
        },
        {
          name: 'classic-level batch (sync)', role: 'peer',
          note: 'the same puts as one classic-level batch with sync: true (write-ahead log fsynced)',
          async: true,
          async run(n) {
            for (let r = 0; r < n; r++) {
              const ks = batches[c]!;
              c = (c + 1) % batches.length;
              await d.level.batch(ks.map((k) => ({ type: 'put' as const, key: k, value: newValue })), { sync: true });
            }
            return c;
          },
        },
      ];
      return {
        contenders,
        // Put the original values back so later cases see the loaded data.
        async teardown() {
          const touched = new Set(ids.flat());
          const ks = [...touched];
          d.kv.batchSync(ks.map((k) => ({ type: 'put' as const, key: keyOf(k), value: d.value(k) })));
          await d.kv.flush();
          d.lmdb.transactionSync(() => { for (const k of ks) d.lmdb.put(keyOf(k), d.value(k)); });
          await d.level.batch(ks.map((k) => ({ type: 'put' as const, key: keyOf(k), value: d.value(k) })));
          await settle(d.kv, d.level);
        },
      };
    },
  };
}

function scanCase(): BenchCase {
  return {
    name: `range scan, ${SCAN_KEYS.toLocaleString('en')} keys and values from a random start (async iterator)`,
    metric: nsPer(SCAN_KEYS, 'key'),
    bars: [{ label: 'range scan ≥ 1× classic-level', sediment: 'sediment range', peers: ['classic-level iterator'], minRatio: 1 }],
    async setup() {
      const d = await dataset();
      const next = prng(13);
      const starts = Array.from({ length: 256 }, () => keyOf(next() % (KV_KEYS - SCAN_KEYS)));
      let a = 0;
      let b = 0;
      let c = 0;
      const probe = starts[0]!;
      const contenders: Contender[] = [
        {
          name: 'sediment range', role: 'sediment',
          note: 'for await over kv.range({ gte, limit }); values not in the cache are read from the log (nearby ones with one read) and CRC-checked',
          async: true,
          async run(n) {
            let s = 0;
            for (let r = 0; r < n; r++) {
              for await (const e of d.kv.range({ gte: starts[a]!, limit: SCAN_KEYS })) s += e.value.length;
              a = (a + 1) % starts.length;
            }
            return s;
          },
          async output() { const out: string[] = []; for await (const e of d.kv.range({ gte: probe, limit: 5 })) out.push(hex(e.key) + hex(e.value)); return out; },
        },
        {
          name: 'classic-level iterator', role: 'peer',
          note: 'for await over classic-level iterator({ gte, limit }) (native, reads ahead in batches)',
          async: true,
          async run(n) {
            let s = 0;
            for (let r = 0; r < n; r++) {
              for await (const [, v] of d.level.iterator({ gte: starts[b]!, limit: SCAN_KEYS })) s += v.length;
              b = (b + 1) % starts.length;
            }
            return s;
          },
          async output() { const out: string[] = []; for await (const [k, v] of d.level.iterator({ gte: probe, limit: 5 })) out.push(hex(k) + hex(v)); return out; },
        },
        {
          name: 'lmdb getRange', role: 'peer',
          note: 'lmdb-js getRange({ start, limit }) (synchronous iterator over the memory map)',
          run(n) {
            let s = 0;
            for (let r = 0; r < n; r++) {
              for (const e of d.lmdb.getRange({ start: starts[c]!, limit: SCAN_KEYS })) s += e.value.length;
              c = (c + 1) % starts.length;
            }
            return s;
          },
          output() { const out: string[] = []; for (const e of d.lmdb.getRange({ start: probe, limit: 5 })) out.push(hex(e.key) + hex(e.value)); return out; },
        },
      ];
      return { contenders };
    },
  };
}

const msPerReopen: Metric = { unit: 'ms/reopen', itemsPerOp: 1, higherIsBetter: false, scale: 1e3 };

function reopenCase(): BenchCase {
  return {
    name: `reopen with ${KV_KEYS.toLocaleString('en')} keys (close, open, first get)`,
    metric: msPerReopen,
    bars: [{ label: 'reopen of 1 M keys < 1 s', sediment: 'sediment reopen', figure: 1000 }],
    async setup() {
      const d = await dataset();
      const pi = Math.min(123_457, KV_KEYS - 1);
      const probe = keyOf(pi);
      const want = hex(d.value(pi));
      const contenders: Contender[] = [
        {
          name: 'sediment reopen', role: 'sediment',
          note: 'store close (flush, checkpoint when the log moved) then Store.open + store.kv (checkpoint load, B+ tree bulk load, replay of the log after it)',
          async: true,
          async run(n) {
            let s = 0;
            for (let r = 0; r < n; r++) {
              await d.store.close();
              const o = await openSediment(d.dir);
              d.store = o.store;
              d.kv = o.kv;
              s += d.kv.getSync(probe)!.length;
            }
            return s;
          },
          output: () => hex(d.kv.getSync(probe)!) === want,
        },
        {
          name: 'lmdb reopen', role: 'peer',
          note: 'lmdb close then open (memory map; no index to rebuild)',
          async: true,
          async run(n) {
            let s = 0;
            for (let r = 0; r < n; r++) {
              await d.lmdb.close();
              d.lmdb = openLmdb(d.dir);
              s += d.lmdb.get(probe)!.length;
            }
            return s;
          },
          output: () => hex(d.lmdb.get(probe)!) === want,
        },
        {
          name: 'classic-level reopen', role: 'peer',
          note: 'classic-level close then open (LevelDB recovers its write-ahead log)',
          async: true,
          async run(n) {
            let s = 0;
            for (let r = 0; r < n; r++) {
              await d.level.close();
              d.level = await openLevel(d.dir);
              s += (await d.level.get(probe))!.length;
            }
            return s;
          },
          output: async () => hex((await d.level.get(probe))!) === want,
        },
      ];
      return { contenders, teardown: closeDataset };
    },
  };
}

export const kv: BenchGroup = {
  name: 'kv',
  title: 'KV store (1 M keys) vs lmdb and classic-level',
  description:
    `One store of ${KV_KEYS.toLocaleString('en')} keys per engine (16-byte keys, ${VALUE_BYTES}-byte values, loaded once in the same ` +
    'random order), all in one process. **get**: point reads cycling over a hot set of 10,000 random keys (sediment serves ' +
    'them from its value cache, lmdb from its memory map, LevelDB from its block cache and the page cache). **batched put + flush**: ' +
    '1,000 overwrites per batch, each batch made durable (sediment: fdatasync of the log; lmdb: synchronous commit; classic-level: ' +
    'sync batch); on this VM fdatasync reaches the host cache, not media; sediment\'s background compaction, clustering and ' +
    'checkpoints run during the case as they would in production. **range scan**: 1,000 consecutive keys with values from ' +
    'a random start. The keys were written in random order; before the case each log-structured engine finishes its ' +
    'background work (sediment: compaction and clustering of values into key order; LevelDB: a full compactRange). ' +
    '**reopen**: close and open again, then one get (sediment loads its index checkpoint; lmdb maps its file; LevelDB reads its ' +
    'manifest and log).',
  cases: () => [getCase(), putCase(), scanCase(), reopenCase()],
};
