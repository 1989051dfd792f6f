// Dedup window kernel (assembly/dedup_window.ts) through DedupWindow: count
// and age bounds at their exact boundaries, duplicates inside one batch,
// tags, clear(), and a model test against a plain JS array over random
// operation sequences whose keys collide on their home group and on their
// control bytes and payload tags (so groups overflow into the next one, the
// last group wraps to the first, and matches are decided by the full hash),
// across generation switches.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { getKernelsSync, WasmBuffer } from '../src/kernels.js';
import { DedupWindow, WINDOW_MAX_COUNT } from '../src/dedup_window.js';
import { InvalidArgumentError } from '../src/errors.js';

const k = getKernelsSync();
const hashBuf = new WasmBuffer(k, 64 * 1024);
const tagBuf = new WasmBuffer(k, 32 * 1024);
const MASK64 = (1n << 64n) - 1n;
const FIB = 0x9e3779b97f4a7c15n;

interface Item { hash: bigint; ts: number; tag?: number }
interface Outcome { duplicate: boolean; matched: number | undefined }

/** Runs one checkInsertAt call; returns per-key outcomes and the duplicate count. */
function check(w: DedupWindow, items: readonly Item[], withTags = true): { out: Outcome[]; duplicates: number } {
  const n = items.length;
  const hp = hashBuf.ensure(n * 8 + 8);
  const tp = tagBuf.ensure(n * 4 + 4);
  const dv = k.dv;
  items.forEach((it, i) => {
    dv.setBigUint64(hp + i * 8, it.hash, true);
    dv.setUint32(tp + i * 4, it.tag ?? 0, true);
  });
  const r = w.checkInsertAt(hp, items.map((it) => it.ts), n, withTags ? tp : 0);
  const u8 = k.u8;
  const view = k.dv;
  const out: Outcome[] = items.map((_, i) => {
    const duplicate = u8[r.flagsPtr + i] === 1;
    assert.ok(u8[r.flagsPtr + i] === 0 || duplicate, 'flags are 0 or 1');
    return { duplicate, matched: duplicate ? view.getUint32(r.matchedPtr + i * 4, true) : undefined };
  });
  assert.equal(r.duplicates, out.filter((o) => o.duplicate).length, 'returned count = flagged keys');
  return { out, duplicates: r.duplicates };
}

function one(w: DedupWindow, hash: bigint, ts: number, tag = 0): Outcome {
  return check(w, [{ hash, ts, tag }]).out[0]!;
}

test('count bound: inserting N+1 distinct keys evicts exactly the first', () => {
  for (const n of [1, 2, 5, 16, 100]) {
    const w = new DedupWindow(k, { count: n });
    try {
      const keys = Array.from({ length: n + 1 }, (_, i) => BigInt(i + 1) * 0x1_0000_0001n);
      const r = check(w, keys.map((hash) => ({ hash, ts: 0 })));
      assert.equal(r.duplicates, 0);
      assert.equal(w.size, n);
      for (let i = 1; i <= n; i++) assert.equal(one(w, keys[i]!, 0).duplicate, true, `n ${n}: key ${i} still inside`);
      assert.equal(w.size, n, 'duplicates are not inserted');
      assert.equal(one(w, keys[0]!, 0).duplicate, false, `n ${n}: the first key was evicted`);
      assert.equal(w.size, n);
    } finally {
      w.free();
    }
  }
});

test('age bound at the exact boundary: inside while now - t < ageMs, gone at ageMs', () => {
  const w = new DedupWindow(k, { count: 10, ageMs: 100 });
  try {
    assert.equal(one(w, 7n, 1000, 1).duplicate, false);
    assert.deepEqual(one(w, 7n, 1099, 2), { duplicate: true, matched: 1 }, 'now - t = 99 < 100');
    assert.equal(one(w, 7n, 1100, 3).duplicate, false, 'now - t = 100: expired, inserted again');
    assert.deepEqual(one(w, 7n, 1199, 4), { duplicate: true, matched: 3 }, 'the re-inserted entry (tag 3) matches');
    assert.equal(w.size, 1);
    // Fractional milliseconds follow the same rule.
    assert.equal(one(w, 8n, 2000.5, 5).duplicate, false);
    assert.equal(one(w, 8n, 2100.4, 6).duplicate, true);
    assert.equal(one(w, 8n, 2100.5, 7).duplicate, false);
  } finally {
    w.free();
  }
});

