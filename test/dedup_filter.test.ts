// DedupFilter (src/dedup.ts) on its own: what each mode treats as the
// identity of a record, the count and age bounds at their exact boundaries,
// duplicates inside one call, large and chunked batches, confirm mode under
// forced hash collisions, and model tests against a plain JS window over
// random sequences (including out-of-order timestamps).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import xxhash from 'xxhash-wasm';
import { getKernelsSync } from '../src/kernels.js';
import { DedupFilter, DEDUP_CHUNK_BYTES, DEDUP_CHUNK_RECORDS } from '../src/dedup.js';
import { NormalizedRecord, RecordInput, normalizeRecord } from '../src/record.js';
import { DedupConfig, resolveTopicConfig } from '../src/topic_config.js';
import { InvalidArgumentError } from '../src/errors.js';

const k = getKernelsSync();
const ref = await xxhash();
const utf8 = new TextEncoder();

function norm(rs: RecordInput[], now = 0): NormalizedRecord[] {
  return rs.map((r, i) => normalizeRecord(r, i, now));
}

/** Runs fn with a fresh filter and frees it after. */
function withFilter<T>(cfg: DedupConfig, fn: (f: DedupFilter) => T, hashBits?: number): T {
  const f = new DedupFilter(k, cfg, hashBits === undefined ? {} : { hashBits });
  try { return fn(f); } finally { f.close(); }
}

/** Indexes of dropped records. */
function droppedOf(f: DedupFilter, rs: RecordInput[], now = 0): number[] {
  const keep = f.filter(norm(rs, now));
  assert.equal(keep.length, rs.length);
  const out: number[] = [];
  keep.forEach((kk, i) => { assert.equal(typeof kk, 'boolean'); if (!kk) out.push(i); });
  return out;
}

const key = (s: string, ts?: number): RecordInput => ({ key: s, value: 'v', ...(ts === undefined ? {} : { timestamp: ts }) });

// --- modes -------------------------------------------------------------------------

test('key mode: null keys are never checked, the empty key is an identity, values do not matter', () => {
  withFilter({ by: 'key', window: { count: 10 } }, (f) => {
    assert.deepEqual(droppedOf(f, [{ value: 'a' }, { key: null, value: 'a' }, { value: 'a' }]), []);
    assert.deepEqual(droppedOf(f, [{ key: '', value: 'x' }, { key: new Uint8Array(0), value: 'y' }]), [1]);
    assert.deepEqual(droppedOf(f, [{ key: 'k', value: 'x' }, { key: 'k', value: 'other' }, { key: utf8.encode('k'), value: null }]), [1, 2]);
    const s = f.stats();
    assert.equal(s.skipped, 3);
    assert.equal(s.checked, 5);
    assert.equal(s.dropped, 3);
    assert.equal(s.windowSize, 2);
  });
});

test('value mode: null values are not checked; keys and headers do not matter', () => {
  withFilter({ by: 'value', window: { count: 10 } }, (f) => {
    assert.deepEqual(droppedOf(f, [{ key: 'a', value: 'p' }, { key: 'b', value: 'p', headers: { h: 'x' } }, { key: 'a', value: null }, { value: null }]), [1]);
    assert.equal(f.stats().skipped, 2);
  });
});

test('header mode: first header with exactly that name; missing or null header values are not checked', () => {
  withFilter({ by: 'header:id', window: { count: 10 } }, (f) => {
    const d = droppedOf(f, [
      { value: 'a', headers: { id: 'x1' } },
      { value: 'b', headers: [['other', 'x'], ['id', 'x1']] }, // dup of 0
      { value: 'c', headers: [['ID', 'x1']] }, // name differs in case: no identity
      { value: 'd', headers: [['id', null]] }, // null value: no identity
      { value: 'e' }, // no headers
      { value: 'f', headers: [{ key: 'id', value: 'x2' }, { key: 'id', value: 'x1' }] }, // first id header counts: x2
      { value: 'g', headers: [['id', 'x2']] }, // dup of 5
      { key: 'x1', value: 'x1', headers: [['idx', 'x1'], ['i', 'd']] }, // prefix names do not match
    ]);
    assert.deepEqual(d, [1, 6]);
    assert.equal(f.stats().skipped, 4);
  });
  // Header names are compared as UTF-8 bytes.
  withFilter({ by: 'header:ключ', window: { count: 4 } }, (f) => {
    assert.deepEqual(droppedOf(f, [{ value: 'a', headers: { 'ключ': 'v' } }, { value: 'b', headers: [['ключ', utf8.encode('v')]] }]), [1]);
  });
});

