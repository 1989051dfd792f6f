// Topic configuration: Kafka's settings under camelCase names, defaults,
// validation. Stored in the store's metadata file (sediment.json).
//
// | sediment            | Kafka                  | default          |
// |---------------------|------------------------|------------------|
// | segmentBytes        | segment.bytes          | 1 GiB            |
// | segmentMs           | segment.ms             | 7 days           |
// | retentionMs         | retention.ms           | 7 days (-1: off) |
// | retentionBytes      | retention.bytes        | -1 (off)         |
// | indexIntervalBytes  | index.interval.bytes   | 4096             |
// | maxMessageBytes     | max.message.bytes      | 1 MiB            |
// | flushMessages       | flush.messages         | -1 (off)         |
// | flushMs             | flush.ms               | 1000 (-1: off)   |

import { InvalidArgumentError } from './errors.js';
import { MAX_SEGMENT_BYTES } from './log_segment.js';

export interface TopicConfig {
  segmentBytes: number;
  segmentMs: number;
  retentionMs: number;
  retentionBytes: number;
  indexIntervalBytes: number;
  /** Largest record batch; a record that cannot fit in one is refused. */
  maxMessageBytes: number;
  /** Flush after this many unflushed records (the append resolves after the flush); -1: off. */
  flushMessages: number;
  /** Flush unflushed data every this many ms in the background; -1: off. */
  flushMs: number;
  /** 'delete' (retention) or 'compact' (key-compacted, used by the KV store). */
  cleanupPolicy: 'delete' | 'compact';
  /** Windowed deduplication on append (see docs/dedup.md); absent: off. */
  dedup?: DedupConfig;
}

export interface DedupConfig {
  by: 'key' | 'value' | 'content' | `header:${string}`;
  window: { count: number; ageMs?: number };
  /** For key and header modes: compare the bytes before dropping (no false positives). */
  confirm?: boolean;
}

export const DAY_MS = 24 * 60 * 60 * 1000;

export const DEFAULT_TOPIC_CONFIG: Readonly<TopicConfig> = Object.freeze({
  segmentBytes: 1 << 30,
  segmentMs: 7 * DAY_MS,
  retentionMs: 7 * DAY_MS,
  retentionBytes: -1,
  indexIntervalBytes: 4096,
  maxMessageBytes: 1 << 20,
  flushMessages: -1,
  flushMs: 1000,
  cleanupPolicy: 'delete',
});

const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;

/** Kafka's topic name rules; '.' and '..' are refused so a name can never act as a path. */
export function validateTopicName(name: unknown): string {
  if (typeof name !== 'string' || !TOPIC_NAME.test(name) || name === '.' || name === '..') {
    throw new InvalidArgumentError(`invalid topic name ${JSON.stringify(name)}: use 1-249 characters of [a-zA-Z0-9._-], not '.' or '..'`);
  }
  return name;
}

function int(v: unknown, name: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new InvalidArgumentError(`${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
  }
  return v;
}

/** Merges overrides onto the defaults and validates every field. */
export function resolveTopicConfig(overrides: Partial<TopicConfig> = {}): TopicConfig {
  if (overrides === null || typeof overrides !== 'object') throw new InvalidArgumentError('topic config must be an object');
  for (const key of Object.keys(overrides)) {
    if (!(key in DEFAULT_TOPIC_CONFIG) && key !== 'dedup') throw new InvalidArgumentError(`unknown topic config '${key}'`);
  }
  const c: TopicConfig = { ...DEFAULT_TOPIC_CONFIG, ...overrides };
  int(c.segmentBytes, 'segmentBytes', 1024, MAX_SEGMENT_BYTES);
  int(c.segmentMs, 'segmentMs', 1, Number.MAX_SAFE_INTEGER);
  if (c.retentionMs !== -1) int(c.retentionMs, 'retentionMs', 0, Number.MAX_SAFE_INTEGER);
  if (c.retentionBytes !== -1) int(c.retentionBytes, 'retentionBytes', 0, Number.MAX_SAFE_INTEGER);
  int(c.indexIntervalBytes, 'indexIntervalBytes', 0, 1 << 30);
  int(c.maxMessageBytes, 'maxMessageBytes', 128, 64 << 20);
  if (c.flushMessages !== -1) int(c.flushMessages, 'flushMessages', 1, Number.MAX_SAFE_INTEGER);
  if (c.flushMs !== -1) int(c.flushMs, 'flushMs', 1, 24 * 60 * 60 * 1000);
  if (c.cleanupPolicy !== 'delete' && c.cleanupPolicy !== 'compact') throw new InvalidArgumentError(`cleanupPolicy must be 'delete' or 'compact'`);
  if (c.dedup !== undefined) validateDedupConfig(c.dedup);
  return c;
}

export function validateDedupConfig(d: unknown): DedupConfig {
  if (d === null || typeof d !== 'object') throw new InvalidArgumentError('dedup must be an object');
  const dd = d as DedupConfig;
  if (!(dd.by === 'key' || dd.by === 'value' || dd.by === 'content' || (typeof dd.by === 'string' && /^header:.+/.test(dd.by)))) {
    throw new InvalidArgumentError(`dedup.by must be 'key', 'value', 'content' or 'header:<name>', got ${JSON.stringify(dd.by)}`);
  }
  if (!dd.window || typeof dd.window !== 'object') throw new InvalidArgumentError('dedup.window is required');
  int(dd.window.count, 'dedup.window.count', 1, 1 << 24);
  if (dd.window.ageMs !== undefined) int(dd.window.ageMs, 'dedup.window.ageMs', 0, Number.MAX_SAFE_INTEGER);
  if (dd.confirm !== undefined && typeof dd.confirm !== 'boolean') throw new InvalidArgumentError('dedup.confirm must be a boolean');
  if (dd.confirm === true && dd.by !== 'key' && !dd.by.startsWith('header:')) {
    throw new InvalidArgumentError(`dedup.confirm is only available with by 'key' or 'header:<name>', not '${dd.by}'`);
  }
  return dd;
}
