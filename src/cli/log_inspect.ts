// File-level inspection of a store, below the Partition API: the engine of
// `sediment dump` and `sediment verify`. Reads .log files batch by batch into
// wasm memory (CRC-checked by the scan kernel), and keeps going past a batch
// whose CRC or header is bad when its length field still frames it, so one
// run reports every damaged batch it can reach. Nothing here writes.

import * as path from 'node:path';
import { Kernels, WasmBuffer } from '../kernels.js';
import { Storage, FileHandle } from '../storage.js';
import { BatchScanner, BatchInfo, ScanStop, SCAN_STOP_NAMES, BATCH_HEADER_SIZE, LOG_OVERHEAD } from '../record_batch.js';
import { parseSegmentFileName, LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX } from '../log_segment.js';
import { OFFSET_INDEX_ENTRY_SIZE } from '../offset_index.js';
import { TIME_INDEX_ENTRY_SIZE } from '../time_index.js';
import { CLEAN_SHUTDOWN_FILE, RECOVERY_POINT_FILE } from '../partition.js';
import { METADATA_FILE } from '../store.js';
import { resolveTopicConfig, validateTopicName, TopicConfig } from '../topic_config.js';

const TWO32 = 4294967296;
/** Bytes read per chunk. */
const CHUNK = 4 << 20;
/** Largest batch dump accepts (the largest maxMessageBytes a topic may have, plus framing). */
export const DUMP_MAX_BATCH_BYTES = (64 << 20) + LOG_OVERHEAD;
/** Offset of the CRC field and of the CRC-covered region in a batch. */
const CRC_FIELD = 17;
const CRC_START = 21;

/** One batch of a .log file as the walker saw it. */
export interface WalkedBatch extends BatchInfo {
  magic: number;
  /** CRC stored in the batch. */
  crc: number;
  /** False when the stored CRC does not match the bytes. */
  crcValid: boolean;
  /** CRC computed over the bytes (set when crcValid is false). */
  computedCrc?: number;
  /** Why the batch is invalid although framed (bad CRC, inconsistent header); undefined when valid. */
  invalid?: string;
}

/** Where and why a walk found damage. */
export interface WalkProblem {
  position: number;
  /** Base offset named by the damaged batch's header, when it could be read. */
  offset?: number;
  reason: string;
  /** The file ends inside a batch (a torn write), as opposed to damaged bytes. */
  torn: boolean;
  /** A framed batch the walk reported through onBatch (with `invalid` set) and stepped over. */
  skipped: boolean;
}

export interface WalkResult {
  /** Bytes of the file up to the end of the last framed batch. */
  end: number;
  fileSize: number;
  problems: WalkProblem[];
}

export interface WalkOptions {
  maxBatchBytes: number;
  /**
   * Called for every framed batch in file order. ptr is the batch's address in
   * wasm memory (valid until the callback's promise settles); invalid batches
   * are passed too, with `invalid` set.
   */
  onBatch?(b: WalkedBatch, ptr: number): void | Promise<void>;
  /** Called after each chunk with the bytes walked so far. */
  onProgress?(position: number): void;
}

function u32(k: Kernels, p: number): number { return k.dv.getUint32(p); }

/** Parses a batch header in wasm memory without validating it. */
function headerAt(k: Kernels, p: number, position: number): WalkedBatch {
  const dv = k.dv;
  return {
    position,
    size: dv.getInt32(p + 8) + LOG_OVERHEAD,
    baseOffset: dv.getInt32(p) * TWO32 + dv.getUint32(p + 4),
    leaderEpoch: dv.getInt32(p + 12),
    magic: dv.getInt8(p + 16),
    crc: dv.getUint32(p + CRC_FIELD),
    attributes: dv.getUint16(p + 21),
    lastOffsetDelta: dv.getInt32(p + 23),
    firstTimestamp: dv.getInt32(p + 27) * TWO32 + dv.getUint32(p + 31),
    maxTimestamp: dv.getInt32(p + 35) * TWO32 + dv.getUint32(p + 39),
    producerId: dv.getInt32(p + 43) * TWO32 + dv.getUint32(p + 47),
    producerEpoch: dv.getInt16(p + 51),
    baseSequence: dv.getInt32(p + 53),
    recordCount: dv.getInt32(p + 57),
    crcValid: true,
  };
}