test('content mode: key, value and headers (in order) all count; timestamps do not; the encoding is unambiguous', () => {
  withFilter({ by: 'content', window: { count: 100 } }, (f) => {
    const base: RecordInput = { key: 'k', value: 'v', headers: [['a', '1'], ['b', '2']], timestamp: 5 };
    assert.deepEqual(droppedOf(f, [base, { ...base, timestamp: 6 }]), [1]);
    const variants: RecordInput[] = [
      { key: 'k', value: 'v', headers: [['b', '2'], ['a', '1']] }, // header order
      { key: 'k', value: 'v', headers: [['a', '1']] },
      { key: 'k', value: 'v', headers: [['a', '1'], ['b', null]] }, // null vs value
      { key: 'k', value: 'v', headers: [['a', '1'], ['b', '']] }, // empty vs null
      { key: 'k', value: 'v' },
      { key: null, value: 'v' },
      { key: '', value: 'v' }, // empty key vs null key
      { key: 'kv', value: '' }, // bytes moved between fields
      { key: '', value: 'kv' },
      { key: null, value: 'kv' },
      { key: 'k', value: null },
      { key: 'k', value: '' },
      { key: null, value: null },
      { key: 'a', value: '1', headers: [['k', 'v']] }, // fields moved into a header
    ];
    assert.deepEqual(droppedOf(f, variants), [], 'every variant is distinct');
    assert.deepEqual(droppedOf(f, variants), variants.map((_, i) => i), 'and each is a duplicate of itself');
    assert.equal(f.stats().skipped, 0);
  });
});

test('content mode hashes exactly the documented encoding (xxHash64 of the record bytes from the key length on, seed 0)', () => {
  // Independent check with xxhash-wasm: a filter with 8-bit hashes drops record 2
  // exactly when its 8-bit hash equals record 1's; compare with the oracle.
  function encode(r: { key: Uint8Array | null; value: Uint8Array | null; headers: [Uint8Array, Uint8Array | null][] }): Uint8Array {
    const parts: number[] = [];
    // Kafka's zig-zag varint, written out independently of src/.
    const varint = (n: number) => {
      let z = n >= 0 ? 2 * n : -2 * n - 1;
      while (z >= 128) { parts.push((z % 128) + 128); z = Math.floor(z / 128); }
      parts.push(z);
    };
    const field = (b: Uint8Array | null) => { if (b === null) varint(-1); else { varint(b.length); parts.push(...b); } };
    field(r.key); field(r.value); varint(r.headers.length);
    for (const [hk, hv] of r.headers) { field(hk); field(hv); }
    return Uint8Array.from(parts);
  }
  fc.assert(fc.property(fc.array(fc.record({
    key: fc.option(fc.uint8Array({ maxLength: 20 })),
    // Up to 200 bytes: lengths of 64 and more take two varint bytes.
    value: fc.option(fc.uint8Array({ maxLength: 200 })),
    headers: fc.array(fc.tuple(fc.string({ maxLength: 5 }), fc.option(fc.uint8Array({ maxLength: 8 }))), { maxLength: 3 }),
  }), { minLength: 2, maxLength: 2 }), ([a, b]) => {
    const recs = [a!, b!].map((r) => ({ key: r.key, value: r.value, headers: r.headers.map(([hk, hv]) => [hk, hv] as [string, Uint8Array | null]) }));
    const h = recs.map((r) => ref.h64Raw(encode({ key: r.key, value: r.value, headers: r.headers.map(([hk, hv]) => [utf8.encode(hk), hv]) }), 0n) & 0xffn);
    withFilter({ by: 'content', window: { count: 4 } }, (f) => {
      assert.deepEqual(droppedOf(f, recs), h[0] === h[1] ? [1] : []);
    }, 8);
  }), { numRuns: 300 });
});

