// Dedup in place (DedupFilter.filterEncoded, kernels dedupLayout and
// dedupBatch): the records are framed as a batch first and their identities
// hashed where they lie. These tests hold the in-place paths to the staging
// path (DedupFilter.filter): the same keep/drop decisions, statistics and
// window on random streams (duplicates inside a call, count and age
// eviction at their boundaries, null keys and values, header mode with the
// header missing or null, content mode, forced hash collisions); the
// fallbacks; malformed input; and the partition writing the framed batch as
// it is when nothing is dropped.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { getKernelsSync, compileKernels, Kernels, WasmBuffer } from '../src/kernels.js';
import { DedupFilter, DEDUP_CHUNK_RECORDS } from '../src/dedup.js';
import { RecordBatchEncoder } from '../src/record_batch.js';
import { NormalizedRecord, RecordInput, normalizeRecord } from '../src/record.js';
import { DedupConfig } from '../src/topic_config.js';
import { InvalidArgumentError } from '../src/errors.js';
import { Store } from '../src/store.js';

const k = getKernelsSync();
const encoder = new RecordBatchEncoder(k);
const batchBuf = new WasmBuffer(k, 64 * 1024);

function norm(rs: readonly RecordInput[]): NormalizedRecord[] {
  return rs.map((r, i) => normalizeRecord(r, i, 1_000));
}

/** Keep flags with null (the in-place paths' "all kept") spelled out. */
function flagsOf(keep: boolean[] | null, n: number): boolean[] {
  return keep ?? new Array<boolean>(n).fill(true);
}

type Path = 'filter' | 'layout' | 'decode';

/** Runs one append's records through a filter by one path. */
function run(f: DedupFilter, how: Path, recs: NormalizedRecord[]): boolean[] {
  if (how === 'filter') return f.filter(recs);
  const size = encoder.encode(recs, batchBuf, 0);
  const layout = how === 'layout' ? encoder.lastLayout() : undefined;
  return flagsOf(f.filterEncoded(recs, k, batchBuf.ptr, size, layout), recs.length);
}

function statsOf(f: DedupFilter) {
  const s = f.stats();
  return { checked: s.checked, dropped: s.dropped, skipped: s.skipped, windowSize: s.windowSize };
}

// --- property: the three paths decide alike --------------------------------------------

const enc = new TextEncoder();
const bytesArb = (max: number) => fc.oneof(
  { weight: 1, arbitrary: fc.constant(null) },
  // A small pool of values, so identities repeat (duplicates, also inside one append).
  { weight: 4, arbitrary: fc.constantFrom('', 'a', 'b', 'ab', 'c').map((s) => enc.encode(s)) },
  // Long enough for two-byte varint lengths (64 and more).
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: max }) },
);
const headerArb = fc.tuple(fc.constantFrom('id', 'other', 'ID', 'i'), fc.option(fc.constantFrom('x', 'y', 'xy', ''), { nil: null }));
const recordArb: fc.Arbitrary<{ key: Uint8Array | null; value: Uint8Array | null; headers: [string, string | null][]; dt: number }> = fc.record({
  key: bytesArb(80),
  value: bytesArb(200),
  headers: fc.array(headerArb, { maxLength: 3 }),
  // Mostly forward in time; sometimes backwards (producers set timestamps).
  dt: fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 0, max: 4 }) }, { weight: 1, arbitrary: fc.integer({ min: -6, max: -1 }) }),
});

