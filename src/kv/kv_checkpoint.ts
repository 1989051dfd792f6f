// The checkpoint of a KV index: a binary snapshot of every key's slot (where
// its value is, its flags) at a log offset, so reopening reads one file and
// replays only the log after that offset.
//
// File <partition dir>/kv.checkpoint, written atomically (temp file,
// fdatasync, rename, directory sync) and only after the log up to its
// offset was flushed. Layout, little-endian, arrays 8-byte aligned:
//
//   0   magic 'SDKVCKP1'
//   8   u32 format (1)        12  u32 entries N
//   16  u32 segments S        20  u32 key bytes K
//   24  f64 covered offset C (the index reflects every record below C)
//   32  S x (f64 base offset, f64 compaction generation)
//   ..  f64[N] value offset   f64[N] flags offset   i32[N] value position
//       i32[N] value length   u32[N] value CRC      u32[N] key end (in the key bytes)
//       u8[N] flags           u8[K] key bytes (keys in ascending byte order)
//   end u32 CRC-32C of every byte before it
//
// Value positions are only valid for a segment whose generation still
// matches (see kv_log.ts segmentGeneration); the store rescans others.

import { Crc32c } from '../crc32c.js';
import { CorruptionError } from '../errors.js';
import { KvIndex, IndexKey } from './kv_index.js';

export const CHECKPOINT_FILE = 'kv.checkpoint';
const MAGIC = 'SDKVCKP1';
const FORMAT = 1;
const HEADER = 32;

export interface CheckpointSnapshot {
  covered: number;
  segments: { base: number; gen: number }[];
  /** Keys in ascending order and their slots. */
  keys: IndexKey[];
  /** Resolves keys to bytes (the index the keys came from). */
  keyLength(k: IndexKey): number;
  writeKey(k: IndexKey, out: Uint8Array, at: number): number;
  slots: number[];
  valOff: Float64Array;
  flagOff: Float64Array;
  valPos: Int32Array;
  valLen: Int32Array;
  valCrc: Uint32Array;
  flags: Uint8Array;
}

export interface LoadedCheckpoint {
  covered: number;
  segments: Map<number, number>;
  index: KvIndex;
}

const pad8 = (n: number) => Math.ceil(n / 8) * 8;
/** Sections are native typed arrays: the format is little-endian, so big-endian hosts do without checkpoints. */
export const CHECKPOINTS_SUPPORTED = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function layout(n: number, s: number, kBytes: number) {
  let at = HEADER + s * 16;
  const valOff = at; at += 8 * n;
  const flagOff = at; at += 8 * n;
  const valPos = at; at += 4 * n;
  const valLen = at; at += 4 * n;
  const valCrc = at; at += 4 * n;
  const keyEnd = at; at += 4 * n;
  const flags = at; at += n;
  const keys = at; at += kBytes;
  at = pad8(at);
  return { valOff, flagOff, valPos, valLen, valCrc, keyEnd, flags, keys, crc: at, total: at + 4 };
}

/** Serialises a snapshot; yields to the event loop every `yieldEvery` keys when given an async yielder. */
export async function encodeCheckpoint(snap: CheckpointSnapshot, crc: Crc32c, pause?: () => Promise<void>): Promise<Uint8Array> {
  const n = snap.keys.length;
  let kBytes = 0;
  for (let i = 0; i < n; i++) kBytes += snap.keyLength(snap.keys[i]!);
  if (kBytes > 0xffffffff || n > 0xffffffff) throw new RangeError('checkpoint too large');
  const L = layout(n, snap.segments.length, kBytes);
  const out = new Uint8Array(L.total);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < MAGIC.length; i++) out[i] = MAGIC.charCodeAt(i);
  dv.setUint32(8, FORMAT, true);
  dv.setUint32(12, n, true);
  dv.setUint32(16, snap.segments.length, true);
  dv.setUint32(20, kBytes, true);
  dv.setFloat64(24, snap.covered, true);
  snap.segments.forEach((s, i) => { dv.setFloat64(HEADER + i * 16, s.base, true); dv.setFloat64(HEADER + i * 16 + 8, s.gen, true); });
  const valOff = new Float64Array(out.buffer, L.valOff, n);
  const flagOff = new Float64Array(out.buffer, L.flagOff, n);
  const valPos = new Int32Array(out.buffer, L.valPos, n);
  const valLen = new Int32Array(out.buffer, L.valLen, n);
  const valCrc = new Uint32Array(out.buffer, L.valCrc, n);
  const keyEnd = new Uint32Array(out.buffer, L.keyEnd, n);
  const flags = new Uint8Array(out.buffer, L.flags, n);
  let kp = L.keys;
  for (let i = 0; i < n; i++) {
    const s = snap.slots[i]!;
    valOff[i] = snap.valOff[s]!;
    flagOff[i] = snap.flagOff[s]!;
    valPos[i] = snap.valPos[s]!;
    valLen[i] = snap.valLen[s]!;
    valCrc[i] = snap.valCrc[s]!;
    flags[i] = snap.flags[s]!;
    kp = snap.writeKey(snap.keys[i]!, out, kp);
    keyEnd[i] = kp - L.keys;
    if (pause && (i & 0xffff) === 0xffff) await pause();
  }
  dv.setUint32(L.crc, crc.of(out.subarray(0, L.crc)), true);
  return out;
}