test('key mode hashes the key bytes with xxHash64 (seed 0): agreement with xxhash-wasm under 6-bit truncation', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 64 }), (a, b) => {
    const same = (ref.h64Raw(a, 0n) & 0x3fn) === (ref.h64Raw(b, 0n) & 0x3fn);
    withFilter({ by: 'key', window: { count: 4 } }, (f) => {
      assert.deepEqual(droppedOf(f, [{ key: a, value: null }, { key: b, value: null }]), same ? [1] : []);
    }, 6);
  }), { numRuns: 500 });
});

// --- bounds --------------------------------------------------------------------------

test('count bound: the window holds exactly the last `count` inserted identities', () => {
  for (const count of [1, 2, 7, 64, 1000]) {
    withFilter({ by: 'key', window: { count } }, (f) => {
      const ids = Array.from({ length: count }, (_, i) => key(`id${i}`));
      assert.deepEqual(droppedOf(f, ids), []);
      assert.equal(f.windowSize, count);
      // All still inside: every one is a duplicate (and duplicates are not inserted, so nothing moves).
      assert.deepEqual(droppedOf(f, ids), ids.map((_, i) => i));
      // One new identity evicts exactly the oldest.
      assert.deepEqual(droppedOf(f, [key('new')]), []);
      assert.equal(f.windowSize, count);
      if (count > 1) assert.deepEqual(droppedOf(f, [key('id1')]), [0], 'second oldest still inside');
      assert.deepEqual(droppedOf(f, [key('id0')]), [], 'the oldest was evicted');
      // Re-inserting id0 evicted id1 (when count > 1) or 'new' (count 1).
      assert.deepEqual(droppedOf(f, [key(count > 1 ? 'id1' : 'new')]), []);
    });
  }
});

test('age bound: an entry of time t matches a record of time now while now - t < ageMs', () => {
  withFilter({ by: 'key', window: { count: 100, ageMs: 1000 } }, (f) => {
    assert.deepEqual(droppedOf(f, [key('a', 10_000), key('b', 10_000)]), []);
    assert.deepEqual(droppedOf(f, [key('a', 10_999)]), [0], 'now - t = 999 < 1000: duplicate');
    assert.deepEqual(droppedOf(f, [key('a', 11_000)]), [], 'now - t = 1000: outside, kept and re-inserted');
    assert.equal(f.windowSize, 1, 'a@10000 and b@10000 both expired; a@11000 inserted');
    assert.deepEqual(droppedOf(f, [key('b', 11_000)]), []);
    assert.deepEqual(droppedOf(f, [key('a', 11_999), key('b', 11_999)]), [0, 1]);
    // At 12000 both a@11000 and b@11000 are 1000 ms old: evicted. The late b@11999 then finds nothing.
    assert.deepEqual(droppedOf(f, [key('a', 12_000), key('b', 11_999)]), []);
    assert.deepEqual(droppedOf(f, [key('a', 12_999), key('b', 12_998)]), [0, 1]);
  });
});

test('age bound with an age of 1 ms: only records of the same millisecond match; ageMs 0 disables the bound', () => {
  withFilter({ by: 'key', window: { count: 10, ageMs: 1 } }, (f) => {
    assert.deepEqual(droppedOf(f, [key('a', 5), key('a', 5), key('a', 6), key('a', 6)]), [1, 3]);
  });
  withFilter({ by: 'key', window: { count: 10, ageMs: 0 } }, (f) => {
    assert.deepEqual(droppedOf(f, [key('a', 0), key('a', Number.MAX_SAFE_INTEGER)]), [1]);
  });
});