test('expire(now) evicts exactly the entries with now - t >= ageMs', () => {
  const w = new DedupWindow(k, { count: 10, ageMs: 100 });
  try {
    check(w, [{ hash: 1n, ts: 0 }, { hash: 2n, ts: 10 }, { hash: 3n, ts: 20 }]);
    w.expire(99);
    assert.equal(w.size, 3);
    w.expire(100);
    assert.equal(w.size, 2);
    w.expire(119);
    assert.equal(w.size, 1);
    assert.equal(one(w, 3n, 119).duplicate, true);
    w.expire(1e9);
    assert.equal(w.size, 0);
    assert.equal(one(w, 3n, 1e9).duplicate, false);
  } finally {
    w.free();
  }
  const noAge = new DedupWindow(k, { count: 4 });
  try {
    one(noAge, 1n, 0);
    noAge.expire(1e15);
    assert.equal(noAge.size, 1, 'ageMs 0 disables the age bound');
    assert.equal(one(noAge, 1n, 1e15).duplicate, true);
  } finally {
    noAge.free();
  }
});

test('duplicates inside one batch, with the first occurrence tag reported', () => {
  const w = new DedupWindow(k, { count: 100 });
  try {
    const A = 0xdeadbeefcafebaben, B = 1n, C = MASK64;
    const r = check(w, [
      { hash: A, ts: 1, tag: 10 }, { hash: B, ts: 1, tag: 20 }, { hash: A, ts: 1, tag: 30 },
      { hash: A, ts: 2, tag: 40 }, { hash: C, ts: 2, tag: 50 }, { hash: B, ts: 3, tag: 60 }, { hash: 0n, ts: 3, tag: 70 },
    ]);
    assert.deepEqual(r.out, [
      { duplicate: false, matched: undefined }, { duplicate: false, matched: undefined }, { duplicate: true, matched: 10 },
      { duplicate: true, matched: 10 }, { duplicate: false, matched: undefined }, { duplicate: true, matched: 20 },
      { duplicate: false, matched: undefined },
    ]);
    assert.equal(r.duplicates, 3);
    assert.equal(w.size, 4);
    // Without a tags array every stored tag is 0.
    const w2 = new DedupWindow(k, { count: 4 });
    try {
      check(w2, [{ hash: 5n, ts: 0, tag: 99 }], false);
      assert.deepEqual(one(w2, 5n, 0, 1), { duplicate: true, matched: 0 });
    } finally {
      w2.free();
    }
  } finally {
    w.free();
  }
});

test('clear() forgets every entry', () => {
  const w = new DedupWindow(k, { count: 8, ageMs: 1000 });
  try {
    check(w, [1n, 2n, 3n].map((hash) => ({ hash, ts: 5 })));
    assert.equal(w.size, 3);
    w.clear();
    assert.equal(w.size, 0);
    assert.equal(one(w, 2n, 6).duplicate, false);
    assert.equal(one(w, 2n, 7).duplicate, true);
  } finally {
    w.free();
  }
});

test('a large window: 200k distinct keys through a 100k window', () => {
  const n = 100_000;
  const w = new DedupWindow(k, { count: n });
  try {
    const keyOf = (i: number) => (BigInt(i) * 0x9e3779b97f4a7c15n + 0x1234n) & MASK64;
    for (let start = 0; start < 2 * n; start += 10_000) {
      const r = check(w, Array.from({ length: 10_000 }, (_, j) => ({ hash: keyOf(start + j), ts: start + j, tag: start + j })));
      assert.equal(r.duplicates, 0);
    }
    assert.equal(w.size, n);
    const old = check(w, Array.from({ length: 1000 }, (_, j) => ({ hash: keyOf(j * 97), ts: 0 })), false);
    assert.equal(old.duplicates, 0, 'the first 100k were evicted');
    // Those 1000 re-inserts evicted the 1000 oldest survivors (100000..100999).
    const recent = check(w, Array.from({ length: 1000 }, (_, j) => ({ hash: keyOf(2 * n - 1 - j * 37), ts: 0 })));
    assert.equal(recent.duplicates, 1000);
    assert.deepEqual(recent.out.slice(0, 3).map((o) => o.matched), [2 * n - 1, 2 * n - 38, 2 * n - 75]);
  } finally {
    w.free();
  }
});

test('invalid options give InvalidArgumentError', () => {
  const bad: unknown[] = [
    { count: 0 }, { count: -1 }, { count: 1.5 }, { count: Number.NaN }, { count: Infinity }, { count: '10' },
    { count: WINDOW_MAX_COUNT + 1 }, {},
    { count: 10, ageMs: -1 }, { count: 10, ageMs: Number.NaN }, { count: 10, ageMs: Infinity }, { count: 10, ageMs: '5' },
  ];
  for (const opts of bad) {
    assert.throws(() => new DedupWindow(k, opts as never), InvalidArgumentError, JSON.stringify(opts));
  }
});

// --- model test ------------------------------------------------------------------

