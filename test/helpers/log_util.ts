// Shared helpers for the log engine tests (test/log_*.test.ts).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import assert from 'node:assert/strict';
import { Store, StoreOptions } from '../../src/store.js';
import { Partition, ReadFrom, ReadOptions } from '../../src/partition.js';
import { StoredRecord } from '../../src/record.js';
import { TopicConfig } from '../../src/topic_config.js';
import { NodeStorage, FileHandle } from '../../src/storage.js';

/**
 * NodeStorage without fsync (datasync and syncDir resolve at once): for
 * tests of recovery logic that reopen hundreds of times, where durability
 * is not what is tested (crash tests use FaultyStorage or a real SIGKILL).
 */
export class NoSyncStorage extends NodeStorage {
  override open(file: string, mode: 'read' | 'write'): FileHandle {
    const h = super.open(file, mode);
    return {
      path: h.path,
      size: () => h.size(),
      read: (b, o, l, p) => h.read(b, o, l, p),
      write: (b, o, l, p) => h.write(b, o, l, p),
      truncate: (l) => h.truncate(l),
      datasync: () => Promise.resolve(),
      close: () => h.close(),
    };
  }
  override syncDir(): Promise<void> { return Promise.resolve(); }
}
export const noSync = new NoSyncStorage();

const created: string[] = [];

/** A fresh temporary directory, removed by cleanupTmp(). */
export function tmpDir(prefix = 'sediment-log-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  created.push(d);
  return d;
}

export function cleanupTmp(): void {
  for (const d of created.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}

/** Store options for tests: no background timers unless asked for. */
export function testOpts(extra: StoreOptions = {}): StoreOptions {
  return { retentionCheckMs: -1, ...extra };
}

/** Topic config for tests: no background flush unless asked for. */
export function testConfig(extra: Partial<TopicConfig> = {}): Partial<TopicConfig> {
  return { flushMs: -1, ...extra };
}

/** Opens a store and a topic 't' (created when missing) with the given config; returns its partition 0. */
export async function openPartition(dir: string, config: Partial<TopicConfig> = {}, opts: StoreOptions = {}): Promise<{ store: Store; p: Partition }> {
  const store = await Store.open(dir, testOpts(opts));
  if (!store.hasTopic('t')) {
    if (store.readOnly) throw new Error('topic t is missing');
    await store.createTopic('t', { config: testConfig(config) });
  }
  return { store, p: store.partition('t', 0) };
}

export function partitionDir(storeDir: string, topic = 't', id = 0): string {
  return path.join(storeDir, `${topic}-${id}`);
}

/** Deterministic value for record i (varying length, includes the number). */
export function valueOf(i: number, size = 0): Uint8Array {
  const head = `v${i}:`;
  const n = size > 0 ? size : 8 + (i * 7919) % 57;
  const out = new Uint8Array(Math.max(n, head.length));
  for (let j = 0; j < out.length; j++) out[j] = (i * 31 + j * 7) & 0xff;
  out.set(new TextEncoder().encode(head), 0);
  return out;
}

export function keyOf(i: number): Uint8Array | null {
  return i % 5 === 0 ? null : new TextEncoder().encode(`k${i % 17}`);
}

/** Reads everything a read() call yields. */
export async function readAll(p: Partition, from: ReadFrom = { offset: p.logStartOffset }, opts: ReadOptions = {}): Promise<StoredRecord[]> {
  const out: StoredRecord[] = [];
  for await (const r of p.read(from, opts)) out.push(r);
  return out;
}

/** Reads until an error; returns the records before it and the error. */
export async function readUntilError(p: Partition, from: ReadFrom, opts: ReadOptions = {}): Promise<{ records: StoredRecord[]; error: unknown }> {
  const records: StoredRecord[] = [];
  try {
    for await (const r of p.read(from, opts)) records.push(r);
  } catch (error) {
    return { records, error };
  }
  return { records, error: null };
}

/** Base offsets of the .log files in a partition directory. */
export function segmentBases(pdir: string): number[] {
  return fs.readdirSync(pdir).filter((n) => /^\d{20}\.log$/.test(n)).map((n) => Number(n.slice(0, 20))).sort((a, b) => a - b);
}

export function segPath(pdir: string, base: number, suffix: '.log' | '.index' | '.timeindex'): string {
  return path.join(pdir, String(base).padStart(20, '0') + suffix);
}

/** Byte positions of every batch in a .log file, parsed independently of the engine. */
export function batchPositions(file: string): { position: number; size: number; baseOffset: number; lastOffset: number; maxTimestamp: number }[] {
  const buf = fs.readFileSync(file);
  const out: { position: number; size: number; baseOffset: number; lastOffset: number; maxTimestamp: number }[] = [];
  let pos = 0;
  while (pos + 61 <= buf.length) {
    const size = buf.readInt32BE(pos + 8) + 12;
    if (size < 61 || pos + size > buf.length) break;
    const baseOffset = Number(buf.readBigInt64BE(pos));
    out.push({ position: pos, size, baseOffset, lastOffset: baseOffset + buf.readInt32BE(pos + 23), maxTimestamp: Number(buf.readBigInt64BE(pos + 35)) });
    pos += size;
  }
  return out;
}

/** Asserts a record read back equals what was appended as record i (valueOf/keyOf). */
export function assertRecord(r: StoredRecord, offset: number, value: Uint8Array, key: Uint8Array | null = null, timestamp?: number): void {
  assert.equal(r.offset, offset);
  assert.deepEqual(r.value === null ? null : Buffer.from(r.value), Buffer.from(value), `value of offset ${offset}`);
  assert.deepEqual(r.key === null ? null : Buffer.from(r.key), key === null ? null : Buffer.from(key), `key of offset ${offset}`);
  if (timestamp !== undefined) assert.equal(r.timestamp, timestamp, `timestamp of offset ${offset}`);
}

export function fileSize(p: string): number {
  try { return fs.statSync(p).size; } catch { return -1; }
}

/** Sizes of every file in a directory, for "nothing was written" checks. */
export function dirSizes(dir: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const n of fs.readdirSync(dir).sort()) out[n] = fileSize(path.join(dir, n));
  return out;
}
