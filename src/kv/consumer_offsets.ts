// Consumer group offsets, kept the way Kafka keeps them: in a compacted
// topic (`__consumer_offsets`), here a KV namespace.
//
// Key:   UTF-8 group, 0x00, topic, 0x00, partition (u32 big-endian), so the
//        offsets of a group sort by topic then partition and a prefix scan
//        lists them.
// Value: format byte (1), committed offset (i64 BE), commit time in ms since
//        the epoch (i64 BE), then the metadata string in UTF-8.
//
// As in Kafka, the committed offset is the next offset the group will read.

import type { Store } from '../store.js';
import { InvalidArgumentError, CorruptionError } from '../errors.js';
import { validateTopicName } from '../topic_config.js';
import { KvStore, KvOp } from './kv_store.js';
import { loneSurrogate } from './kv_keys.js';

export const CONSUMER_OFFSETS_TOPIC = '__consumer_offsets';
export const CONSUMER_OFFSETS_NAMESPACE = 'consumer_offsets';
/** Longest group id, in UTF-8 bytes. */
export const MAX_GROUP_BYTES = 1024;
/** Longest commit metadata, in UTF-8 bytes (Kafka's offset.metadata.max.bytes default). */
export const MAX_METADATA_BYTES = 4096;
const VALUE_FORMAT = 1;
const TWO32 = 4294967296;

export interface CommittedOffset {
  group: string;
  topic: string;
  partition: number;
  /** The next offset the group will read. */
  offset: number;
  metadata: string;
  /** When it was committed, ms since the epoch. */
  commitTimestamp: number;
}

export interface OffsetLag extends CommittedOffset {
  /** Log end offset of the partition in this store (null when the store has no such partition). */
  logEndOffset: number | null;
  /** logEndOffset - offset, at least 0 (null when unknown). */
  lag: number | null;
}

export interface OffsetCommit { topic: string; partition: number; offset: number; metadata?: string }

const utf8 = new TextEncoder();
const utf8d = new TextDecoder('utf-8', { fatal: true });

function groupBytes(group: unknown): Uint8Array {
  if (typeof group !== 'string' || group.length === 0) throw new InvalidArgumentError(`group must be a non-empty string, got ${JSON.stringify(group)}`);
  if (group.includes('\0')) throw new InvalidArgumentError('group must not contain NUL characters');
  if (loneSurrogate(group) >= 0) throw new InvalidArgumentError('group must be a well-formed string (it has a lone surrogate, which has no UTF-8 form)');
  const b = utf8.encode(group);
  if (b.length > MAX_GROUP_BYTES) throw new InvalidArgumentError(`group is ${b.length} bytes; the limit is ${MAX_GROUP_BYTES}`);
  return b;
}

function checkPartition(partition: unknown): number {
  if (typeof partition !== 'number' || !Number.isInteger(partition) || partition < 0 || partition > 0x7fffffff) {
    throw new InvalidArgumentError(`partition must be an integer in [0, 2^31), got ${JSON.stringify(partition)}`);
  }
  return partition;
}

/** The KV key of (group, topic, partition). */
export function offsetKey(group: string, topic: string, partition: number): Uint8Array {
  const g = groupBytes(group);
  const t = utf8.encode(validateTopicName(topic));
  checkPartition(partition);
  const out = new Uint8Array(g.length + 1 + t.length + 1 + 4);
  out.set(g, 0);
  out.set(t, g.length + 1);
  new DataView(out.buffer).setUint32(out.length - 4, partition);
  return out;
}

function parseKey(key: Uint8Array): { group: string; topic: string; partition: number } {
  const a = key.indexOf(0);
  const b = a < 0 ? -1 : key.indexOf(0, a + 1);
  if (a <= 0 || b < 0 || b !== key.length - 5) throw new CorruptionError('malformed consumer offset key', { position: 0 });
  return {
    group: utf8d.decode(key.subarray(0, a)),
    topic: utf8d.decode(key.subarray(a + 1, b)),
    partition: new DataView(key.buffer, key.byteOffset, key.byteLength).getUint32(b + 1),
  };
}

function encodeValue(offset: number, metadata: string, ts: number): Uint8Array {
  const m = utf8.encode(metadata);
  if (m.length > MAX_METADATA_BYTES) throw new InvalidArgumentError(`metadata is ${m.length} bytes; the limit is ${MAX_METADATA_BYTES}`);
  const out = new Uint8Array(17 + m.length);
  const dv = new DataView(out.buffer);
  out[0] = VALUE_FORMAT;
  dv.setUint32(1, Math.floor(offset / TWO32)); dv.setUint32(5, offset >>> 0);
  dv.setUint32(9, Math.floor(ts / TWO32)); dv.setUint32(13, ts >>> 0);
  out.set(m, 17);
  return out;
}