/** The window's rules, written as plainly as possible. */
class Model {
  entries: { hash: bigint; ts: number; tag: number }[] = [];
  constructor(readonly count: number, readonly ageMs: number) {}
  expire(now: number): void {
    if (this.ageMs <= 0) return;
    while (this.entries.length > 0 && now - this.entries[0]!.ts >= this.ageMs) this.entries.shift();
  }
  check(hash: bigint, now: number, tag: number): Outcome {
    this.expire(now);
    // The newest entry with this hash is the one that counts.
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const e = this.entries[i]!;
      if (e.hash !== hash) continue;
      if (this.ageMs <= 0 || now - e.ts < this.ageMs) return { duplicate: true, matched: e.tag };
      break;
    }
    if (this.entries.length === this.count) this.entries.shift();
    this.entries.push({ hash, ts: now, tag });
    return { duplicate: false, matched: undefined };
  }
}

/** Table groups for a capacity (mirrors assembly/dedup_window.ts: 6 slots per group and generation, at least 2 * capacity slots). */
function groupsFor(capacity: number): number {
  return Math.max(2, Math.ceil((capacity * 2) / 6));
}

/** The inverse of FIB modulo 2^64 (Newton's iteration), to build a hash with a chosen mix. */
const FIB_INV = (() => {
  let x = FIB;
  for (let i = 0; i < 6; i++) x = (x * (2n - FIB * x)) & MASK64;
  assert.equal((x * FIB) & MASK64, 1n);
  return x;
})();

/** A hash whose mix (the high 32 bits of hash * FIB) is m; `low` picks one of the many such hashes. */
function hashWithMix(m: bigint, low: bigint): bigint {
  return ((((m << 32n) | low) & MASK64) * FIB_INV) & MASK64;
}

/**
 * 16 hashes that collide in the table: 8 whose home is the last group (the
 * chain wraps to group 0) and 8 whose home is group 0, more than a group's 6
 * slots. In each half, 4 share their whole low 14 mix bits (control byte and
 * payload tag: only the full hash tells them apart) and 4 share the control
 * byte only.
 */
function collidingKeys(capacity: number): bigint[] {
  const groups = BigInt(groupsFor(capacity));
  const out: bigint[] = [];
  for (const g of [groups - 1n, 0n]) {
    const first = (g * (1n << 32n) + groups - 1n) / groups; // smallest mix whose home is g
    for (let i = 0n; i < 8n; i++) {
      const low14 = i < 4n ? 0x1555n : 0x55n | ((i + 1n) << 7n);
      const m = first + (1n << 14n) * (i + 1n) - (first & 0x3fffn) + low14;
      assert.equal((m * groups) >> 32n, g, 'home group');
      out.push(hashWithMix(m, 0x9e37n + i * 0x1001n));
    }
  }
  assert.equal(new Set(out).size, out.length);
  return out;
}

type Op =
  | { kind: 'check'; items: { key: number; dt: number; tag: number }[] }
  | { kind: 'expire'; dt: number }
  | { kind: 'clear' };

test('model test: random operations on colliding keys agree with a plain JS model', () => {
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    { weight: 8, arbitrary: fc.record({
      kind: fc.constant('check' as const),
      items: fc.array(fc.record({
        key: fc.nat(15),
        // Mostly forward in time; sometimes backwards (clock skew between producers).
        dt: fc.oneof({ weight: 5, arbitrary: fc.integer({ min: 0, max: 6 }) }, { weight: 1, arbitrary: fc.integer({ min: -8, max: -1 }) }),
        tag: fc.nat(0xffffffff),
      }), { minLength: 1, maxLength: 12 }),
    }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('expire' as const), dt: fc.integer({ min: 0, max: 10 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('clear' as const) }) },
  );
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 12 }), fc.constantFrom(0, 1, 5, 20, 2.5), fc.array(opArb, { maxLength: 60 }),
    (capacity, ageMs, ops) => {
      const keys = collidingKeys(capacity);
      const w = new DedupWindow(k, { count: capacity, ageMs });
      const model = new Model(capacity, ageMs);
      let now = 1000;
      try {
        ops.forEach((op, step) => {
          if (op.kind === 'clear') { w.clear(); model.entries = []; }
          else if (op.kind === 'expire') { now += op.dt; w.expire(now); model.expire(now); }
          else {
            const items = op.items.map((it) => { now += it.dt; return { hash: keys[it.key]!, ts: now, tag: it.tag }; });
            const got = check(w, items).out;
            const want = items.map((it) => model.check(it.hash, it.ts, it.tag!));
            assert.deepEqual(got, want, `step ${step}`);
          }
          assert.equal(w.size, model.entries.length, `size after step ${step}`);
        });
        // Finally every key the model holds (and no other) is a duplicate.
        const probe = keys.map((hash) => ({ hash, ts: now, tag: 0 }));
        const got = check(w, probe).out;
        assert.deepEqual(got, probe.map((p) => model.check(p.hash, p.ts, 0)));
      } finally {
        w.free();
      }
    }), { numRuns: 400 });
});