test('property: filterEncoded (layout tables and varint decoding) decides exactly like filter, every mode', () => {
  const modes: DedupConfig['by'][] = ['key', 'value', 'header:id', 'content'];
  fc.assert(fc.property(
    fc.constantFrom(...modes), fc.integer({ min: 1, max: 12 }), fc.constantFrom(0, 1, 5, 20), fc.constantFrom(64, 64, 5),
    fc.array(fc.array(recordArb, { minLength: 1, maxLength: 25 }), { minLength: 1, maxLength: 12 }),
    (by, count, ageMs, hashBits, appends) => {
      const cfg: DedupConfig = { by, window: { count, ageMs } };
      const paths: Path[] = ['filter', 'layout', 'decode'];
      const filters = paths.map(() => new DedupFilter(k, cfg, { hashBits }));
      try {
        let t = 10_000;
        appends.forEach((a, step) => {
          const recs = norm(a.map((r) => {
            t = Math.max(0, t + r.dt);
            return { key: r.key, value: r.value, headers: r.headers, timestamp: t };
          }));
          const got = filters.map((f, i) => run(f, paths[i]!, recs));
          assert.deepEqual(got[1], got[0], `layout path, append ${step}`);
          assert.deepEqual(got[2], got[0], `decoding path, append ${step}`);
          const st = filters.map(statsOf);
          assert.deepEqual(st[1], st[0], `layout path stats, append ${step}`);
          assert.deepEqual(st[2], st[0], `decoding path stats, append ${step}`);
        });
      } finally {
        for (const f of filters) f.close();
      }
    }), { numRuns: 250 });
});

test('count bound at the boundary through filterEncoded: the window holds exactly the last `count` identities', () => {
  for (const count of [1, 6, 7, 100]) {
    const f = new DedupFilter(k, { by: 'key', window: { count } });
    try {
      const ids = Array.from({ length: count }, (_, i) => ({ key: `id${i}`, value: 'v' }));
      assert.deepEqual(run(f, 'layout', norm(ids)), ids.map(() => true));
      assert.deepEqual(run(f, 'layout', norm(ids)), ids.map(() => false), 'all inside: all duplicates');
      // One more evicts exactly the oldest; within the same append, the re-insert of id0 is then caught.
      assert.deepEqual(run(f, 'layout', norm([{ key: 'new', value: 'v' }, { key: 'id0', value: 'v' }, { key: 'id0', value: 'w' }])), [true, true, false]);
      assert.equal(f.windowSize, count);
    } finally {
      f.close();
    }
  }
});

test('age bound at the boundary through filterEncoded, and records sharing one timestamp', () => {
  const f = new DedupFilter(k, { by: 'key', window: { count: 100, ageMs: 1000 } });
  try {
    const at = (key: string, timestamp: number) => ({ key, value: 'v', timestamp });
    assert.deepEqual(run(f, 'layout', norm([at('a', 10_000), at('b', 10_000), at('a', 10_000)])), [true, true, false]);
    assert.deepEqual(run(f, 'layout', norm([at('a', 10_999)])), [false], 'now - t = 999 < 1000');
    assert.deepEqual(run(f, 'layout', norm([at('a', 11_000), at('b', 10_500)])), [true, true], 'a expired at 1000 ms; b evicted with it (oldest first)');
    assert.equal(f.windowSize, 2);
  } finally {
    f.close();
  }
});

test('a large append in place: 16,384 records with 30% duplicates match filter() and the stats add up', () => {
  const n = DEDUP_CHUNK_RECORDS;
  let x = 99;
  const keys: string[] = [];
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    keys.push((x >>> 0) % 10 < 3 && i > 0 ? keys[(x >>> 4) % i]! : `k${i}`);
  }
  const recs = norm(keys.map((key, i) => ({ key: i % 97 === 0 ? null : key, value: 'v' })));
  const a = new DedupFilter(k, { by: 'key', window: { count: 5000 } });
  const b = new DedupFilter(k, { by: 'key', window: { count: 5000 } });
  try {
    const want = a.filter(recs);
    assert.deepEqual(run(b, 'layout', recs), want);
    assert.ok(want.filter((v) => !v).length > n * 0.15);
    assert.deepEqual(statsOf(b), statsOf(a));
    assert.equal(b.stats().skipped, Math.ceil(n / 97));
  } finally {
    a.close(); b.close();
  }
});

// --- fallbacks ------------------------------------------------------------------------------

