// Shared helpers of the tiered storage tests (test/tier_*.test.ts).

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Store, StoreOptions } from '../../src/store.js';
import { Partition, ReadFrom, ReadOptions } from '../../src/partition.js';
import { RecordInput } from '../../src/record.js';
import { TopicConfig } from '../../src/topic_config.js';
import { TierConfig } from '../../src/tier/tier_config.js';
import { dropMemoryBucket } from '../../src/tier/object_store.js';
import { Manifest, parseManifest } from '../../src/tier/manifest.js';
import { makeRecords, plain, PlainRecord } from './archive_fixture.js';

const created: string[] = [];

export function tmp(prefix = 'sediment-tier-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  created.push(d);
  return d;
}

export function cleanup(): void {
  for (const d of created.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}

/** Tier settings for tests: no background timer, quick bounded retries. */
export const FAST: Partial<TierConfig> = {
  checkIntervalMs: -1,
  retryAttempts: 3,
  retryBaseDelayMs: 5,
  retryMaxDelayMs: 20,
  retryTotalMs: 500,
  requestTimeoutMs: 5_000,
  maxBackoffMs: 200,
};

let bucketSeq = 0;

/** A fresh shared in-memory bucket (OpenDAL memory service). */
export function memoryTier(extra: Partial<TierConfig> = {}): TierConfig {
  const options = { root: `/bucket-${process.pid}-${++bucketSeq}` };
  return { service: 'memory', options, prefix: 'arch', ...FAST, ...extra };
}

export function forgetMemoryTier(t: TierConfig): void { if (t.service === 'memory') dropMemoryBucket(t.options ?? {}); }

/** A fresh OpenDAL fs "bucket" in a temporary directory. */
export function fsTier(extra: Partial<TierConfig> = {}): TierConfig {
  return { service: 'fs', options: { root: tmp('sediment-bucket-') }, prefix: 'arch', ...FAST, ...extra };
}

/** Topic config of the tests: small segments, dense indexes, no time-based anything. */
export function smallTopic(extra: Partial<TopicConfig> = {}): Partial<TopicConfig> {
  return { segmentBytes: 8 * 1024, indexIntervalBytes: 512, flushMs: -1, retentionMs: -1, ...extra };
}

/** Records with timestamps near now (so time-based defaults keep them). */
export function recentRecords(n: number, seed: number, maxValue = 300): RecordInput[] {
  return makeRecords(n, seed, { maxValue, t0: Date.now() - 3_600_000 });
}

export async function openTiered(dir: string, tier: TierConfig, config: Partial<TopicConfig> = smallTopic(), opts: StoreOptions = {}): Promise<{ store: Store; p: Partition }> {
  const store = await Store.open(dir, { retentionCheckMs: -1, ...opts, tier });
  if (!store.hasTopic('ev') && !store.readOnly) await store.createTopic('ev', { config });
  return { store, p: store.partition('ev', 0) };
}

/** Appends records in batches of `per`. */
export async function appendAll(p: Partition, records: RecordInput[], per = 7): Promise<void> {
  for (let i = 0; i < records.length; i += per) await p.append(records.slice(i, i + per));
}

export async function readPlain(p: Partition, from: ReadFrom = { offset: p.logStartOffset }, opts: ReadOptions = {}): Promise<PlainRecord[]> {
  const out: PlainRecord[] = [];
  for await (const r of p.read(from, opts)) out.push(plain(r));
  return out;
}

/** Waits until cond() holds, polling; bounded in time. */
export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export { plain, makeRecords };
export type { PlainRecord };

/** Store.restore from `tier` into a fresh directory rejects with `type`, and the directory then holds no topic. */
export async function assertRestoreRefused(tier: TierConfig, type: new (...args: never[]) => Error): Promise<void> {
  const target = tmp();
  await assert.rejects(Store.restore(target, tier, { storeOptions: { retentionCheckMs: -1 } }), type);
  const again = await Store.open(target, { retentionCheckMs: -1 });
  try {
    assert.deepEqual(again.listTopics(), []);
  } finally {
    await again.close();
  }
}

/** The manifest of a partition as the object store holds it now. */
export async function remoteManifest(store: Store, topic = 'ev', id = 0): Promise<Manifest> {
  const t = store.tier!;
  const key = t.layout.manifestKey(topic, id);
  return parseManifest(await t.objects.read(key), key);
}