/**
 * Walks every batch of a log file. Stops at the first batch that cannot be
 * framed (bad length or magic, torn tail); a framed batch with a bad CRC or
 * an inconsistent header is reported and skipped.
 */
export async function walkLog(k: Kernels, file: FileHandle, opts: WalkOptions): Promise<WalkResult> {
  const fileSize = file.size();
  const scanner = new BatchScanner(k, 1024);
  const buf = new WasmBuffer(k, Math.max(4096, Math.min(fileSize, CHUNK)));
  const problems: WalkProblem[] = [];
  let pos = 0;
  let stuckAt = -1;
  const peek = new Uint8Array(BATCH_HEADER_SIZE);
  const peekView = new DataView(peek.buffer);
  try {
    while (pos < fileSize) {
      const want = Math.min(buf.capacity, fileSize - pos);
      const got = file.read(k.u8, buf.ptr, want, pos);
      if (got < want) {
        problems.push({ position: pos + got, reason: `file ended at ${pos + got} while reading (expected ${fileSize} bytes)`, torn: true, skipped: false });
        break;
      }
      const res = scanner.scan(buf.ptr, got, { maxBatchBytes: opts.maxBatchBytes, positionBase: pos });
      for (const b of res.batches) {
        const p = buf.ptr + (b.position - pos);
        const wb: WalkedBatch = { ...b, magic: 2, crc: u32(k, p + CRC_FIELD), crcValid: true };
        await opts.onBatch?.(wb, buf.ptr + (b.position - pos));
      }
      const rel = res.stopPosition;
      const at = pos + rel;
      opts.onProgress?.(at);
      if (res.stop === ScanStop.End || res.stop === ScanStop.TableFull) { pos = at; continue; }
      if (res.stop === ScanStop.BadCrc || res.stop === ScanStop.BadHeader) {
        // The whole batch is in the buffer (the scan checks the length first).
        const p = buf.ptr + rel;
        const h = headerAt(k, p, at);
        if (res.stop === ScanStop.BadCrc) {
          h.crcValid = false;
          h.computedCrc = k.raw.crc32c(p + CRC_START, h.size - CRC_START, 0) >>> 0;
          h.invalid = `CRC-32C mismatch (stored ${hex32(h.crc)}, computed ${hex32(h.computedCrc)})`;
        } else {
          h.invalid = `inconsistent batch header (lastOffsetDelta ${h.lastOffsetDelta}, recordCount ${h.recordCount})`;
        }
        problems.push({ position: at, offset: h.baseOffset, reason: h.invalid, torn: false, skipped: true });
        await opts.onBatch?.(h, buf.ptr + rel);
        pos = at + h.size;
        continue;
      }
      pos = at;
      if (res.stop === ScanStop.Incomplete) {
        // A chunk boundary (read again from the batch start with a buffer that
        // holds it), or the file really ends inside the batch.
        const n = file.read(peek, 0, Math.min(BATCH_HEADER_SIZE, fileSize - at), at);
        if (n >= LOG_OVERHEAD) {
          const size = peekView.getInt32(8) + LOG_OVERHEAD;
          if (at + size <= fileSize && at !== stuckAt) {
            stuckAt = at;
            if (size > buf.capacity) buf.ensure(size);
            continue;
          }
          const offset = peekView.getInt32(0) * TWO32 + peekView.getUint32(4);
          problems.push({ position: at, offset, reason: `incomplete batch: ${size} bytes framed but the file ends after ${fileSize - at} (torn write)`, torn: true, skipped: false });
        } else {
          problems.push({ position: at, reason: `incomplete batch: ${fileSize - at} trailing bytes (torn write)`, torn: true, skipped: false });
        }
        break;
      }
      // Bad length or magic: the batch cannot be framed, nothing after it can be trusted.
      const n = file.read(peek, 0, Math.min(BATCH_HEADER_SIZE, fileSize - at), at);
      const detail = n >= 17 ? ` (length field ${peekView.getInt32(8)}, magic ${peekView.getInt8(16)})` : '';
      problems.push({ position: at, reason: `${SCAN_STOP_NAMES[res.stop] ?? 'invalid batch'}${detail}`, torn: false, skipped: false });
      break;
    }
  } finally {
    scanner.free();
    buf.free();
  }
  return { end: Math.min(pos, fileSize), fileSize, problems };
}

export function hex32(n: number): string { return '0x' + (n >>> 0).toString(16).padStart(8, '0'); }

