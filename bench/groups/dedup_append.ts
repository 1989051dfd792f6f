// Dedup on append (issue 5): DedupFilter.filter on 16-byte record keys
// against a bounded JS Set of strings, and Partition.appendSync on a dedup
// topic against the same append on a topic without dedup.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BenchGroup, Contender, millionsPerSec } from '../harness.js';
import { getKernelsSync, DedupFilter, Store } from '../../src/index.js';
import type { NormalizedRecord, RecordInput, Partition } from '../../src/index.js';
import { prng, randomBytes } from '../lib/data.js';
import { BoundedSet, hex16 } from './dedup.js';

const ID = 16;
const BATCH = 1000;
const WINDOW = 100_000;
const STREAM = 256 * BATCH; // cycled; an id has left the window when it comes round again
const DUP_PERCENT = 10;
const DUP_DISTANCE = 50_000;
const VALUE = 100;

/** STREAM ids of ID bytes; dupPercent of them repeat an id seen within DUP_DISTANCE positions. */
function idStream(dupPercent: number, seed: number): Uint8Array[] {
  const next = prng(seed);
  const flat = randomBytes(STREAM * ID, seed + 1);
  for (let i = 1; i < STREAM; i++) {
    if (next() % 100 < dupPercent) {
      const from = i - 1 - (next() % Math.min(i, DUP_DISTANCE));
      flat.copyWithin(i * ID, from * ID, from * ID + ID);
    }
  }
  const ids: Uint8Array[] = [];
  for (let i = 0; i < STREAM; i++) ids.push(flat.subarray(i * ID, i * ID + ID));
  return ids;
}

function filterCase() {
  return {
    name: `DedupFilter.filter: ${ID}-byte keys, batches of ${BATCH}, window ${WINDOW / 1000}k, ${DUP_PERCENT}% duplicates`,
    metric: millionsPerSec(BATCH, 'checks'),
    bars: [
      { label: 'dedup ≥ 10M checks/s through DedupFilter.filter (records in, keep flags out)', sediment: 'sediment DedupFilter.filter', figure: 10 },
      { label: 'DedupFilter.filter ≥ 5× a JS Set of strings', sediment: 'sediment DedupFilter.filter', peers: ['JS Set (hex from key bytes)', 'JS Set (latin1 from key bytes)'], minRatio: 5 },
    ],
    setup() {
      const k = getKernelsSync();
      const ids = idStream(DUP_PERCENT, 99);
      const now = 1_700_000_000_000;
      const value = new Uint8Array(8);
      const batches: NormalizedRecord[][] = [];
      for (let b = 0; b < STREAM / BATCH; b++) {
        const recs: NormalizedRecord[] = [];
        for (let j = 0; j < BATCH; j++) recs.push({ key: ids[b * BATCH + j]!, value, headerKeys: [], headerValues: [], timestamp: now + b });
        batches.push(recs);
      }
      const nBatches = batches.length;
      const cfg = { by: 'key' as const, window: { count: WINDOW, ageMs: 3_600_000 } };

      let filter = new DedupFilter(k, cfg);
      let bA = 0;
      const stepA = (): boolean[] => {
        const keep = filter.filter(batches[bA]!);
        bA = bA + 1 === nBatches ? 0 : bA + 1;
        return keep;
      };
      // The JS peers see the same records and return the same keep flags.
      let setB = new BoundedSet(WINDOW);
      let bB = 0;
      const stepB = (): boolean[] => {
        const recs = batches[bB]!;
        const keep: boolean[] = new Array(recs.length);
        for (let j = 0; j < recs.length; j++) keep[j] = !setB.checkInsert(hex16(recs[j]!.key!));
        bB = bB + 1 === nBatches ? 0 : bB + 1;
        return keep;
      };
      let setC = new BoundedSet(WINDOW);
      let bC = 0;
      const stepC = (): boolean[] => {
        const recs = batches[bC]!;
        const keep: boolean[] = new Array(recs.length);
        for (let j = 0; j < recs.length; j++) {
          const key = recs[j]!.key!;
          keep[j] = !setC.checkInsert(String.fromCharCode(key[0]!, key[1]!, key[2]!, key[3]!, key[4]!, key[5]!, key[6]!, key[7]!,
            key[8]!, key[9]!, key[10]!, key[11]!, key[12]!, key[13]!, key[14]!, key[15]!));
        }
        bC = bC + 1 === nBatches ? 0 : bC + 1;
        return keep;
      };
      const pass = (step: () => boolean[]): boolean[] => {
        const all: boolean[] = [];
        for (let b = 0; b < nBatches; b++) all.push(...step());
        return all;
      };
      const contenders: Contender[] = [
        {
          name: 'sediment DedupFilter.filter', role: 'sediment',
          note: 'the staged path (appends over several batches, confirm mode, rebuilds): key bytes copied into wasm memory, xxh64 of all keys in one call, window check in one call, keep flags',
          run(n) { let f: boolean[] = []; for (let i = 0; i < n; i++) f = stepA(); return f; },
          output: () => { const o = pass(stepA); filter.close(); filter = new DedupFilter(k, cfg); bA = 0; return o; },
        },
        {
          name: 'JS Set (hex from key bytes)', role: 'peer',
          note: 'Set<string> with a FIFO ring for the count bound (bench/groups/dedup.ts BoundedSet); each key hex-encoded with a byte table',
          run(n) { let f: boolean[] = []; for (let i = 0; i < n; i++) f = stepB(); return f; },
          output: () => { const o = pass(stepB); setB = new BoundedSet(WINDOW); bB = 0; return o; },
        },
        {
          name: 'JS Set (latin1 from key bytes)', role: 'peer',
          note: 'the same bounded Set; each key turned into a 16-char string with String.fromCharCode (the cheapest string key)',
          run(n) { let f: boolean[] = []; for (let i = 0; i < n; i++) f = stepC(); return f; },
          output: () => { const o = pass(stepC); setC = new BoundedSet(WINDOW); bC = 0; return o; },
        },
      ];
      return { contenders, teardown: () => filter.close() };
    },
  };
}