function bad(file: string, reason: string, position = 0): CorruptionError {
  return new CorruptionError(`KV checkpoint: ${reason}`, { file, position });
}

/** Parses and verifies a checkpoint file; throws CorruptionError when it is not valid. */
export function decodeCheckpoint(data: Uint8Array, crc: Crc32c, file: string): LoadedCheckpoint {
  if (data.length < HEADER + 4) throw bad(file, `file of ${data.length} bytes is too short`);
  for (let i = 0; i < MAGIC.length; i++) if (data[i] !== MAGIC.charCodeAt(i)) throw bad(file, 'bad magic');
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (dv.getUint32(8, true) !== FORMAT) throw bad(file, `format ${dv.getUint32(8, true)} is not supported`, 8);
  const n = dv.getUint32(12, true);
  const s = dv.getUint32(16, true);
  const kBytes = dv.getUint32(20, true);
  const covered = dv.getFloat64(24, true);
  const L = layout(n, s, kBytes);
  if (L.total !== data.length) throw bad(file, `length ${data.length} does not match its header (${L.total})`);
  const stored = dv.getUint32(L.crc, true);
  const actual = crc.of(data.subarray(0, L.crc));
  if (stored !== actual) throw bad(file, `CRC-32C mismatch (stored ${stored}, computed ${actual})`, L.crc);
  if (!Number.isSafeInteger(covered) || covered < 0) throw bad(file, `covered offset ${covered} is invalid`, 24);
  const segments = new Map<number, number>();
  for (let i = 0; i < s; i++) segments.set(dv.getFloat64(HEADER + i * 16, true), dv.getFloat64(HEADER + i * 16 + 8, true));
  // Typed arrays need aligned offsets: copy each section into its own buffer.
  const section = <T>(at: number, bytes: number, make: (b: ArrayBuffer) => T): T => {
    const b = new ArrayBuffer(bytes);
    new Uint8Array(b).set(data.subarray(at, at + bytes));
    return make(b);
  };
  const keyEnd = section(L.keyEnd, 4 * n, (b) => new Uint32Array(b));
  let prev = 0;
  for (let i = 0; i < n; i++) {
    const e = keyEnd[i]!;
    if (e <= prev || e > kBytes) throw bad(file, `key ${i} ends at ${e}`, L.keyEnd + 4 * i);
    prev = e;
  }
  // The index keeps the packed keys and names them by number (no string per key).
  // A copy (a Buffer's slice would be a view of the file buffer, and keys handed out must be fresh arrays).
  const packed = { bytes: new Uint8Array(data.subarray(L.keys, L.keys + kBytes)), ends: keyEnd };
  const fill = (ix: KvIndex) => {
    const copy = (dst: Float64Array | Int32Array | Uint32Array | Uint8Array, at: number, bytes: number) => {
      new Uint8Array(dst.buffer, dst.byteOffset, bytes).set(data.subarray(at, at + bytes));
    };
    copy(ix.valOff, L.valOff, 8 * n);
    copy(ix.flagOff, L.flagOff, 8 * n);
    copy(ix.valPos, L.valPos, 4 * n);
    copy(ix.valLen, L.valLen, 4 * n);
    copy(ix.valCrc, L.valCrc, 4 * n);
    copy(ix.flags, L.flags, n);
  };
  let index: KvIndex;
  try {
    index = KvIndex.bulk(packed, fill);
  } catch (err) {
    // bulkLoad refuses keys that are not strictly ascending.
    throw bad(file, `keys are not in ascending order (${(err as Error).message})`, L.keys);
  }
  return { covered, segments, index };
}