test('filterEncoded falls back to filter() for confirm mode, oversized appends and another Kernels instance', async () => {
  // confirm: byte comparison needs the JS-side ring, so the in-place kernel is not used; decisions are filter()'s.
  const recs = norm(['a', 'b', 'a', 'c', 'b'].map((key) => ({ key, value: 'v' })));
  for (const cfg of [{ by: 'key', window: { count: 10 }, confirm: true }, { by: 'header:id', window: { count: 10 }, confirm: true }] as DedupConfig[]) {
    const f = new DedupFilter(k, cfg);
    const g = new DedupFilter(k, cfg);
    try {
      const rs = cfg.by === 'key' ? recs : norm(['a', 'b', 'a'].map((id) => ({ value: 'v', headers: { id } })));
      assert.deepEqual(run(f, 'layout', rs), g.filter(rs));
      assert.equal(f.stats().checked, rs.length);
    } finally {
      f.close(); g.close();
    }
  }
  // More records than one kernel call takes.
  const many = norm(Array.from({ length: DEDUP_CHUNK_RECORDS + 3 }, (_, i) => ({ key: `k${i % 20_000}`, value: null })));
  const f = new DedupFilter(k, { by: 'key', window: { count: 100_000 } });
  try {
    const size = encoder.encode(many, batchBuf, 0);
    assert.equal(f.filterEncoded(many, k, batchBuf.ptr, size, encoder.lastLayout()), null, 'all distinct: null');
    assert.equal(f.windowSize, many.length);
  } finally {
    f.close();
  }
  // A batch in another instance's memory is not read through this filter's memory.
  const other = new Kernels(await compileKernels());
  const otherEnc = new RecordBatchEncoder(other);
  const otherBuf = new WasmBuffer(other, 4096);
  const h = new DedupFilter(k, { by: 'key', window: { count: 10 } });
  try {
    const size = otherEnc.encode(recs, otherBuf, 0);
    assert.deepEqual(flagsOf(h.filterEncoded(recs, other, otherBuf.ptr, size, otherEnc.lastLayout()), recs.length), [true, true, false, true, false]);
  } finally {
    h.close(); otherEnc.free(); otherBuf.free();
  }
});

// --- malformed input ---------------------------------------------------------------------------

test('a batch that does not hold the records is refused with InvalidArgumentError and leaves the window unchanged', () => {
  const f = new DedupFilter(k, { by: 'content', window: { count: 10 } });
  const ref = new DedupFilter(k, { by: 'content', window: { count: 10 } });
  try {
    const first = norm([{ key: 'a', value: 'v' }]);
    run(f, 'decode', first); ref.filter(first);
    const recs = norm([{ key: 'k1', value: 'x'.repeat(100), headers: { h: '1' } }, { key: 'k2', value: 'y' }]);
    const size = encoder.encode(recs, batchBuf, 0);
    // Truncated: the last record runs past the end.
    assert.throws(() => f.filterEncoded(recs, k, batchBuf.ptr, size - 3), InvalidArgumentError);
    // Too short for a batch header.
    assert.throws(() => f.filterEncoded(recs, k, batchBuf.ptr, 40), InvalidArgumentError);
    // Garbage after the records.
    assert.throws(() => f.filterEncoded(recs, k, batchBuf.ptr, size + 5), InvalidArgumentError);
    // Layout tables pointing past the batch.
    const size2 = encoder.encode(recs, batchBuf, 0);
    const layout = encoder.lastLayout();
    k.i32[(layout.pos >>> 2) + 1] = size2 + 10; // first record's value position
    const g = new DedupFilter(k, { by: 'value', window: { count: 10 } });
    try {
      assert.throws(() => g.filterEncoded(recs, k, batchBuf.ptr, size2, layout), InvalidArgumentError);
      assert.equal(g.windowSize, 0);
    } finally {
      g.close();
    }
    assert.equal(f.windowSize, 1, 'nothing inserted by the refused calls');
    assert.deepEqual(statsOf(f), statsOf(ref));
    const again = norm([{ key: 'a', value: 'v' }, { key: 'k2', value: 'y' }]);
    assert.deepEqual(run(f, 'layout', again), ref.filter(again));
  } finally {
    f.close(); ref.close();
  }
});

// --- through a partition -----------------------------------------------------------------------