export const CODEC_NAMES = ['none', 'gzip', 'snappy', 'lz4', 'zstd'];

// --- index files ---------------------------------------------------------------

export interface OffsetIndexEntry { offset: number; position: number }
export interface TimeIndexEntry { timestamp: number; offset: number }

export interface IndexParse<E> {
  entries: E[];
  /** Bytes after the last whole entry (a length that is not a multiple of the entry size). */
  trailingBytes: number;
  /** Structural problems: entries that do not increase. Slot numbers are 0-based. */
  problems: { slot: number; position: number; reason: string }[];
}

/** Base offset from a segment file name, or null. */
export function baseOffsetOf(file: string): number | null {
  const name = path.basename(file);
  return parseSegmentFileName(name, LOG_SUFFIX) ?? parseSegmentFileName(name, INDEX_SUFFIX) ?? parseSegmentFileName(name, TIME_INDEX_SUFFIX);
}

/** Decodes an offset index file (8-byte entries) and checks that offsets and positions increase. */
export function parseOffsetIndex(bytes: Uint8Array, baseOffset: number): IndexParse<OffsetIndexEntry> {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Math.floor(bytes.length / OFFSET_INDEX_ENTRY_SIZE);
  const entries: OffsetIndexEntry[] = new Array(n);
  const problems: IndexParse<OffsetIndexEntry>['problems'] = [];
  for (let i = 0; i < n; i++) {
    const at = i * OFFSET_INDEX_ENTRY_SIZE;
    const e = { offset: baseOffset + dv.getUint32(at), position: dv.getUint32(at + 4) };
    entries[i] = e;
    const prev = entries[i - 1];
    if (prev && (e.offset <= prev.offset || e.position <= prev.position)) {
      problems.push({ slot: i, position: at, reason: `entry (offset ${e.offset}, position ${e.position}) does not increase past (offset ${prev.offset}, position ${prev.position})` });
    }
  }
  return { entries, trailingBytes: bytes.length - n * OFFSET_INDEX_ENTRY_SIZE, problems };
}

/** Decodes a time index file (12-byte entries) and checks that timestamps increase and offsets do not decrease. */
export function parseTimeIndex(bytes: Uint8Array, baseOffset: number): IndexParse<TimeIndexEntry> {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Math.floor(bytes.length / TIME_INDEX_ENTRY_SIZE);
  const entries: TimeIndexEntry[] = new Array(n);
  const problems: IndexParse<TimeIndexEntry>['problems'] = [];
  for (let i = 0; i < n; i++) {
    const at = i * TIME_INDEX_ENTRY_SIZE;
    const e = { timestamp: dv.getInt32(at) * TWO32 + dv.getUint32(at + 4), offset: baseOffset + dv.getUint32(at + 8) };
    entries[i] = e;
    const prev = entries[i - 1];
    if (prev && (e.timestamp <= prev.timestamp || e.offset < prev.offset)) {
      problems.push({ slot: i, position: at, reason: `entry (timestamp ${e.timestamp}, offset ${e.offset}) does not increase past (timestamp ${prev.timestamp}, offset ${prev.offset})` });
    }
  }
  return { entries, trailingBytes: bytes.length - n * TIME_INDEX_ENTRY_SIZE, problems };
}

// --- verify ----------------------------------------------------------------------

export type Severity = 'corrupt' | 'warning';

export interface VerifyProblem {
  severity: Severity;
  file: string;
  position?: number;
  offset?: number;
  reason: string;
}

export interface VerifyTotals {
  topics: number;
  partitions: number;
  segments: number;
  batches: number;
  records: number;
  bytes: number;
}

export interface VerifyOptions {
  /** Called with each problem as it is found. */
  onProblem?(p: VerifyProblem): void;
  /** Called as log bytes are checked (done, total). */
  onProgress?(done: number, total: number): void;
}

interface PartitionDir { topic: string; id: number; dir: string; config: TopicConfig }

/**
 * Checks every segment of every partition of the store in `dir`: each batch's
 * framing, CRC and offsets (increasing within and across segments), and each
 * index entry against the log. Damage the next open would repair by itself
 * (an unflushed torn tail, indexes of segments recovery rebuilds, leftover
 * files) is a warning; anything else is corruption.
 */
