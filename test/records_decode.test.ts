// The recordsDecode kernel (assembly/record_batch.ts) against an independent
// reference parser written here from the Kafka record format: for random
// record sections (every varint width from 1 to 5 bytes, varlongs to 10,
// null and empty keys and values, headers) and for the same sections with
// bytes flipped, cut or appended, the kernel must accept exactly what the
// reference accepts and give the same row tables, absolute positions
// included. The kernel reads its fields with inline one- and two-byte paths
// and walks records by their length chain; these properties pin that every
// path gives what the plain byte-at-a-time reading gives.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Kernels, getKernelsSync } from '../src/kernels.js';
import { RECORD_ROW_WORDS, HEADER_ROW_WORDS } from '../src/record_batch.js';
import { refRecords, pushVarint, RefRecord } from './fixtures/reference.js';

const DECODE_MALFORMED = -1;
const DECODE_HEADERS_FULL = -3;

interface RefRows { rows: number[]; headers: number[] }

/**
 * Byte-at-a-time reading of a records section placed at address `base`:
 * the rows recordsDecode documents, or null when the section is malformed
 * (Kafka's framing rules: a varint has at most 5 bytes, a varlong at most 10,
 * lengths >= -1, names >= 0, every field inside its record, the record
 * exactly filled, the section exactly filled by count records, offset deltas
 * strictly increasing from 0 up).
 */
function refDecode(section: Uint8Array, base: number, count: number): RefRows | null {
  const end = section.length;
  let p = 0;
  const readVar = (lim: number, maxBytes: number): bigint | null => {
    let result = 0n;
    for (let i = 0; i < maxBytes; i++) {
      if (p >= lim) return null;
      const b = section[p++]!;
      result |= BigInt(b & 0x7f) << BigInt(7 * i);
      if ((b & 0x80) === 0) return result;
    }
    return null;
  };
  const varint = (lim: number): number | null => {
    const r = readVar(lim, 5);
    if (r === null) return null;
    const u = Number(BigInt.asUintN(32, r));
    return (u >>> 1) ^ -(u & 1);
  };
  const varlong = (lim: number): bigint | null => {
    const r = readVar(lim, 10);
    if (r === null) return null;
    const u = BigInt.asUintN(64, r);
    return BigInt.asIntN(64, (u >> 1n) ^ -(u & 1n));
  };
  const rows: number[] = [];
  const headers: number[] = [];
  let prevOd = -1;
  for (let i = 0; i < count; i++) {
    const recStart = p;
    const len = varint(end);
    if (len === null || len < 1 || len > end - p) return null;
    const recEnd = p + len;
    p++; // attributes
    const ts = varlong(recEnd);
    if (ts === null) return null;
    const od = varint(recEnd);
    if (od === null || od <= prevOd) return null;
    prevOd = od;
    const kl = varint(recEnd);
    if (kl === null || kl < -1 || Math.max(kl, 0) > recEnd - p) return null;
    const kp = p;
    p += Math.max(kl, 0);
    const vl = varint(recEnd);
    if (vl === null || vl < -1 || Math.max(vl, 0) > recEnd - p) return null;
    const vp = p;
    p += Math.max(vl, 0);
    const hc = varint(recEnd);
    if (hc === null || hc < 0) return null;
    for (let j = 0; j < hc; j++) {
      const nl = varint(recEnd);
      if (nl === null || nl < 0 || nl > recEnd - p) return null;
      headers.push(base + p, nl);
      p += nl;
      const hvl = varint(recEnd);
      if (hvl === null || hvl < -1 || Math.max(hvl, 0) > recEnd - p) return null;
      headers.push(base + p, hvl);
      p += Math.max(hvl, 0);
    }
    if (p !== recEnd) return null;
    const t = BigInt.asUintN(64, ts);
    rows.push(od, Number(t & 0xffffffffn) | 0, Number(t >> 32n) | 0, base + kp, kl, base + vp, vl, hc, base + recStart);
  }
  if (p !== end) return null;
  return { rows, headers };
}

function kernelDecode(k: Kernels, section: Uint8Array, count: number, maxHeaders = 1 << 16): { rc: number; base: number; rows: number[]; headers: number[] } {
  // The section sits at the very end of its block (and of wasm memory's used
  // part, as far as a block can be): a read past the region would show.
  const block = k.alloc(section.length + 16);
  const rowsPtr = k.alloc(Math.max(1, count) * RECORD_ROW_WORDS * 4);
  const hdrPtr = k.alloc(maxHeaders * HEADER_ROW_WORDS * 4);
  try {
    const base = block + 16;
    k.u8.set(section, base);
    const rc = k.raw.recordsDecode(base, section.length, count, rowsPtr, count, hdrPtr, maxHeaders);
    const nh = rc === count ? k.raw.decodeHeaderCount() : 0;
    const i32 = k.i32;
    const rows = rc === count ? Array.from(i32.subarray(rowsPtr >>> 2, (rowsPtr >>> 2) + count * RECORD_ROW_WORDS)) : [];
    const headers = Array.from(i32.subarray(hdrPtr >>> 2, (hdrPtr >>> 2) + nh * HEADER_ROW_WORDS));
    return { rc, base, rows, headers };
  } finally {
    k.raw.free(block);
    k.raw.free(rowsPtr);
    k.raw.free(hdrPtr);
  }
}