test('records without a timestamp use the append time (normalizeRecord now)', () => {
  withFilter({ by: 'key', window: { count: 10, ageMs: 100 } }, (f) => {
    assert.deepEqual(droppedOf(f, [key('a')], 1000), []);
    assert.deepEqual(droppedOf(f, [key('a')], 1099), [0]);
    assert.deepEqual(droppedOf(f, [key('a')], 1100), []);
  });
});

test('duplicates inside one call are caught, the first occurrence is kept', () => {
  withFilter({ by: 'key', window: { count: 1000 } }, (f) => {
    const rs = ['a', 'b', 'a', 'c', 'b', 'a', 'd', 'd'].map((s) => key(s));
    assert.deepEqual(droppedOf(f, rs), [2, 4, 5, 7]);
    assert.equal(f.stats().windowSize, 4);
  });
});

// --- model tests ------------------------------------------------------------------------

/**
 * The window as documented: entries in insertion order; a record of time now
 * first expires entries from the front while now - t >= ageMs; it is a
 * duplicate when the newest entry with its identity has now - t < ageMs;
 * otherwise it is appended (the oldest entry goes when `count` are held).
 * confirm: identities are compared by hash, and a hash match whose bytes differ
 * keeps the record without inserting it.
 */
class ModelWindow {
  private entries: { id: string; hash: string; t: number }[] = [];
  private byHash = new Map<string, { id: string; hash: string; t: number }>();
  constructor(private count: number, private ageMs: number, private confirm: boolean) {}
  check(id: string, hash: string, now: number): 'drop' | 'keep' | 'collision' {
    if (this.ageMs > 0) while (this.entries.length > 0 && now - this.entries[0]!.t >= this.ageMs) this.evict();
    const e = this.byHash.get(hash);
    if (e && (this.ageMs <= 0 || now - e.t < this.ageMs)) {
      if (!this.confirm || e.id === id) return 'drop';
      return 'collision';
    }
    if (this.entries.length === this.count) this.evict();
    const n = { id, hash, t: now };
    this.entries.push(n);
    this.byHash.set(hash, n);
    return 'keep';
  }
  private evict(): void {
    const e = this.entries.shift()!;
    if (this.byHash.get(e.hash) === e) this.byHash.delete(e.hash);
  }
  get size(): number { return this.entries.length; }
}

function hashOf(bytes: Uint8Array, bits: number): string {
  return (ref.h64Raw(bytes, 0n) & ((1n << BigInt(bits)) - 1n)).toString(16);
}

const idArb = fc.oneof(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'), fc.string({ maxLength: 6 }));

test('model: random batches with non-decreasing timestamps, count and age bounds', () => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 12 }), fc.constantFrom(0, 1, 5, 20),
    fc.array(fc.array(fc.tuple(idArb, fc.integer({ min: 0, max: 6 })), { maxLength: 20 }), { maxLength: 15 }),
    (count, ageMs, batches) => {
      const model = new ModelWindow(count, ageMs, false);
      withFilter({ by: 'key', window: { count, ageMs } }, (f) => {
        let t = 1000;
        let dropped = 0;
        for (const b of batches) {
          const rs = b.map(([id, dt]) => { t += dt; return key(id, t); });
          const want: number[] = [];
          rs.forEach((r, i) => { if (model.check(r.key as string, hashOf(utf8.encode(r.key as string), 64), r.timestamp!) === 'drop') want.push(i); });
          assert.deepEqual(droppedOf(f, rs), want);
          dropped += want.length;
          assert.equal(f.windowSize, model.size);
        }
        assert.equal(f.stats().dropped, dropped);
      });
    }), { numRuns: 300 });
});