export async function verifyStore(k: Kernels, storage: Storage, dir: string, opts: VerifyOptions = {}): Promise<{ totals: VerifyTotals; problems: VerifyProblem[] }> {
  const problems: VerifyProblem[] = [];
  const report = (p: VerifyProblem) => { problems.push(p); opts.onProblem?.(p); };
  const totals: VerifyTotals = { topics: 0, partitions: 0, segments: 0, batches: 0, records: 0, bytes: 0 };

  // Metadata: topics, partition counts, configs.
  const declared = new Map<string, { partitions: number; config: TopicConfig }>();
  const metaPath = path.join(dir, METADATA_FILE);
  const raw = storage.readFile(metaPath);
  if (raw) {
    try {
      const meta = JSON.parse(new TextDecoder().decode(raw)) as { topics?: Record<string, { partitions?: number; config?: Partial<TopicConfig> }> };
      for (const [name, t] of Object.entries(meta.topics ?? {})) {
        let config: TopicConfig;
        try { config = resolveTopicConfig(t.config ?? {}); } catch (e) {
          report({ severity: 'corrupt', file: metaPath, reason: `topic '${name}': ${(e as Error).message}` });
          config = resolveTopicConfig({});
        }
        declared.set(name, { partitions: Number(t.partitions) || 0, config });
      }
    } catch (e) {
      report({ severity: 'corrupt', file: metaPath, reason: `not valid JSON: ${(e as Error).message}` });
    }
  }
  const parts = new Map<string, PartitionDir>();
  for (const [topic, t] of declared) {
    for (let id = 0; id < t.partitions; id++) {
      const pdir = path.join(dir, `${topic}-${id}`);
      if (!storage.isDirectory(pdir)) report({ severity: 'corrupt', file: pdir, reason: `partition directory of topic '${topic}' (${t.partitions} partitions) is missing` });
      else parts.set(`${topic}-${id}`, { topic, id, dir: pdir, config: t.config });
    }
  }
  for (const name of storage.list(dir)) {
    const m = /^(.+)-(\d+)$/.exec(name);
    if (!m || parts.has(name) || !storage.isDirectory(path.join(dir, name))) continue;
    try { validateTopicName(m[1]); } catch { continue; }
    // Adopted on open with the default config, like the store does.
    parts.set(name, { topic: m[1]!, id: Number(m[2]), dir: path.join(dir, name), config: declared.get(m[1]!)?.config ?? resolveTopicConfig({}) });
  }
  const ordered = [...parts.values()].sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.id - b.id));
  totals.topics = new Set(ordered.map((p) => p.topic)).size;
  totals.partitions = ordered.length;

  // Total bytes of logs, for progress.
  let total = 0;
  for (const p of ordered) {
    for (const n of storage.list(p.dir)) {
      if (parseSegmentFileName(n, LOG_SUFFIX) === null) continue;
      const h = storage.open(path.join(p.dir, n), 'read');
      try { total += h.size(); } finally { h.close(); }
    }
  }
  let done = 0;
  opts.onProgress?.(0, total);
  for (const p of ordered) {
    done = await verifyPartition(k, storage, p, totals, report, (d) => opts.onProgress?.(d, total), done);
  }
  opts.onProgress?.(total, total);
  return { totals, problems };
}

function readRecoveryPoint(storage: Storage, dir: string): number {
  const raw = storage.readFile(path.join(dir, RECOVERY_POINT_FILE));
  if (!raw) return 0;
  try {
    const v = JSON.parse(new TextDecoder().decode(raw)) as { offset?: unknown };
    return typeof v.offset === 'number' && Number.isSafeInteger(v.offset) && v.offset >= 0 ? v.offset : 0;
  } catch { return 0; }
}

