// Windowed dedup: DedupWindow (wasm hash table of xxh64 hashes) against a
// JS Set of hex ids bounded the same way.

import { BenchGroup, Contender, millionsPerSec } from '../harness.js';
import { getKernelsSync, WasmBuffer, XxHash64, DedupWindow } from '../../src/index.js';
import { prng, randomBytes } from '../lib/data.js';

const ID = 16;
const BATCH = 1000;
const WINDOW = 100_000;
const STREAM = 256 * BATCH; // ids cycled through; old ids have left the window when they come round again
const DUP_PERCENT = 10;
const DUP_DISTANCE = 50_000; // a duplicate repeats an id seen at most this many positions earlier

const HEX: string[] = [];
for (let i = 0; i < 256; i++) HEX.push(i.toString(16).padStart(2, '0'));

/** Hex string of 16 bytes (the string key a JS dedup would use for binary ids). */
export function hex16(b: Uint8Array): string {
  return HEX[b[0]!]! + HEX[b[1]!]! + HEX[b[2]!]! + HEX[b[3]!]! + HEX[b[4]!]! + HEX[b[5]!]! + HEX[b[6]!]! + HEX[b[7]!]!
    + HEX[b[8]!]! + HEX[b[9]!]! + HEX[b[10]!]! + HEX[b[11]!]! + HEX[b[12]!]! + HEX[b[13]!]! + HEX[b[14]!]! + HEX[b[15]!]!;
}

/** A Set bounded by count like DedupWindow: FIFO eviction of inserted ids; duplicates do not refresh. */
export class BoundedSet {
  private readonly set = new Set<string>();
  private readonly ring: string[];
  private head = 0;
  private size = 0;
  constructor(private readonly capacity: number) { this.ring = new Array<string>(capacity).fill(''); }
  /** True if id is in the window; otherwise inserts it (evicting the oldest when full). */
  checkInsert(id: string): boolean {
    if (this.set.has(id)) return true;
    if (this.size === this.capacity) {
      this.set.delete(this.ring[this.head]!);
      this.ring[this.head] = id;
      this.head = this.head + 1 === this.capacity ? 0 : this.head + 1;
    } else {
      const tail = this.head + this.size;
      this.ring[tail >= this.capacity ? tail - this.capacity : tail] = id;
      this.size++;
    }
    this.set.add(id);
    return false;
  }
}