function appendCase(dupPercent: number) {
  const withBar = dupPercent === 0;
  return {
    name: `Partition.appendSync, ${BATCH} records (${ID}-byte key, ${VALUE}-byte value), ${dupPercent}% duplicates: dedup on vs off`,
    metric: millionsPerSec(BATCH, 'records'),
    bars: withBar ? [
      { label: 'append with dedup on ≥ 0.8× append with dedup off', sediment: 'sediment append, dedup on', peers: ['sediment append, dedup off'], minRatio: 0.8 },
    ] : [],
    async setup() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-bench-dedup-'));
      const store = await Store.open(dir, { retentionCheckMs: -1 });
      const base = { flushMs: -1, segmentBytes: 64 << 20, retentionBytes: 192 << 20, retentionMs: -1 };
      await store.createTopic('on', { config: { ...base, dedup: { by: 'key', window: { count: WINDOW, ageMs: 3_600_000 } } } });
      await store.createTopic('off', { config: base });
      const ids = idStream(dupPercent, 7 + dupPercent);
      const value = randomBytes(VALUE, 3);
      const batches: RecordInput[][] = [];
      for (let b = 0; b < STREAM / BATCH; b++) {
        const recs: RecordInput[] = [];
        for (let j = 0; j < BATCH; j++) recs.push({ key: ids[b * BATCH + j]!, value });
        batches.push(recs);
      }
      const nBatches = batches.length;
      const make = (p: Partition) => {
        let b = 0;
        let ops = 0;
        return (): number => {
          const r = p.appendSync(batches[b]!);
          b = b + 1 === nBatches ? 0 : b + 1;
          // Keep the disk use bounded: retention drops old segments (the same work for both).
          if (++ops % 256 === 0) p.enforceRetention();
          return r.count;
        };
      };
      const stepOn = make(store.partition('on'));
      const stepOff = make(store.partition('off'));
      const contenders: Contender[] = [
        {
          name: 'sediment append, dedup on', role: 'sediment',
          note: `topic with dedup { by: 'key', window: { count: ${WINDOW}, ageMs: 1 h } }; appendSync (no fsync), ids cycled so the window stays full`,
          run(n) { let c = 0; for (let i = 0; i < n; i++) c += stepOn(); return c; },
          output: () => (dupPercent === 0 ? stepOn() : null),
        },
        {
          name: 'sediment append, dedup off', role: 'peer',
          note: 'the same appends to a topic without dedup (the baseline of the 0.8× bar, not a third-party peer)',
          run(n) { let c = 0; for (let i = 0; i < n; i++) c += stepOff(); return c; },
          output: () => (dupPercent === 0 ? stepOff() : null),
        },
      ];
      return {
        contenders,
        teardown: async () => { await store.close(); fs.rmSync(dir, { recursive: true, force: true }); },
      };
    },
  };
}

export const dedupAppend: BenchGroup = {
  name: 'dedup-append',
  title: 'Dedup on append (DedupFilter, end to end)',
  description: `Two measurements of issue 5's dedup. (1) DedupFilter.filter, the staged path of the AppendFilter a dedup topic's ` +
    `partition calls before assigning offsets, on batches of ${BATCH} records with ${ID}-byte keys, window ${WINDOW.toLocaleString('en-US')} ` +
    `(full and evicting), ${DUP_PERCENT}% of keys repeating one seen within ${DUP_DISTANCE.toLocaleString('en-US')} positions; ` +
    'against a JS Set of strings with the same FIFO count bound, the key bytes turned into a string two ways. Keep flags ' +
    'are checked equal over the whole stream first. (2) Partition.appendSync of ' +
    `${BATCH}-record batches (${ID}-byte keys, ${VALUE}-byte values, append-time timestamps, no fsync: page cache only) to a ` +
    'topic with dedup on (the records framed first and deduplicated in place, DedupFilter.filterEncoded) against a topic ' +
    'without it, in records per second; with 0% duplicates every record is still ' +
    'written, so the ratio is the pure cost of the check; the 10% case writes 10% fewer records with dedup on.',
  cases: () => [filterCase(), appendCase(0), appendCase(DUP_PERCENT)],
};