test('appendSync on a dedup topic: the framed batch is written as is when nothing is dropped, re-framed when records are', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-dedup-inplace-'));
  const store = await Store.open(dir, { retentionCheckMs: -1 });
  try {
    await store.createTopic('t', { config: { flushMs: -1, dedup: { by: 'key', window: { count: 1000 } } } });
    await store.createTopic('plain', { config: { flushMs: -1 } });
    const p = store.partition('t');
    const plain = store.partition('plain');
    const batch = (keys: (string | null)[]): RecordInput[] => keys.map((key, i) => ({ key, value: `v${i}`.repeat(i + 1), headers: { n: String(i) }, timestamp: 5_000 + i }));
    const first = batch(['a', 'b', null, 'c']);
    const r1 = p.appendSync(first);
    plain.appendSync(first);
    assert.deepEqual(r1.offsets, [0, 1, 2, 3]);
    // Byte for byte what a topic without dedup writes, and its layout (values' positions) is the written batch's.
    const l1 = p.lastBatchLayout()!;
    const l2 = plain.lastBatchLayout()!;
    assert.deepEqual([...l1.valuePositions], [...l2.valuePositions]);
    const scratch = new WasmBuffer(k, 4096);
    try {
      const bytes = (l: typeof l1) => {
        const ptr = scratch.ensure(l.size);
        assert.equal(l.segment.readInto(ptr, l.size, l.position), l.size);
        return k.u8.slice(ptr, ptr + l.size);
      };
      assert.deepEqual(bytes(l1), bytes(l2));
    } finally {
      scratch.free();
    }
    const r2 = p.appendSync(batch(['c', 'd', 'a', 'd', null]));
    assert.deepEqual(r2.dropped, [0, 2, 3]);
    assert.deepEqual(r2.offsets, [-1, 4, -1, -1, 5]);
    const l3 = p.lastBatchLayout()!;
    assert.equal(l3.count, 2);
    const got: { offset: number; key: string | null; value: string }[] = [];
    const dec = new TextDecoder();
    for await (const r of p.read({ offset: 0 })) got.push({ offset: r.offset, key: r.key && dec.decode(r.key), value: dec.decode(r.value!) });
    assert.deepEqual(got.map((g) => [g.offset, g.key]), [[0, 'a'], [1, 'b'], [2, null], [3, 'c'], [4, 'd'], [5, null]]);
    assert.equal(got[4]!.value, 'v1v1', 'the kept record keeps its own value');
    const s = (p.appendFilter as DedupFilter).stats();
    assert.equal(s.checked, 7);
    assert.equal(s.skipped, 2);
    assert.equal(s.dropped, 3);
  } finally {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('after an append that dropped records the next goes through filter(), after one that dropped none back in place; decisions are unchanged', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-dedup-inplace-'));
  const store = await Store.open(dir, { retentionCheckMs: -1 });
  const ref = new DedupFilter(k, { by: 'key', window: { count: 50 } });
  try {
    await store.createTopic('t', { config: { flushMs: -1, dedup: { by: 'key', window: { count: 50 } } } });
    const p = store.partition('t');
    const f = p.appendFilter as DedupFilter;
    const used: string[] = [];
    const filter = f.filter.bind(f);
    const filterEncoded = f.filterEncoded.bind(f);
    f.filter = (r) => { used.push('filter'); return filter(r); };
    f.filterEncoded = (r, kk, ptr, size, layout) => { used.push('encoded'); return filterEncoded(r, kk, ptr, size, layout); };
    let x = 5;
    for (let a = 0; a < 40; a++) {
      const recs: RecordInput[] = [];
      for (let i = 0; i < 8; i++) {
        x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
        // Some appends all new ids, some with repeats.
        recs.push({ key: a % 3 === 0 ? `k${(x >>> 0) % 40}` : `n${a}-${i}`, value: 'v' });
      }
      const want = ref.filter(norm(recs));
      const prefer = f.preferEncoded();
      const r = p.appendSync(recs);
      assert.deepEqual(r.offsets.map((o) => o >= 0), want, `append ${a}`);
      assert.equal(used.at(-1), prefer ? 'encoded' : 'filter');
      assert.equal(f.preferEncoded(), r.dropped.length === 0);
    }
    assert.ok(used.includes('filter') && used.includes('encoded'));
  } finally {
    ref.close();
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