function check(k: Kernels, section: Uint8Array, count: number): boolean {
  const got = kernelDecode(k, section, count);
  const want = refDecode(section, got.base, count);
  if (want === null) {
    assert.equal(got.rc, DECODE_MALFORMED, 'the reference rejects this section');
    return false;
  }
  assert.equal(got.rc, count, 'the reference accepts this section');
  assert.deepEqual(got.rows, want.rows);
  assert.deepEqual(got.headers, want.headers);
  return true;
}

const bytesArb = (max: number) => fc.oneof(
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 6, arbitrary: fc.uint8Array({ maxLength: max }) },
);
/** Lengths that need 1, 2 and 3 varint bytes (zig-zag: 63, 8191 are the 1- and 2-byte limits). */
const sizedBytesArb = fc.oneof(
  { weight: 8, arbitrary: bytesArb(70) },
  { weight: 2, arbitrary: fc.integer({ min: 8180, max: 8300 }).map((n) => new Uint8Array(n).fill(n & 0xff)) },
);
const tsArb = fc.oneof(
  fc.bigInt({ min: -64n, max: 64n }),
  fc.bigInt({ min: -9000n, max: 9000n }),
  fc.bigInt({ min: -(1n << 62n), max: 1n << 62n }),
);
const offsetArb = fc.oneof(fc.integer({ min: -70, max: 70 }), fc.integer({ min: -10_000, max: 10_000 }), fc.integer({ min: -0x80000000, max: 0x7fffffff }));
const recordArb: fc.Arbitrary<RefRecord> = fc.record({
  timestampDelta: tsArb,
  offsetDelta: offsetArb,
  key: sizedBytesArb,
  value: sizedBytesArb,
  headers: fc.array(fc.record({ key: fc.uint8Array({ maxLength: 70 }), value: bytesArb(70) }), { maxLength: 3 }),
});

/** The records with offset deltas made strictly increasing from >= 0 (gaps of every varint width kept). */
function increasing(records: RefRecord[]): RefRecord[] {
  let od = -1;
  return records.map((r) => {
    od += 1 + (Math.abs(r.offsetDelta) % (records.length > 3 ? 9000 : 100_000));
    return { ...r, offsetDelta: od };
  });
}

test('recordsDecode gives the reference rows for random valid sections (every varint width)', () => {
  const k = getKernelsSync();
  fc.assert(fc.property(fc.array(recordArb, { minLength: 1, maxLength: 12 }), (records) => {
    assert.ok(check(k, refRecords(increasing(records)), records.length), 'a well-formed section is accepted');
  }), { numRuns: 400 });
});

test('recordsDecode accepts exactly what the reference accepts when bytes are flipped, cut or added', () => {
  const k = getKernelsSync();
  let accepted = 0;
  let rejected = 0;
  fc.assert(fc.property(
    fc.array(recordArb, { minLength: 1, maxLength: 6 }),
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { maxLength: 3 }),
    fc.nat(), fc.constantFrom('flip', 'cut', 'extend'), fc.integer({ min: -1, max: 1 }),
    (records, flips, at, how, countDelta) => {
      // Mostly increasing offset deltas (accepted unless damaged), sometimes as generated (usually not increasing).
      const good = refRecords(at % 4 === 0 ? records : increasing(records));
      let section = Uint8Array.from(good);
      if (how === 'cut') section = section.subarray(0, at % (section.length + 1));
      if (how === 'extend') { const more = new Uint8Array(section.length + 1 + (at % 3)); more.set(section); more.fill(at & 0xff, section.length); section = more; }
      for (const [pos, mask] of flips) if (section.length > 0) section[pos % section.length] ^= mask;
      if (check(k, section, Math.max(0, records.length + countDelta))) accepted++; else rejected++;
    }), { numRuns: 1500 });
  // Both outcomes happen: the property compared acceptances, not only failures.
  assert.ok(accepted > 50 && rejected > 50, `accepted ${accepted}, rejected ${rejected}`);
});