export const dedup: BenchGroup = {
  name: 'dedup',
  title: 'Windowed dedup of 16-byte ids',
  description: `Insert-if-absent checks of ${ID}-byte ids in a window of the last ${WINDOW.toLocaleString('en-US')} inserted ids ` +
    `(count bound, FIFO eviction), ${BATCH} ids per operation, ${DUP_PERCENT}% of ids repeating one seen within ` +
    `${DUP_DISTANCE.toLocaleString('en-US')} positions; a stream of ${STREAM.toLocaleString('en-US')} ids is cycled ` +
    '(the window is full and evicting in steady state). In millions of checks per second. sediment hashes the ids with ' +
    'xxh64 in one wasm call per batch and checks the 64-bit hashes in DedupWindow (wasm open addressing). The JS peer ' +
    'is a Set of hex strings with the same FIFO bound, either given the hex strings (ids that arrive as strings) or ' +
    'hex-encoding the bytes first, or as 16-char latin1 strings made with String.fromCharCode (the cheapest string key). Duplicate flags are checked equal over the whole stream before timing.',
  cases: () => [{
    name: `${ID}-byte ids, batches of ${BATCH}, window ${WINDOW / 1000}k`,
    metric: millionsPerSec(BATCH, 'checks'),
    bars: [
      { label: 'dedup ≥ 10M checks/s (the batch\'s 16-byte ids in one buffer: hashFixed, checked)', sediment: 'sediment hashFixed + checkInsertAt', figure: 10 },
      { label: 'dedup ≥ 10M checks/s (ids as separate arrays: hashMany, checked)', sediment: 'sediment hashMany + checkInsertAt', figure: 10 },
      { label: 'dedup ≥ 5× a JS Set of string ids (hashFixed form)', sediment: 'sediment hashFixed + checkInsertAt', peers: ['JS Set (hex given)', 'JS Set (hex from bytes)', 'JS Set (latin1 from bytes)'], minRatio: 5 },
      { label: 'dedup ≥ 5× a JS Set of string ids (hashMany form)', sediment: 'sediment hashMany + checkInsertAt', peers: ['JS Set (hex given)', 'JS Set (hex from bytes)', 'JS Set (latin1 from bytes)'], minRatio: 5 },
    ],
    setup() {
      const k = getKernelsSync();
      const next = prng(99);
      const flat = randomBytes(STREAM * ID, 77);
      for (let i = 1; i < STREAM; i++) {
        if (next() % 100 < DUP_PERCENT) {
          const from = i - 1 - (next() % Math.min(i, DUP_DISTANCE));
          flat.copyWithin(i * ID, from * ID, from * ID + ID);
        }
      }
      const ids: Uint8Array[] = [];
      for (let i = 0; i < STREAM; i++) ids.push(flat.subarray(i * ID, i * ID + ID));
      const hexIds = ids.map(hex16);
      const batches: Uint8Array[][] = [];
      for (let b = 0; b < STREAM / BATCH; b++) batches.push(ids.slice(b * BATCH, (b + 1) * BATCH));
      const nBatches = batches.length;
      const now = 1_700_000_000_000;

      // sediment, ids copied in: hashMany + checkInsertAt.
      const xxA = new XxHash64(k);
      let winA = new DedupWindow(k, { count: WINDOW });
      let bA = 0;
      const stepA = (): number => {
        const hp = xxA.hashMany(batches[bA]!);
        bA = bA + 1 === nBatches ? 0 : bA + 1;
        return winA.checkInsertAt(hp, now, BATCH).flagsPtr;
      };
      // sediment, the batch's ids as one buffer: hashFixed + checkInsertAt.
      const xxF = new XxHash64(k);
      let winF = new DedupWindow(k, { count: WINDOW });
      let bF = 0;
      const stepF = (): number => {
        const hp = xxF.hashFixed(flat.subarray(bF * BATCH * ID, (bF + 1) * BATCH * ID), ID);
        bF = bF + 1 === nBatches ? 0 : bF + 1;
        return winF.checkInsertAt(hp, now, BATCH).flagsPtr;
      };
      // sediment, ids already in wasm memory: hashManyAt + checkInsertAt.
      const xxB = new XxHash64(k);
      let winB = new DedupWindow(k, { count: WINDOW });
      const streamIds = new WasmBuffer(k, STREAM * ID);
      const offsets = new WasmBuffer(k, (BATCH + 1) * 4);
      const hashes = new WasmBuffer(k, BATCH * 8);
      k.u8.set(flat, streamIds.ptr);
      for (let i = 0; i <= BATCH; i++) k.u32[(offsets.ptr >>> 2) + i] = i * ID;
      let bB = 0;
      const stepB = (): number => {
        xxB.hashManyAt(streamIds.ptr + bB * BATCH * ID, offsets.ptr, BATCH, hashes.ptr);
        bB = bB + 1 === nBatches ? 0 : bB + 1;
        return winB.checkInsertAt(hashes.ptr, now, BATCH).flagsPtr;
      };
      // JS Set, hex given / hex from bytes.
      let setC = new BoundedSet(WINDOW);
      let iC = 0;
      const flagsC = new Uint8Array(BATCH);
      const stepC = (): Uint8Array => {
        for (let j = 0; j < BATCH; j++) flagsC[j] = setC.checkInsert(hexIds[iC + j]!) ? 1 : 0;
        iC = iC + BATCH === STREAM ? 0 : iC + BATCH;
        return flagsC;
      };
      let setD = new BoundedSet(WINDOW);
      let iD = 0;
      const flagsD = new Uint8Array(BATCH);
      const stepD = (): Uint8Array => {
        for (let j = 0; j < BATCH; j++) flagsD[j] = setD.checkInsert(hex16(ids[iD + j]!)) ? 1 : 0;
        iD = iD + BATCH === STREAM ? 0 : iD + BATCH;
        return flagsD;
      };
      let setE = new BoundedSet(WINDOW);
      let iE = 0;
      const flagsE = new Uint8Array(BATCH);
      const stepE = (): Uint8Array => {
        for (let j = 0; j < BATCH; j++) {
          const id = ids[iE + j]!;
          flagsE[j] = setE.checkInsert(String.fromCharCode(id[0]!, id[1]!, id[2]!, id[3]!, id[4]!, id[5]!, id[6]!, id[7]!,
            id[8]!, id[9]!, id[10]!, id[11]!, id[12]!, id[13]!, id[14]!, id[15]!)) ? 1 : 0;
        }
        iE = iE + BATCH === STREAM ? 0 : iE + BATCH;
        return flagsE;
      };
      // Flags over one full pass of the stream from an empty window, then a fresh start for timing.
      const pass = (step: () => number | Uint8Array): Uint8Array => {
        const all = new Uint8Array(STREAM);
        for (let b = 0; b < nBatches; b++) {
          const f = step();
          all.set(typeof f === 'number' ? k.u8.subarray(f, f + BATCH) : f, b * BATCH);
        }
        return all;
      };
      const contenders: Contender[] = [
        {
          name: 'sediment hashMany + checkInsertAt', role: 'sediment',
          note: 'XxHash64.hashMany (copy ids into wasm memory, hash in one call) + DedupWindow.checkInsertAt (one call per batch)',
          run(n) { let f = 0; for (let i = 0; i < n; i++) f = stepA(); return f; },
          output: () => { const o = pass(stepA); winA.free(); winA = new DedupWindow(k, { count: WINDOW }); bA = 0; return o; },
        },
        {
          name: 'sediment hashFixed + checkInsertAt', role: 'sediment',
          note: 'the batch of 16-byte ids as one buffer: XxHash64.hashFixed (one copy, one call) + DedupWindow.checkInsertAt (one call per batch)',
          run(n) { let f = 0; for (let i = 0; i < n; i++) f = stepF(); return f; },
          output: () => { const o = pass(stepF); winF.free(); winF = new DedupWindow(k, { count: WINDOW }); bF = 0; return o; },
        },
        {
          name: 'sediment hashManyAt + checkInsertAt', role: 'sediment',
          note: 'ids already in wasm memory: XxHash64.hashManyAt + DedupWindow.checkInsertAt',
          run(n) { let f = 0; for (let i = 0; i < n; i++) f = stepB(); return f; },
          output: () => { const o = pass(stepB); winB.free(); winB = new DedupWindow(k, { count: WINDOW }); bB = 0; return o; },
        },
        {
          name: 'JS Set (hex given)', role: 'peer',
          note: 'Set<string> of 32-char hex ids with a FIFO ring for the count bound; the hex strings are precomputed',
          run(n) { let f: Uint8Array = flagsC; for (let i = 0; i < n; i++) f = stepC(); return f; },
          output: () => { const o = pass(stepC); setC = new BoundedSet(WINDOW); iC = 0; return o; },
        },
        {
          name: 'JS Set (hex from bytes)', role: 'peer',
          note: 'the same bounded Set, hex-encoding each 16-byte id first (table of byte strings)',
          run(n) { let f: Uint8Array = flagsD; for (let i = 0; i < n; i++) f = stepD(); return f; },
          output: () => { const o = pass(stepD); setD = new BoundedSet(WINDOW); iD = 0; return o; },
        },
        {
          name: 'JS Set (latin1 from bytes)', role: 'peer',
          note: 'the same bounded Set; each 16-byte id turned into a 16-char string with String.fromCharCode (the cheapest string key)',
          run(n) { let f: Uint8Array = flagsE; for (let i = 0; i < n; i++) f = stepE(); return f; },
          output: () => { const o = pass(stepE); setE = new BoundedSet(WINDOW); iE = 0; return o; },
        },
      ];
      return {
        contenders,
        teardown: () => { winA.free(); winB.free(); winF.free(); xxA.free(); xxB.free(); xxF.free(); streamIds.free(); offsets.free(); hashes.free(); },
      };
    },
  }],
};
