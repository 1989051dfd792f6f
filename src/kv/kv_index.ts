// The in-memory index of a KV namespace: an ordered B+ tree (sorted-btree)
// from keys to slots, and a slot table in typed arrays holding, per key,
// where its latest value lives in the log and its flags. Typed arrays keep a
// million keys compact, make the checkpoint a near-memcpy, and avoid one JS
// object per key.
//
// Tree keys come in two forms that compare with each other:
//   - a byte string (see kv_keys.ts): keys written since the index was built;
//   - a number i: key i of the packed key bytes the index was loaded with
//     (a checkpoint). Loading a million keys then allocates no string per key
//     (measured: the strings and the collector's work on them were most of
//     the reopen time) and the tree holds small integers.
// Lookups always pass byte strings.
//
// A key has a slot while it has a value (visible or forgotten) or any flag
// set. It is visible (get/has/range/count) when it has a value and is not
// forgotten.

import BTreeModule from 'sorted-btree';
import { bulkLoad } from 'sorted-btree/extended/bulkLoad.js';
import { FLAG_DISABLED, FLAG_FORGOTTEN, FLAG_MASK } from './kv_record.js';

/**
 * Index-only flag (never written to the log): the value was copied into a
 * key-ordered run by clustering (kv_cluster.ts). A hint for scheduling;
 * kept in checkpoints, lost (harmlessly) when a value is replayed.
 */
export const FLAG_CLUSTERED = 0x80;
import { bytesToByteString } from './kv_keys.js';

type BTree<K, V> = import('sorted-btree').default<K, V>;
const BTree = ((BTreeModule as unknown as { default?: unknown }).default ?? BTreeModule) as typeof import('sorted-btree').default;

/** Branching factor of the tree (measured: 64 loads and scans faster than the default 32). */
export const NODE_SIZE = 64;

/** A key in the tree: a byte string, or the number of a packed key. */
export type IndexKey = string | number;

/** Keys packed back to back: key i is bytes[i === 0 ? 0 : ends[i - 1], ends[i]). */
export interface PackedKeys { bytes: Uint8Array; ends: Uint32Array }

const EMPTY: PackedKeys = { bytes: new Uint8Array(0), ends: new Uint32Array(0) };