test('recordsDecode: a header count its record cannot hold is malformed, whatever room the header table has (found by the property above)', () => {
  const k = getKernelsSync();
  // Four records; one byte of the second (0x06 -> 0x12) makes its fields
  // end early, so the next bytes read as a header count its remaining bytes
  // cannot hold (a header takes at least 2 bytes). The kernel once reported
  // that as "header table full", which makes the caller grow the table.
  const section = Uint8Array.from(Buffer.from(
    '1c0080013e010e0000000000000000440081808080808080800180010a0000000000120000000200120000008080090000003c00810182010c0000000000000a0000000000020e000000000000000400002000008080010a00000000000600000000', 'hex'));
  for (const maxHeaders of [1, 8, 1 << 16]) {
    const block = k.alloc(section.length);
    const rowsPtr = k.alloc(4 * RECORD_ROW_WORDS * 4);
    const hdrPtr = k.alloc(maxHeaders * HEADER_ROW_WORDS * 4);
    try {
      k.u8.set(section, block);
      assert.equal(k.raw.recordsDecode(block, section.length, 4, rowsPtr, 4, hdrPtr, maxHeaders), DECODE_MALFORMED, `maxHeaders ${maxHeaders}`);
    } finally {
      k.raw.free(block);
      k.raw.free(rowsPtr);
      k.raw.free(hdrPtr);
    }
  }
  assert.equal(refDecode(section, 0, 4), null, 'the reference rejects it too');
  // With the byte restored, the same bytes decode.
  const fixed = Uint8Array.from(section);
  fixed[34] = 0x06;
  assert.ok(check(k, fixed, 4));
});

test('recordsDecode known vectors: widths at the one/two/three-byte boundaries and the last record ending at the region end', () => {
  const k = getKernelsSync();
  for (const n of [0, 63, 64, 8191, 8192]) {
    const value = new Uint8Array(n).fill(7);
    const records: RefRecord[] = [
      { timestampDelta: BigInt(n), offsetDelta: 0, key: null, value, headers: [] },
      { timestampDelta: -BigInt(n) - 1n, offsetDelta: n + 1, key: new Uint8Array(0), value: null, headers: [{ key: new Uint8Array([0x68]), value: null }] },
    ];
    const section = refRecords(records);
    const got = kernelDecode(k, section, 2);
    assert.equal(got.rc, 2, `width ${n}`);
    const w = RECORD_ROW_WORDS;
    assert.equal(got.rows[0], 0);
    assert.equal(got.rows[1], n, 'timestamp delta, low word');
    assert.equal(got.rows[4], -1, 'null key');
    assert.equal(got.rows[6], n, 'value length');
    assert.equal(got.rows[w + 0], n + 1, 'offset delta of the second record');
    assert.equal(got.rows[w + 1], -n - 1, 'negative timestamp delta, low word');
    assert.equal(got.rows[w + 2], -1, 'negative timestamp delta, high word');
    assert.equal(got.rows[w + 4], 0, 'empty key');
    assert.equal(got.rows[w + 6], -1, 'null value');
    assert.equal(got.rows[w + 7], 1, 'one header');
    assert.equal(got.rows[8], got.base, 'first record start');
    assert.equal(got.rows[w + 8], got.base + refRecords([records[0]!]).length, 'second record start');
    assert.deepEqual(got.headers.slice(1), [1, got.base + section.length, -1], 'the header ends the region');
  }
  // A one-byte record length whose next byte lies past the region, and a
  // 5-byte record length (overlong but legal).
  const tiny: number[] = [];
  pushVarint(tiny, 6);
  tiny.push(0, 0, 0, 1, 1, 0); // attributes, ts 0, offset 0, key null (-1), value null (-1), no headers
  assert.equal(kernelDecode(k, Uint8Array.from(tiny), 1).rc, 1);
  assert.equal(kernelDecode(k, Uint8Array.from([0x8c, 0x80, 0x80, 0x80, 0x00, ...tiny.slice(1)]), 1).rc, 1);
  // Offset deltas that repeat or go down are malformed (gaps are not).
  const od = (deltas: number[]) => refRecords(deltas.map((d) => ({ timestampDelta: 0n, offsetDelta: d, key: null, value: null, headers: [] })));
  assert.equal(kernelDecode(k, od([0, 5, 9000]), 3).rc, 3);
  assert.equal(kernelDecode(k, od([0, 0]), 2).rc, DECODE_MALFORMED);
  assert.equal(kernelDecode(k, od([3, 2]), 2).rc, DECODE_MALFORMED);
  assert.equal(kernelDecode(k, od([-1]), 1).rc, DECODE_MALFORMED);
  // One byte short in the last field: malformed, not a read past the region.
  assert.equal(kernelDecode(k, Uint8Array.from([0x0c, ...tiny.slice(1, -1)]), 1).rc, DECODE_MALFORMED);
});

test('recordsDecode reports a full header table and decodes once it is large enough', () => {
  const k = getKernelsSync();
  const h = { key: new Uint8Array([0x61]), value: new Uint8Array([0x62]) };
  const section = refRecords([{ timestampDelta: 0n, offsetDelta: 0, key: null, value: null, headers: [h, h, h] }]);
  assert.equal(kernelDecode(k, section, 1, 2).rc, DECODE_HEADERS_FULL);
  assert.equal(kernelDecode(k, section, 1, 3).rc, 1);
});