function decodeValue(v: Uint8Array): { offset: number; commitTimestamp: number; metadata: string } {
  if (v.length < 17 || v[0] !== VALUE_FORMAT) throw new CorruptionError(`consumer offset value of ${v.length} bytes with format ${v[0]} is not readable`, { position: 0 });
  const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
  return {
    offset: dv.getUint32(1) * TWO32 + dv.getUint32(5),
    commitTimestamp: dv.getUint32(9) * TWO32 + dv.getUint32(13),
    metadata: utf8d.decode(v.subarray(17)),
  };
}

function checkOffset(offset: unknown): number {
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) {
    throw new InvalidArgumentError(`offset must be a non-negative integer, got ${JSON.stringify(offset)}`);
  }
  return offset;
}

export class ConsumerOffsets {
  private readonly store: Store;
  /** The KV namespace holding the offsets. */
  readonly kv: KvStore;

  constructor(store: Store, kv: KvStore) {
    this.store = store;
    this.kv = kv;
  }

  /** Commits one offset (the next offset the group will read). Durable after flush(). */
  async commitOffset(group: string, topic: string, partition: number, offset: number, metadata = ''): Promise<void> {
    await this.commitOffsets(group, [{ topic, partition, offset, metadata }]);
  }

  /** Commits offsets of several partitions at once: all or none, also across a crash. */
  async commitOffsets(group: string, commits: readonly OffsetCommit[]): Promise<void> {
    groupBytes(group);
    if (!Array.isArray(commits)) throw new InvalidArgumentError('commits must be an array');
    const now = Date.now();
    const ops: KvOp[] = commits.map((c) => {
      if (c === null || typeof c !== 'object') throw new InvalidArgumentError('each commit must be an object');
      const metadata = c.metadata ?? '';
      if (typeof metadata !== 'string') throw new InvalidArgumentError('metadata must be a string');
      return { type: 'put', key: offsetKey(group, c.topic, c.partition), value: encodeValue(checkOffset(c.offset), metadata, now) };
    });
    this.kv.batchSync(ops);
  }

  /** The committed offset of (group, topic, partition), or null. */
  async fetchOffset(group: string, topic: string, partition: number): Promise<CommittedOffset | null> {
    const v = this.kv.getSync(offsetKey(group, topic, partition));
    if (v === undefined) return null;
    return { group, topic, partition, ...decodeValue(v) };
  }

  /** Every committed offset of a group, by topic then partition. */
  fetchOffsets(group: string): CommittedOffset[] {
    const prefix = new Uint8Array(groupBytes(group).length + 1);
    prefix.set(utf8.encode(group));
    const out: CommittedOffset[] = [];
    for (const { key, value } of this.kv.rangeSync({ prefix })) out.push({ ...parseKey(key), ...decodeValue(value) });
    return out;
  }

  /** Group ids with at least one committed offset, in byte order. */
  listGroups(): string[] {
    const out: string[] = [];
    let from: Uint8Array | undefined;
    for (;;) {
      const next = this.kv.keysSync(from ? { gte: from, limit: 1 } : { limit: 1 }).next();
      if (next.done) return out;
      const key = next.value;
      const end = key.indexOf(0);
      if (end <= 0) throw new CorruptionError('malformed consumer offset key', { position: 0 });
      out.push(utf8d.decode(key.subarray(0, end)));
      // The smallest key of any later group: this group's bytes followed by 0x01.
      from = new Uint8Array(end + 1);
      from.set(key.subarray(0, end));
      from[end] = 1;
    }
  }

  /** Removes every committed offset of a group (atomically). Returns how many. */
  async deleteGroup(group: string): Promise<number> {
    const offsets = this.fetchOffsets(group);
    if (offsets.length === 0) return 0;
    this.kv.batchSync(offsets.map((o) => ({ type: 'del', key: offsetKey(o.group, o.topic, o.partition) })));
    return offsets.length;
  }

  /** A group's committed offsets with the log end offset and lag of each partition in this store. */
  describeGroup(group: string): OffsetLag[] {
    return this.fetchOffsets(group).map((o) => {
      let end: number | null = null;
      if (this.store.hasTopic(o.topic)) {
        const t = this.store.topic(o.topic);
        if (o.partition < t.partitions.length) end = t.partitions[o.partition]!.logEndOffset;
      }
      return { ...o, logEndOffset: end, lag: end === null ? null : Math.max(0, end - o.offset) };
    });
  }

  /** Makes every commit so far durable. */
  flush(): Promise<void> { return this.kv.flush(); }
}