test('model: out-of-order timestamps follow the documented rules', () => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 10 }), fc.integer({ min: 1, max: 30 }),
    fc.array(fc.array(fc.tuple(idArb, fc.integer({ min: 0, max: 60 })), { maxLength: 12 }), { maxLength: 12 }),
    (count, ageMs, batches) => {
      const model = new ModelWindow(count, ageMs, false);
      withFilter({ by: 'key', window: { count, ageMs } }, (f) => {
        for (const b of batches) {
          const rs = b.map(([id, t]) => key(id, t));
          const want: number[] = [];
          rs.forEach((r, i) => { if (model.check(r.key as string, hashOf(utf8.encode(r.key as string), 64), r.timestamp!) === 'drop') want.push(i); });
          assert.deepEqual(droppedOf(f, rs), want);
          assert.equal(f.windowSize, model.size);
        }
      });
    }), { numRuns: 300 });
});

test('hash collisions without confirm drop distinct records (8-bit hashes); confirm keeps them and counts the collisions', () => {
  // 200 distinct ids in an 8-bit hash space: collisions are certain.
  const ids = Array.from({ length: 200 }, (_, i) => `id-${i}`);
  const rs = ids.map((id) => key(id, 0));
  const falseDrops = withFilter({ by: 'key', window: { count: 1000 } }, (f) => droppedOf(f, rs).length, 8);
  assert.ok(falseDrops > 0, 'without confirm, colliding distinct keys are dropped');
  withFilter({ by: 'key', window: { count: 1000 }, confirm: true }, (f) => {
    assert.deepEqual(droppedOf(f, rs), [], 'with confirm, none of the distinct keys is dropped');
    assert.equal(f.stats().collisions, falseDrops);
    // True duplicates are still dropped, whichever colliding entry holds the hash.
    const again = droppedOf(f, rs);
    const inserted = ids.length - falseDrops;
    assert.equal(again.length, inserted, 'exactly the inserted ids are recognised again');
  }, 8);
});

test('model: confirm mode under heavy collisions (4-bit hashes), key and header modes', () => {
  for (const by of ['key', 'header:id'] as const) {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 12 }), fc.constantFrom(0, 3, 10),
      fc.array(fc.array(fc.tuple(idArb, fc.integer({ min: 0, max: 4 })), { maxLength: 20 }), { maxLength: 12 }),
      (count, ageMs, batches) => {
        const model = new ModelWindow(count, ageMs, true);
        withFilter({ by, window: { count, ageMs }, confirm: true }, (f) => {
          let t = 0;
          let collisions = 0;
          for (const b of batches) {
            const rs: RecordInput[] = b.map(([id, dt]) => {
              t += dt;
              return by === 'key' ? key(id, t) : { value: 'v', headers: { id }, timestamp: t };
            });
            const want: number[] = [];
            b.forEach(([id], i) => {
              const o = model.check(id, hashOf(utf8.encode(id), 4), rs[i]!.timestamp!);
              if (o === 'drop') want.push(i);
              if (o === 'collision') collisions++;
            });
            assert.deepEqual(droppedOf(f, rs), want);
            assert.equal(f.windowSize, model.size);
          }
          assert.equal(f.stats().collisions, collisions);
        }, 4);
      }), { numRuns: 200 });
  }
});

// --- large and chunked batches ---------------------------------------------------------------

test('a large batch (100k records, 30% duplicates) matches the model', () => {
  const n = 100_000;
  let x = 12345;
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    ids.push((x >>> 0) % 10 < 3 && i > 0 ? ids[(x >>> 4) % i]! : `uid-${i}-${(x >>> 0).toString(36)}`);
  }
  const count = 50_000;
  const model = new ModelWindow(count, 0, false);
  const want: number[] = [];
  ids.forEach((id, i) => { if (model.check(id, hashOf(utf8.encode(id), 64), 0) === 'drop') want.push(i); });
  withFilter({ by: 'key', window: { count } }, (f) => {
    const got = droppedOf(f, ids.map((id) => key(id, 0)));
    assert.deepEqual(got, want);
    assert.ok(got.length > n * 0.2);
    assert.equal(f.windowSize, count);
    assert.equal(f.stats().checked, n);
  });
});