async function verifyPartition(k: Kernels, storage: Storage, p: PartitionDir, totals: VerifyTotals,
  report: (p: VerifyProblem) => void, progress: (done: number) => void, doneBefore: number): Promise<number> {
  const names = storage.list(p.dir);
  const bases: number[] = [];
  const logs = new Set<number>();
  for (const n of names) {
    const b = parseSegmentFileName(n, LOG_SUFFIX);
    if (b !== null) { bases.push(b); logs.add(b); }
  }
  bases.sort((a, b) => a - b);
  for (const n of names) {
    if (n.endsWith('.deleted') || n.endsWith('.cleaned') || n.endsWith('.tmp')) {
      report({ severity: 'warning', file: path.join(p.dir, n), reason: 'leftover file of an interrupted operation (removed on the next writable open)' });
      continue;
    }
    const b = parseSegmentFileName(n, INDEX_SUFFIX) ?? parseSegmentFileName(n, TIME_INDEX_SUFFIX);
    if (b !== null && !logs.has(b)) report({ severity: 'warning', file: path.join(p.dir, n), reason: 'index file without a log segment (removed on the next writable open)' });
  }
  if (bases.length === 0) {
    report({ severity: 'warning', file: p.dir, reason: 'partition has no segments (an empty one is created on the next writable open)' });
    return doneBefore;
  }
  const clean = storage.exists(path.join(p.dir, CLEAN_SHUTDOWN_FILE));
  const recoveryPoint = readRecoveryPoint(storage, p.dir);
  const maxBatchBytes = Math.max(p.config.maxMessageBytes, 1 << 20) + LOG_OVERHEAD;
  let prevLast = -1;
  let done = doneBefore;
  for (let i = 0; i < bases.length; i++) {
    const base = bases[i]!;
    const nextBase = bases[i + 1];
    // Segments the next open re-scans (and whose indexes it rebuilds): like Partition.load.
    const rescanned = !clean && !(nextBase !== undefined && nextBase <= recoveryPoint);
    totals.segments++;
    const logPath = path.join(p.dir, `${String(base).padStart(20, '0')}${LOG_SUFFIX}`);
    if (base <= prevLast) {
      report({ severity: 'corrupt', file: logPath, position: 0, offset: base, reason: `segment base offset ${base} overlaps the previous segment, which ends at offset ${prevLast}` });
    }
    const idxPath = logPath.slice(0, -LOG_SUFFIX.length) + INDEX_SUFFIX;
    const tidxPath = logPath.slice(0, -LOG_SUFFIX.length) + TIME_INDEX_SUFFIX;
    const idxBytes = storage.readFile(idxPath);
    const tidxBytes = storage.readFile(tidxPath);
    const idxSeverity: Severity = rescanned ? 'warning' : 'corrupt';
    const idxNote = rescanned ? ' (rebuilt by recovery on the next open)' : '';
    const oi = parseOffsetIndex(idxBytes ?? new Uint8Array(0), base);
    const ti = parseTimeIndex(tidxBytes ?? new Uint8Array(0), base);
    if (idxBytes && oi.trailingBytes !== 0) report({ severity: idxSeverity, file: idxPath, position: oi.entries.length * OFFSET_INDEX_ENTRY_SIZE, reason: `file length ${idxBytes.length} is not a multiple of ${OFFSET_INDEX_ENTRY_SIZE}${idxNote}` });
    if (tidxBytes && ti.trailingBytes !== 0) report({ severity: idxSeverity, file: tidxPath, position: ti.entries.length * TIME_INDEX_ENTRY_SIZE, reason: `file length ${tidxBytes.length} is not a multiple of ${TIME_INDEX_ENTRY_SIZE}${idxNote}` });
    for (const q of ti.problems) report({ severity: idxSeverity, file: tidxPath, position: q.position, reason: `entry ${q.slot}: ${q.reason}${idxNote}` });
    // Offset index entries must name batch starts (monotonicity follows from matching batches in order).
    let oj = 0;
    let tj = 0;
    let runningMax = -Infinity;
    const log = storage.open(logPath, 'read');
    let segLast = prevLast;
    let result: WalkResult;
    try {
      result = await walkLog(k, log, {
        maxBatchBytes,
        onProgress: (pos) => progress(done + pos),
        onBatch: (b) => {
          const last = b.baseOffset + b.lastOffsetDelta;
          if (b.invalid) {
            report({ severity: classify(clean, recoveryPoint, segLast), file: logPath, position: b.position, offset: b.baseOffset, reason: b.invalid + unflushedNote(clean, recoveryPoint, segLast, b.position) });
            // An index entry naming this batch is as good as the batch: not reported twice.
            if (oj < oi.entries.length && oi.entries[oj]!.position === b.position) oj++;
            if (last >= b.baseOffset && last - base <= 0xffffffff) while (tj < ti.entries.length && ti.entries[tj]!.offset <= last) tj++;
            return;
          }
          totals.batches++;
          totals.records += b.recordCount;
          if (b.baseOffset <= segLast || b.baseOffset < base || last - base > 0xffffffff) {
            report({ severity: classify(clean, recoveryPoint, segLast), file: logPath, position: b.position, offset: b.baseOffset,
              reason: `batch offsets ${b.baseOffset}..${last} out of sequence (previous batch ends at ${segLast}, segment base ${base})` });
          }
          segLast = Math.max(segLast, last);
          while (oj < oi.entries.length && oi.entries[oj]!.position < b.position) {
            const e = oi.entries[oj]!;
            report({ severity: idxSeverity, file: idxPath, position: oj * OFFSET_INDEX_ENTRY_SIZE, offset: e.offset, reason: `entry ${oj} (offset ${e.offset}, position ${e.position}) does not point at a batch start${idxNote}` });
            oj++;
          }
          if (oj < oi.entries.length && oi.entries[oj]!.position === b.position) {
            const e = oi.entries[oj]!;
            if (e.offset !== last) report({ severity: idxSeverity, file: idxPath, position: oj * OFFSET_INDEX_ENTRY_SIZE, offset: e.offset, reason: `entry ${oj} names offset ${e.offset} but the batch at position ${e.position} ends at offset ${last}${idxNote}` });
            oj++;
          }
          if (b.maxTimestamp > runningMax) runningMax = b.maxTimestamp;
          while (tj < ti.entries.length && ti.entries[tj]!.offset <= last) {
            const e = ti.entries[tj]!;
            if (e.offset < b.baseOffset) {
              report({ severity: idxSeverity, file: tidxPath, position: tj * TIME_INDEX_ENTRY_SIZE, offset: e.offset, reason: `entry ${tj} (timestamp ${e.timestamp}, offset ${e.offset}) names an offset held by no batch${idxNote}` });
            } else if (e.timestamp !== runningMax) {
              report({ severity: idxSeverity, file: tidxPath, position: tj * TIME_INDEX_ENTRY_SIZE, offset: e.offset, reason: `entry ${tj} says the largest timestamp up to offset ${e.offset} is ${e.timestamp}, the log says ${runningMax}${idxNote}` });
            }
            tj++;
          }
        },
      });
    } finally {
      log.close();
    }
    totals.bytes += result.end;
    done += result.fileSize;
    for (const w of result.problems) {
      if (w.skipped) continue; // reported by onBatch
      report({ severity: classify(clean, recoveryPoint, segLast), file: logPath, position: w.position, offset: w.offset, reason: w.reason + unflushedNote(clean, recoveryPoint, segLast, w.position) });
    }
    for (; oj < oi.entries.length; oj++) {
      const e = oi.entries[oj]!;
      report({ severity: idxSeverity, file: idxPath, position: oj * OFFSET_INDEX_ENTRY_SIZE, offset: e.offset, reason: `entry ${oj} (offset ${e.offset}, position ${e.position}) points past the last valid batch (log ends at ${result.end})${idxNote}` });
    }
    for (; tj < ti.entries.length; tj++) {
      const e = ti.entries[tj]!;
      report({ severity: idxSeverity, file: tidxPath, position: tj * TIME_INDEX_ENTRY_SIZE, offset: e.offset, reason: `entry ${tj} (timestamp ${e.timestamp}, offset ${e.offset}) points past the last valid batch (last offset ${segLast})${idxNote}` });
    }
    if (!idxBytes && result.end > 0) report({ severity: 'warning', file: idxPath, reason: 'offset index is missing (reads scan the segment from its start; rebuilt by recovery)' });
    if (!tidxBytes && result.end > 0) report({ severity: 'warning', file: tidxPath, reason: 'time index is missing (timestamp lookups scan the segment; rebuilt by recovery)' });
    prevLast = Math.max(prevLast, segLast);
    progress(done);
  }
  return done;
}

/**
 * Damage in a partition that was not shut down cleanly, past its recovery
 * point, is unflushed data the next open truncates: a warning. Anything else
 * was acknowledged as durable: corruption.
 */
function classify(clean: boolean, recoveryPoint: number, lastGood: number): Severity {
  return !clean && lastGood + 1 >= recoveryPoint ? 'warning' : 'corrupt';
}

function unflushedNote(clean: boolean, recoveryPoint: number, lastGood: number, position: number): string {
  return classify(clean, recoveryPoint, lastGood) === 'warning'
    ? ` (unflushed data past the recovery point ${recoveryPoint}: the next writable open truncates the segment at position ${position})`
    : '';
}