/** Bytewise comparison of byte strings and packed keys. */
export function keyComparator(packed: PackedKeys): (a: IndexKey, b: IndexKey) => number {
  const bytes = packed.bytes;
  const ends = packed.ends;
  const packedVsString = (i: number, s: string): number => {
    const start = i === 0 ? 0 : ends[i - 1]!;
    const n = ends[i]! - start;
    const m = s.length;
    const l = n < m ? n : m;
    for (let j = 0; j < l; j++) {
      const d = bytes[start + j]! - s.charCodeAt(j);
      if (d !== 0) return d;
    }
    return n - m;
  };
  return (a, b) => {
    if (typeof a === 'string') {
      if (typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
      return -packedVsString(b, a);
    }
    if (typeof b === 'string') return packedVsString(a, b);
    // Packed keys are strictly ascending (checked when they are loaded): their numbers are in key order.
    return a - b;
  };
}

/** Whether packed keys are strictly ascending in bytewise order (a plain loop: tens of ms for a million keys). */
export function packedAscending(packed: PackedKeys): boolean {
  const bytes = packed.bytes;
  const ends = packed.ends;
  let prevStart = 0;
  for (let i = 1; i < ends.length; i++) {
    const start = ends[i - 1]!;
    const end = ends[i]!;
    const na = start - prevStart;
    const nb = end - start;
    const l = na < nb ? na : nb;
    let d = 0;
    for (let j = 0; j < l; j++) {
      d = bytes[prevStart + j]! - bytes[start + j]!;
      if (d !== 0) break;
    }
    if (d > 0 || (d === 0 && na >= nb)) return false;
    prevStart = start;
  }
  return true;
}

export class KvIndex {
  tree: BTree<IndexKey, number>;
  /** The packed keys numbers in the tree refer to. */
  readonly packed: PackedKeys;
  readonly compare: (a: IndexKey, b: IndexKey) => number;
  /** Offset of the record holding the key's value (-1: none). */
  valOff: Float64Array;
  /** File position of the value bytes in that record's segment. */
  valPos: Int32Array;
  /** Value length in bytes; -1 when the key has no value. */
  valLen: Int32Array;
  /** CRC-32C of the value, checked on every read from disk. */
  valCrc: Uint32Array;
  /** Offset of the key's latest flags record (-1: none). */
  flagOff: Float64Array;
  flags: Uint8Array;
  private freeSlots: number[] = [];
  /** Slots ever handed out (slots >= used are unused). */
  used = 0;
  /** Keys with a value that are not forgotten. */
  visible = 0;
  /** Keys and values of every slot with a value, in bytes (what compaction keeps). */
  liveBytes = 0;
  /** Slots with a value (visible or forgotten). */
  values = 0;
  /** Slots with a value marked FLAG_CLUSTERED. */
  clustered = 0;

  constructor(capacity = 1024, packed: PackedKeys = EMPTY) {
    this.packed = packed;
    this.compare = keyComparator(packed);
    this.tree = new BTree<IndexKey, number>(undefined, this.compare, NODE_SIZE);
    this.valOff = new Float64Array(capacity);
    this.valPos = new Int32Array(capacity);
    this.valLen = new Int32Array(capacity);
    this.valCrc = new Uint32Array(capacity);
    this.flagOff = new Float64Array(capacity);
    this.flags = new Uint8Array(capacity);
  }

  /**
   * Builds an index of packed keys (strictly ascending) whose slot i is key
   * i, filled by fill(). Throws when the keys are not strictly ascending.
   */
  static bulk(packed: PackedKeys, fill: (ix: KvIndex) => void): KvIndex {
    const n = packed.ends.length;
    if (!packedAscending(packed)) throw new RangeError('packed keys are not strictly ascending');
    const ix = new KvIndex(Math.max(1024, Math.ceil(n * 1.25)), packed);
    const ids = new Array<number>(n);
    for (let i = 0; i < n; i++) ids[i] = i;
    ix.used = n;
    fill(ix);
    if (n > 0) ix.tree = bulkLoad<IndexKey, number>(ids, ids.slice(), NODE_SIZE, ix.compare, 0.85);
    const ends = packed.ends;
    for (let i = 0; i < n; i++) {
      if (ix.valLen[i]! >= 0) {
        ix.liveBytes += ends[i]! - (i === 0 ? 0 : ends[i - 1]!) + ix.valLen[i]!;
        ix.values++;
        if ((ix.flags[i]! & FLAG_FORGOTTEN) === 0) ix.visible++;
        if ((ix.flags[i]! & FLAG_CLUSTERED) !== 0) ix.clustered++;
      } else {
        ix.flags[i] = ix.flags[i]! & FLAG_MASK;
      }
    }
    return ix;
  }

  /** Length in bytes of a tree key. */
  keyLength(k: IndexKey): number {
    if (typeof k === 'string') return k.length;
    return this.packed.ends[k]! - (k === 0 ? 0 : this.packed.ends[k - 1]!);
  }

  /** The bytes of a tree key (a fresh array). */
  keyBytes(k: IndexKey): Uint8Array {
    if (typeof k === 'string') {
      const out = new Uint8Array(k.length);
      for (let i = 0; i < k.length; i++) out[i] = k.charCodeAt(i);
      return out;
    }
    const start = k === 0 ? 0 : this.packed.ends[k - 1]!;
    return this.packed.bytes.slice(start, this.packed.ends[k]!);
  }

  /** The byte string of a tree key. */
  keyString(k: IndexKey): string {
    if (typeof k === 'string') return k;
    return bytesToByteString(this.packed.bytes, k === 0 ? 0 : this.packed.ends[k - 1]!, this.packed.ends[k]!);
  }

  /** Writes a tree key's bytes at out[at]; returns the position after them. */
  writeKey(k: IndexKey, out: Uint8Array, at: number): number {
    if (typeof k === 'string') {
      for (let i = 0; i < k.length; i++) out[at + i] = k.charCodeAt(i);
      return at + k.length;
    }
    const start = k === 0 ? 0 : this.packed.ends[k - 1]!;
    const end = this.packed.ends[k]!;
    const bytes = this.packed.bytes;
    // A plain loop: keys are short, and subarray() would allocate a view per key.
    for (let i = start; i < end; i++) out[at++] = bytes[i]!;
    return at;
  }

  get capacity(): number { return this.valOff.length; }
  /** Keys in the tree (with a value or a flag). */
  get size(): number { return this.tree.size; }

  private grow(): void {
    const cap = this.capacity * 2;
    const g = <T extends Float64Array | Int32Array | Uint32Array | Uint8Array>(a: T, make: (n: number) => T): T => { const b = make(cap); b.set(a); return b; };
    this.valOff = g(this.valOff, (n) => new Float64Array(n));
    this.valPos = g(this.valPos, (n) => new Int32Array(n));
    this.valLen = g(this.valLen, (n) => new Int32Array(n));
    this.valCrc = g(this.valCrc, (n) => new Uint32Array(n));
    this.flagOff = g(this.flagOff, (n) => new Float64Array(n));
    this.flags = g(this.flags, (n) => new Uint8Array(n));
  }

  private alloc(key: string): number {
    let s = this.freeSlots.pop();
    if (s === undefined) {
      if (this.used === this.capacity) this.grow();
      s = this.used++;
    }
    this.valOff[s] = -1;
    this.valPos[s] = 0;
    this.valLen[s] = -1;
    this.valCrc[s] = 0;
    this.flagOff[s] = -1;
    this.flags[s] = 0;
    this.tree.set(key, s);
    return s;
  }

  private release(key: string, s: number): void {
    this.tree.delete(key);
    this.valLen[s] = -1;
    this.valOff[s] = -1;
    this.flagOff[s] = -1;
    this.flags[s] = 0;
    this.freeSlots.push(s);
  }

  slot(key: string): number | undefined { return this.tree.get(key); }

  isVisible(s: number): boolean { return this.valLen[s]! >= 0 && (this.flags[s]! & FLAG_FORGOTTEN) === 0; }
  isDisabled(s: number | undefined): boolean { return s !== undefined && (this.flags[s]! & FLAG_DISABLED) !== 0; }

  /**
   * A put at `offset` (slot: the key's slot when the caller already looked it
   * up, or undefined). `clustered`: the value is a clustering copy.
   */
  put(key: string, slot: number | undefined, offset: number, pos: number, len: number, crc: number, clustered = false): void {
    let s = slot;
    if (s === undefined) s = this.alloc(key);
    const f = this.flags[s]!;
    const hadValue = this.valLen[s]! >= 0;
    const wasVisible = hadValue && (f & FLAG_FORGOTTEN) === 0;
    if (hadValue) {
      this.liveBytes -= key.length + this.valLen[s]!;
      if ((f & FLAG_CLUSTERED) !== 0) this.clustered--;
    } else {
      this.values++;
    }
    this.valOff[s] = offset;
    this.valPos[s] = pos;
    this.valLen[s] = len;
    this.valCrc[s] = crc;
    this.flags[s] = (f & ~(FLAG_FORGOTTEN | FLAG_CLUSTERED)) | (clustered ? FLAG_CLUSTERED : 0);
    if (clustered) this.clustered++;
    this.liveBytes += key.length + len;
    if (!wasVisible) this.visible++;
  }

  /** A delete (tombstone). */
  del(key: string, slot: number | undefined): void {
    const s = slot ?? this.tree.get(key);
    if (s === undefined) return;
    if (this.valLen[s]! >= 0) {
      if ((this.flags[s]! & FLAG_FORGOTTEN) === 0) this.visible--;
      if ((this.flags[s]! & FLAG_CLUSTERED) !== 0) this.clustered--;
      this.values--;
      this.liveBytes -= key.length + this.valLen[s]!;
      this.valLen[s] = -1;
      this.valOff[s] = -1;
    }
    this.flags[s] = this.flags[s]! & FLAG_DISABLED;
    if (this.flags[s] === 0) this.release(key, s);
  }

  /** A flags record at `offset` setting the key's flags (FLAG_MASK bits) to `flags`. */
  setFlags(key: string, slot: number | undefined, offset: number, flags: number): void {
    let s = slot ?? this.tree.get(key);
    flags &= FLAG_MASK;
    if (s === undefined) {
      if (flags === 0) return;
      s = this.alloc(key);
    }
    const hadValue = this.valLen[s]! >= 0;
    // Forgetting needs a value to hide.
    const f = hadValue ? flags : flags & ~FLAG_FORGOTTEN;
    if (hadValue) {
      const was = (this.flags[s]! & FLAG_FORGOTTEN) === 0;
      const now = (f & FLAG_FORGOTTEN) === 0;
      if (was && !now) this.visible--;
      if (!was && now) this.visible++;
    }
    this.flags[s] = f | (this.flags[s]! & FLAG_CLUSTERED);
    this.flagOff[s] = offset;
    if (f === 0 && !hadValue) this.release(key, s);
  }

  /**
   * Moves a value to a clustering copy at `offset`/`pos` (same bytes) and,
   * for a forgotten key, its flags record to `flagsOffset`.
   */
  moved(s: number, offset: number, pos: number, flagsOffset: number): void {
    if ((this.flags[s]! & FLAG_CLUSTERED) === 0) this.clustered++;
    this.valOff[s] = offset;
    this.valPos[s] = pos;
    this.flags[s] = this.flags[s]! | FLAG_CLUSTERED;
    if (flagsOffset >= 0) this.flagOff[s] = flagsOffset;
  }
}