test('chunking is invisible: batches over the record and byte chunk limits give the same result as one record at a time', () => {
  // Records: more than DEDUP_CHUNK_RECORDS small ones, then values over DEDUP_CHUNK_BYTES in total, one bigger than a chunk.
  const rs: RecordInput[] = [];
  for (let i = 0; i < DEDUP_CHUNK_RECORDS + 500; i++) rs.push({ value: `v${i % 9000}`, timestamp: i });
  const big = new Uint8Array(DEDUP_CHUNK_BYTES + 17).fill(7);
  const mid = new Uint8Array(300_000);
  for (let i = 0; i < 12; i++) { mid[0] = i % 5; rs.push({ value: mid.slice(), timestamp: 20_000 + i }); }
  rs.push({ value: big, timestamp: 30_000 }, { value: 'v1', timestamp: 30_001 }, { value: big.slice(), timestamp: 30_002 });
  const cfg: DedupConfig = { by: 'value', window: { count: 10_000, ageMs: 12_000 } };
  const oneByOne = withFilter(cfg, (f) => {
    const d: number[] = [];
    rs.forEach((r, i) => { if (droppedOf(f, [r]).length === 1) d.push(i); });
    return { d, size: f.windowSize };
  });
  withFilter(cfg, (f) => {
    assert.deepEqual(droppedOf(f, rs), oneByOne.d);
    assert.equal(f.windowSize, oneByOne.size);
  });
  assert.ok(oneByOne.d.includes(rs.length - 1), 'the big value repeated is a duplicate');
  assert.ok(oneByOne.d.length > 7800, `${oneByOne.d.length} duplicates`);
});

// --- configuration ------------------------------------------------------------------------------

test('configuration is validated with typed errors', () => {
  const bad: unknown[] = [
    { by: 'keys', window: { count: 1 } },
    { by: 'header:', window: { count: 1 } },
    { by: 'key' },
    { by: 'key', window: { count: 0 } },
    { by: 'key', window: { count: 2 ** 24 + 1 } },
    { by: 'key', window: { count: 1.5 } },
    { by: 'key', window: { count: 5, ageMs: -1 } },
    { by: 'value', window: { count: 5 }, confirm: true },
    { by: 'content', window: { count: 5 }, confirm: true },
    { by: 'key', window: { count: 5 }, confirm: 'yes' },
  ];
  for (const d of bad) {
    assert.throws(() => resolveTopicConfig({ dedup: d as DedupConfig }), InvalidArgumentError, JSON.stringify(d));
    assert.throws(() => new DedupFilter(k, d as DedupConfig), InvalidArgumentError, JSON.stringify(d));
  }
  assert.throws(() => new DedupFilter(k, { by: 'key', window: { count: 5 } }, { hashBits: 65 }), InvalidArgumentError);
  assert.throws(() => new DedupFilter(k, { by: 'key', window: { count: 5 } }, { hashBits: 0 }), InvalidArgumentError);
  assert.doesNotThrow(() => resolveTopicConfig({ dedup: { by: 'header:x', window: { count: 5, ageMs: 0 }, confirm: true } }));
});

test('a closed filter refuses work and close() releases its wasm memory for reuse', () => {
  const f = new DedupFilter(k, { by: 'key', window: { count: 1 << 16 } });
  f.close();
  f.close(); // idempotent
  assert.throws(() => f.filter(norm([key('a')])), InvalidArgumentError);
  assert.equal(f.windowSize, 0);
  // Opening and closing many large windows does not grow memory without bound.
  const before = k.memoryBytes;
  for (let i = 0; i < 50; i++) new DedupFilter(k, { by: 'key', window: { count: 1 << 16 } }).close();
  assert.ok(k.memoryBytes <= before + (8 << 20), `memory grew from ${before} to ${k.memoryBytes}`);
});
