// `npm start`: a short tour of what sediment does and how fast, on a store
// under ./data on local disk. Re-runnable: each section resets only its own
// topic. Sections are independent entries of SECTIONS; add one (KV, dedup,
// tiering, ...) by writing a DemoSection and listing it there.
//
//   node dist/src/demo.js [--dir DIR] [--records N]

import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Store } from './store.js';
import { RecordInput, StoredRecord } from './record.js';
import { SedimentError, StoreLockedError } from './errors.js';
import type { TierConfig } from './tier/tier_config.js';
import type { KvEntry } from './kv/kv_store.js';

/** What a section gets. */
export interface DemoContext {
  /** The open store (replaced by reopen()). */
  store: Store;
  /** Store directory as given on the command line (relative paths stay relative, for the printed commands). */
  dir: string;
  /** Records the log section writes (--records). */
  records: number;
  /** Prints one line. */
  log(line?: string): void;
  /** Closes the store cleanly and opens it again; returns [closeMs, openMs]. */
  reopen(): Promise<[number, number]>;
  /** CLI commands printed at the end, for exploring what the section left behind. */
  commands: string[];
}

export interface DemoSection {
  title: string;
  run(ctx: DemoContext): Promise<void>;
}

const fmt = new Intl.NumberFormat('en-US');
const n0 = (x: number) => fmt.format(Math.round(x));
const ms = (x: number) => `${x < 10 ? x.toFixed(2) : x.toFixed(0)} ms`;
const perSec = (count: number, millis: number) => n0(count / (millis / 1000));
const mbps = (bytes: number, millis: number) => (bytes / 1e6 / (millis / 1000)).toFixed(1);
const row = (label: string, value: string) => `  ${label.padEnd(26)} ${value}`;

/** Fills a 100-byte-style value for record i: its number, then a repeating pattern. Deterministic, so reads can be checked. */
function fillValue(out: Uint8Array, i: number): void {
  const head = `record ${String(i).padStart(9, '0')} `;
  for (let j = 0; j < out.length; j++) out[j] = j < head.length ? head.charCodeAt(j) : 97 + ((i + j) % 26);
}

function equalBytes(a: Uint8Array | null, b: Uint8Array): boolean {
  if (a === null || a.length !== b.length) return false;
  for (let j = 0; j < a.length; j++) if (a[j] !== b[j]) return false;
  return true;
}

/** Random integers in [0, n) from a fixed seed (xorshift32), so runs are comparable. */
function randoms(count: number, n: number, seed = 0x9e3779b9): number[] {
  let s = seed >>> 0;
  const out = new Array<number>(count);
  for (let i = 0; i < count; i++) {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    out[i] = s % n;
  }
  return out;
}

// --- the partitioned log ---------------------------------------------------------

export const LOG_TOPIC = 'demo-log';
const VALUE_BYTES = 100;
const BATCH = 1000;

export const logSection: DemoSection = {
  title: 'Partitioned log (Kafka RecordBatch v2 segments, offset and time indexes)',
  async run(ctx) {
    const N = ctx.records;
    let store = ctx.store;
    if (store.hasTopic(LOG_TOPIC)) await store.deleteTopic(LOG_TOPIC);
    await store.createTopic(LOG_TOPIC, { partitions: 1, config: { segmentBytes: 8 << 20 } });
    ctx.log(row('topic', `${LOG_TOPIC} (1 partition, 8 MiB segments)`));

    // Records are built before the clock starts: the figures are the log's.
    const t0 = Date.now() - N; // one distinct millisecond per record, all in the past
    const batches: RecordInput[][] = [];
    const keys = Array.from({ length: 1000 }, (_, u) => new TextEncoder().encode(`user-${u}`));
    for (let b = 0; b < N; b += BATCH) {
      const slab = new Uint8Array(Math.min(BATCH, N - b) * VALUE_BYTES);
      const recs: RecordInput[] = [];
      for (let i = b; i < Math.min(N, b + BATCH); i++) {
        const value = slab.subarray((i - b) * VALUE_BYTES, (i - b + 1) * VALUE_BYTES);
        fillValue(value, i);
        recs.push({ key: keys[i % keys.length]!, value, timestamp: t0 + i });
      }
      batches.push(recs);
    }

    const part = store.partition(LOG_TOPIC, 0);
    let start = performance.now();
    for (const recs of batches) await part.append(recs);
    const appendMs = performance.now() - start;
    start = performance.now();
    await part.flush();
    const flushMs = performance.now() - start;
    const bytes = part.sizeBytes;
    const payload = N * VALUE_BYTES;
    ctx.log(row('append', `${n0(N)} records (${VALUE_BYTES} B values, ${BATCH} per append) in ${ms(appendMs)}`));
    ctx.log(row('', `${perSec(N, appendMs)} records/s, ${mbps(bytes, appendMs)} MB/s of log (${mbps(payload, appendMs)} MB/s of values)`));
    ctx.log(row('flush (fdatasync)', `${ms(flushMs)}; ${(bytes / 1e6).toFixed(1)} MB in ${part.segments.length} segments`));

    // Read everything back, checking every record.
    start = performance.now();
    let i = 0;
    const expect = new Uint8Array(VALUE_BYTES);
    for await (const r of part.read({ offset: 0 })) {
      fillValue(expect, i);
      if (r.offset !== i || r.timestamp !== t0 + i || !equalBytes(r.value, expect) || !equalBytes(r.key, keys[i % keys.length]!)) {
        throw new Error(`demo: record ${i} read back wrong (offset ${r.offset})`);
      }
      i++;
    }
    const readMs = performance.now() - start;
    if (i !== N) throw new Error(`demo: read ${i} records, wrote ${N}`);
    ctx.log(row('read back, verified', `${n0(N)} records in ${ms(readMs)}: ${perSec(N, readMs)} records/s, ${mbps(bytes, readMs)} MB/s`));

    // Random seeks: one record at an offset, the first record at a timestamp.
    const seeks = Math.min(2000, Math.ceil(N / 10));
    const targets = randoms(seeks, N);
    start = performance.now();
    for (const o of targets) {
      const it = part.read({ offset: o }, { maxRecords: 1 });
      const first = await it.next();
      await it.return(undefined);
      if (first.done || (first.value as StoredRecord).offset !== o) throw new Error(`demo: seek to offset ${o} failed`);
    }
    const seekMs = performance.now() - start;
    ctx.log(row('seek by offset', `${n0(seeks)} random reads of 1 record: ${perSec(seeks, seekMs)} lookups/s`));
    start = performance.now();
    for (const o of targets) {
      const found = await part.offsetForTimestamp(t0 + o);
      if (found !== o) throw new Error(`demo: timestamp ${t0 + o} gave offset ${found}, expected ${o}`);
    }
    const tsMs = performance.now() - start;
    ctx.log(row('seek by timestamp', `${n0(seeks)} random timestamps -> offset: ${perSec(seeks, tsMs)} lookups/s`));

    // Close (clean shutdown marker) and open again: no recovery scan needed.
    const [closeMs, openMs] = await ctx.reopen();
    store = ctx.store;
    const again = store.partition(LOG_TOPIC, 0);
    if (again.logEndOffset !== N) throw new Error(`demo: reopened log ends at ${again.logEndOffset}, expected ${N}`);
    ctx.log(row('close + reopen', `${ms(closeMs)} + ${ms(openMs)} (clean shutdown: indexes loaded, no scan); logEndOffset ${n0(again.logEndOffset)}`));

    const mid = Math.floor(N / 2);
    ctx.commands.push(
      `npx sediment topics describe --dir ${ctx.dir} --topic ${LOG_TOPIC}`,
      `npx sediment consume --dir ${ctx.dir} --topic ${LOG_TOPIC} --partition 0 --offset ${mid} --max 3`,
      `npx sediment consume --dir ${ctx.dir} --topic ${LOG_TOPIC} --partition 0 --timestamp ${t0 + mid} --max 1 --format json`,
      `npx sediment dump ${path.join(ctx.dir, `${LOG_TOPIC}-0`, '00000000000000000000.log')} | head -5`,
      `npx sediment dump ${path.join(ctx.dir, `${LOG_TOPIC}-0`, '00000000000000000000.index')} | head -5`,
      `seq 1 5 | npx sediment produce --dir ${ctx.dir} --topic ${LOG_TOPIC}`,
      `npx sediment verify --dir ${ctx.dir}`,
    );
  },
};

// --- the produce path: pre-framed RecordBatch v2 bytes ---------------------------

export const PRODUCE_TOPIC = 'demo-produce';
/** Bytes per simulated produce request (Kafka's default max.request.size is 1 MiB). */
const REQUEST_BYTES = 1 << 20;

/** Splits concatenated RecordBatch v2 bytes into requests of whole batches of about `max` bytes (a batch is 12 + its batchLength field). */
function splitBatches(bytes: Uint8Array, max: number): Uint8Array[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Uint8Array[] = [];
  let start = 0;
  let pos = 0;
  while (pos < bytes.length) {
    if (pos + 12 > bytes.length) throw new Error(`demo: truncated batch header at byte ${pos}`);
    const size = 12 + dv.getInt32(pos + 8);
    if (size < 61 || pos + size > bytes.length) throw new Error(`demo: bad batch length at byte ${pos}`);
    if (pos > start && pos + size - start > max) { out.push(bytes.subarray(start, pos)); start = pos; }
    pos += size;
  }
  if (pos > start) out.push(bytes.subarray(start, pos));
  return out;
}

export const produceSection: DemoSection = {
  title: 'Produce path (pre-framed RecordBatch v2 bytes, as a mirror or a Kafka produce request sends them)',
  async run(ctx) {
    const store = ctx.store;
    const src = store.partition(LOG_TOPIC, 0);
    const seg = src.segments[0]!;
    const bytes = new Uint8Array(fs.readFileSync(seg.logPath).subarray(0, seg.size));
    const requests = splitBatches(bytes, REQUEST_BYTES);
    if (store.hasTopic(PRODUCE_TOPIC)) await store.deleteTopic(PRODUCE_TOPIC);
    await store.createTopic(PRODUCE_TOPIC, { partitions: 1, config: { segmentBytes: 8 << 20 } });
    const part = store.partition(PRODUCE_TOPIC, 0);
    ctx.log(row('source', `${LOG_TOPIC} segment 0: ${(bytes.length / 1e6).toFixed(1)} MB, ${n0(seg.nextOffset - seg.baseOffset)} records, sent as ${requests.length} request${requests.length === 1 ? '' : 's'} of <= 1 MiB`));

    let start = performance.now();
    let count = 0;
    for (const req of requests) count += part.appendBatchesSync(req).count;
    const appendMs = performance.now() - start;
    start = performance.now();
    await part.flush();
    const flushMs = performance.now() - start;
    if (count !== seg.nextOffset - seg.baseOffset || part.logEndOffset !== count) throw new Error(`demo: produce path wrote ${count} records, expected ${seg.nextOffset - seg.baseOffset}`);
    if (part.sizeBytes !== bytes.length) throw new Error(`demo: produce path wrote ${part.sizeBytes} bytes for ${bytes.length} received`);
    ctx.log(row('appendBatchesSync', `${n0(count)} records in ${ms(appendMs)}: ${perSec(count, appendMs)} records/s, ${mbps(bytes.length, appendMs)} MB/s`));
    ctx.log(row('', `CRCs checked in wasm, base offsets stamped; nothing re-encoded (${n0(part.sizeBytes)} bytes written = bytes received)`));
    ctx.log(row('flush (fdatasync)', ms(flushMs)));

    // The copy reads back as the original: same offsets, keys, values and timestamps.
    const a = src.read({ offset: 0 }, { maxRecords: count });
    let i = 0;
    for await (const r of part.read({ offset: 0 })) {
      const o = (await a.next()).value as StoredRecord;
      if (r.offset !== o.offset || r.timestamp !== o.timestamp || !equalBytes(r.key, o.key!) || !equalBytes(r.value, o.value!)) throw new Error(`demo: produced record ${i} differs from the source`);
      i++;
    }
    await a.return(undefined);
    if (i !== count) throw new Error(`demo: read ${i} produced records, expected ${count}`);
    ctx.log(row('read back, verified', `${n0(i)} records equal to the source`));
    ctx.commands.push(`npx sediment dump ${path.join(ctx.dir, `${PRODUCE_TOPIC}-0`, '00000000000000000000.log')} --records | head -5`);
  },
};

// --- zero-copy reads ---------------------------------------------------------------

export const viewsSection: DemoSection = {
  title: 'Zero-copy reads (Partition.readViews: CRC-checked batch views vs read() record objects)',
  async run(ctx) {
    const part = ctx.store.partition(LOG_TOPIC, 0);
    const N = part.logEndOffset;
    const bytes = part.sizeBytes;
    // Each pass touches every record's value; the best of two passes is shown (the log is in the page cache after the log section).
    const passes: [string, () => Promise<number>][] = [
      ['read()', async () => {
        let n = 0;
        for await (const r of part.read({ offset: 0 })) n += r.value!.length;
        return n;
      }],
      ['readViews()', async () => {
        let n = 0;
        for await (const v of part.readViews({ offset: 0 })) for (let i = 0; i < v.count; i++) n += v.valueAt(i)!.length;
        return n;
      }],
      ['readViews(reuseBuffers)', async () => {
        let n = 0;
        for await (const v of part.readViews({ offset: 0 }, { reuseBuffers: true })) for (let i = 0; i < v.count; i++) n += v.valueAt(i)!.length;
        return n;
      }],
    ];
    const best: number[] = [];
    for (const [label, pass] of passes) {
      let bestMs = Infinity;
      for (let k = 0; k < 2; k++) {
        const start = performance.now();
        const n = await pass();
        bestMs = Math.min(bestMs, performance.now() - start);
        if (n !== N * VALUE_BYTES) throw new Error(`demo: ${label} saw ${n} value bytes, expected ${N * VALUE_BYTES}`);
      }
      best.push(bestMs);
      ctx.log(row(label, `${n0(N)} records in ${ms(bestMs)}: ${perSec(N, bestMs)} records/s, ${mbps(bytes, bestMs)} MB/s`));
    }
    ctx.log(row('', `readViews ${(best[0]! / best[1]!).toFixed(1)}x read(), with reuseBuffers ${(best[0]! / best[2]!).toFixed(1)}x`));
  },
};

// --- dedup -------------------------------------------------------------------------

export const DEDUP_TOPIC = 'demo-dedup';
export const PLAIN_TOPIC = 'demo-nodedup';

export const dedupSection: DemoSection = {
  title: 'Dedup (windowed, by key: duplicates dropped before offsets are assigned)',
  async run(ctx) {
    const M = Math.max(BATCH, Math.min(ctx.records, 100_000));
    const window = 100_000;
    let store = ctx.store;
    for (const t of [DEDUP_TOPIC, PLAIN_TOPIC]) if (store.hasTopic(t)) await store.deleteTopic(t);
    await store.createTopic(DEDUP_TOPIC, { config: { dedup: { by: 'key', window: { count: window } } } });
    await store.createTopic(PLAIN_TOPIC);
    ctx.log(row('topic', `${DEDUP_TOPIC}: dedup { by: 'key', window: { count: ${n0(window)} } }; ${PLAIN_TOPIC}: the same without dedup`));

    // A stream of M records in appends of 1000, 10% duplicates: per append 50
    // repeat a key of the same append, 50 a key of the previous append.
    const enc = new TextEncoder();
    const batches: RecordInput[][] = [];
    const pick = randoms(M, 1 << 30, 0x2545f491);
    let fresh = 0;
    let dups = 0;
    let within = 0;
    let prev: Uint8Array[] = [];
    for (let b = 0; b < M; b += BATCH) {
      const n = Math.min(BATCH, M - b);
      const recs: RecordInput[] = [];
      const keys: Uint8Array[] = [];
      for (let i = 0; i < n; i++) {
        const slot = i % 10;
        let key: Uint8Array;
        if (slot === 9 && keys.length > 0 && (i % 20 === 9 || prev.length === 0)) { key = keys[pick[b + i]! % keys.length]!; dups++; within++; }
        else if (slot === 9 && prev.length > 0) { key = prev[pick[b + i]! % prev.length]!; dups++; }
        else { key = enc.encode(`order-${String(fresh++).padStart(9, '0')}`); keys.push(key); }
        const value = new Uint8Array(VALUE_BYTES);
        fillValue(value, b + i);
        recs.push({ key, value });
      }
      batches.push(recs);
      prev = keys;
    }

    const dd = store.partition(DEDUP_TOPIC, 0);
    // Each run is timed whole and over its second half: the first appends of a
    // run also pay for JIT compilation of their path and the window's first touch.
    const half = batches.length >> 1;
    const halfRecords = batches.slice(half).reduce((a, r) => a + r.length, 0);
    let start = performance.now();
    let mid = start;
    let dropped = 0;
    let expectNext = 0;
    for (let b = 0; b < batches.length; b++) {
      if (b === half) mid = performance.now();
      const r = await dd.append(batches[b]!);
      dropped += r.dropped.length;
      for (const o of r.offsets) if (o !== -1 && o !== expectNext++) throw new Error(`demo: kept offsets not contiguous at ${o}`);
    }
    const dedupMs = performance.now() - start;
    const dedupHalfMs = performance.now() - mid;
    const plain = store.partition(PLAIN_TOPIC, 0);
    start = performance.now();
    mid = start;
    for (let b = 0; b < batches.length; b++) {
      if (b === half) mid = performance.now();
      await plain.append(batches[b]!);
    }
    const plainMs = performance.now() - start;
    const plainHalfMs = performance.now() - mid;
    if (dropped !== dups) throw new Error(`demo: dedup dropped ${dropped} records, ${dups} duplicates were sent`);
    if (dd.logEndOffset !== M - dups) throw new Error(`demo: dedup log ends at ${dd.logEndOffset}, expected ${M - dups}`);
    ctx.log(row('appended', `${n0(M)} records with ${n0(dups)} duplicate keys (${n0(within)} within one append, ${n0(dups - within)} across appends)`));
    ctx.log(row('dropped', `${n0(dropped)} duplicates; kept ${n0(dd.logEndOffset)} at contiguous offsets 0..${n0(dd.logEndOffset - 1)}`));
    const st = (await store.dedupStats(DEDUP_TOPIC))!;
    ctx.log(row('stats', `checked ${n0(st.checked)}, dropped ${n0(st.dropped)}, window ${n0(st.windowSize)} of ${n0(st.count)} (${(st.windowFill * 100).toFixed(1)}% full)`));
    ctx.log(row('dedup on', `${perSec(M, dedupMs)} records/s (${ms(dedupMs)}); second half ${perSec(halfRecords, dedupHalfMs)} records/s`));
    ctx.log(row('dedup off', `${perSec(M, plainMs)} records/s (${ms(plainMs)}); second half ${perSec(halfRecords, plainHalfMs)} records/s`));
    ctx.log(row('', `dedup costs ${(dedupMs / plainMs).toFixed(2)}x the time over the whole run, ${(dedupHalfMs / plainHalfMs).toFixed(2)}x over its second half ` +
      '(the first appends also compile the dedup path and touch the window for the first time)'));

    // After a restart the window is rebuilt from the log: a recent key is still a duplicate.
    const [closeMs, openMs] = await ctx.reopen();
    store = ctx.store;
    const again = store.partition(DEDUP_TOPIC, 0);
    const recent = batches[batches.length - 1]![0]!.key as Uint8Array;
    start = performance.now();
    const r = await again.append([{ key: recent, value: 'again' }, { key: enc.encode('order-new-after-reopen'), value: 'new' }]);
    const firstMs = performance.now() - start;
    if (r.dropped.length !== 1 || r.dropped[0] !== 0 || r.count !== 1) throw new Error(`demo: after reopen the duplicate was not dropped (dropped ${JSON.stringify(r.dropped)})`);
    const st2 = (await store.dedupStats(DEDUP_TOPIC))!;
    ctx.log(row('close + reopen', `${ms(closeMs)} + ${ms(openMs)}; window rebuilt from the log (${n0(st2.rebuildScanned)} records read, ${n0(st2.rebuildEntries)} entries), first append ${ms(firstMs)}`));
    ctx.log(row('after reopen', `duplicate of ${new TextDecoder().decode(recent)} dropped: 1, new key kept at offset ${n0(r.baseOffset)}`));
    ctx.commands.push(`npx sediment topics describe --dir ${ctx.dir} --topic ${DEDUP_TOPIC}`);
  },
};

// --- KV store ------------------------------------------------------------------------

export const KV_NAMESPACE = 'demo';

export const kvSection: DemoSection = {
  title: 'KV store (namespaces on compacted logs: ordered keys, checkpointed index)',
  async run(ctx) {
    const K = Math.max(BATCH, Math.min(ctx.records, 100_000));
    let store = ctx.store;
    const topic = `__kv.${KV_NAMESPACE}`;
    if (store.hasTopic(topic)) await store.deleteTopic(topic);
    let kv = await store.kv(KV_NAMESPACE);
    const enc = new TextEncoder();
    const keyOf = (i: number) => `user:${String(i).padStart(9, '0')}`;
    const valueOf = (i: number) => enc.encode(`{"id":${i},"name":"user ${i}","plan":"${['free', 'pro', 'team'][i % 3]}","score":${(i * 7919) % 1000}}`);
    const ops = Array.from({ length: K }, (_, i) => ({ type: 'put' as const, key: keyOf(i), value: valueOf(i) }));

    let start = performance.now();
    for (let b = 0; b < K; b += BATCH) await kv.batch(ops.slice(b, b + BATCH));
    const putMs = performance.now() - start;
    start = performance.now();
    await kv.flush();
    const flushMs = performance.now() - start;
    ctx.log(row('put', `${n0(K)} keys (batches of ${BATCH}) in ${ms(putMs)}: ${perSec(K, putMs)} puts/s; flush ${ms(flushMs)}`));

    // Random gets, timed alone (keys built before, values checked after).
    const targets = randoms(K, K, 0x1234567);
    const keyList = targets.map(keyOf);
    const values: (Uint8Array | undefined)[] = new Array(K);
    start = performance.now();
    for (let j = 0; j < K; j++) values[j] = await kv.get(keyList[j]!);
    const getMs = performance.now() - start;
    for (let j = 0; j < K; j++) if (!equalBytes(values[j] ?? null, valueOf(targets[j]!))) throw new Error(`demo: kv get ${keyList[j]} wrong`);
    ctx.log(row('get (random, verified)', `${n0(K)} gets in ${ms(getMs)}: ${perSec(K, getMs)} gets/s, ${(getMs * 1000 / K).toFixed(2)} us each`));
    start = performance.now();
    for (let b = 0; b < K; b += BATCH) {
      const vals = await kv.getMany(keyList.slice(b, b + BATCH));
      if (vals.some((v) => v === undefined)) throw new Error('demo: kv getMany missed a key');
    }
    const manyMs = performance.now() - start;
    ctx.log(row('getMany', `${n0(K)} keys in calls of ${BATCH}: ${perSec(K, manyMs)} keys/s`));

    const lo = Math.floor(K / 4);
    const span = Math.max(1, Math.floor(K / 10));
    start = performance.now();
    const entries: KvEntry[] = [];
    for await (const e of kv.range({ gte: keyOf(lo), lt: keyOf(lo + span) })) entries.push(e);
    const rangeMs = performance.now() - start;
    const n = entries.length;
    if (n !== span) throw new Error(`demo: kv range returned ${n} entries, expected ${span}`);
    const dec = new TextDecoder();
    entries.forEach((e, j) => { if (dec.decode(e.key) !== keyOf(lo + j) || !equalBytes(e.value, valueOf(lo + j))) throw new Error(`demo: kv range entry ${j} wrong or out of order`); });
    ctx.log(row('range scan', `[${keyOf(lo)}, ${keyOf(lo + span)}): ${n0(n)} entries in key order in ${ms(rangeMs)}: ${perSec(n, rangeMs)} entries/s`));
    const prefix = keyOf(lo).slice(0, -3);
    start = performance.now();
    const pre = kv.count({ prefix });
    let pn = 0;
    for (const _ of kv.keysSync({ prefix })) pn++;
    const prefixMs = performance.now() - start;
    if (pn !== pre || pn === 0) throw new Error(`demo: kv prefix scan gave ${pn} keys, count ${pre}`);
    ctx.log(row('prefix scan', `"${prefix}": ${n0(pn)} keys in ${ms(prefixMs)}`));

    const del = Math.min(1000, Math.floor(K / 10));
    start = performance.now();
    for (let i = 0; i < del; i++) if (!(await kv.delete(keyOf(i)))) throw new Error(`demo: kv delete ${keyOf(i)} found nothing`);
    const delMs = performance.now() - start;
    const forgotten = keyOf(K - 1);
    if (!(await kv.forget(forgotten))) throw new Error('demo: kv forget found nothing');
    if ((await kv.get(forgotten)) !== undefined) throw new Error('demo: a forgotten key is still visible');
    start = performance.now();
    await kv.flush();
    const flush2Ms = performance.now() - start;
    ctx.log(row('delete + forget', `${n0(del)} deletes in ${ms(delMs)} (${perSec(del, delMs)}/s); forgot ${forgotten} (hidden, kept for audit: ${kv.listForgotten().length}); flush ${ms(flush2Ms)}`));

    const co = await store.consumerOffsets();
    const mid = Math.floor(store.partition(LOG_TOPIC, 0).logEndOffset / 2);
    start = performance.now();
    await co.commitOffset('demo-group', LOG_TOPIC, 0, mid, 'demo');
    const commitMs = performance.now() - start;
    start = performance.now();
    const got = await co.fetchOffset('demo-group', LOG_TOPIC, 0);
    const fetchMs = performance.now() - start;
    if (got?.offset !== mid) throw new Error(`demo: committed offset ${mid}, fetched ${got?.offset}`);
    ctx.log(row('consumer offsets', `group demo-group committed ${LOG_TOPIC}/0 at ${n0(mid)} in ${ms(commitMs)}, fetched in ${ms(fetchMs)}`));

    const [closeMs, openMs] = await ctx.reopen();
    store = ctx.store;
    start = performance.now();
    kv = await store.kv(KV_NAMESPACE);
    const kvOpenMs = performance.now() - start;
    const visible = kv.count();
    if (visible !== K - del - 1) throw new Error(`demo: reopened KV has ${visible} keys, expected ${K - del - 1}`);
    if ((await kv.get(keyOf(0))) !== undefined || !equalBytes((await kv.get(keyOf(del)))!, valueOf(del))) throw new Error('demo: reopened KV reads wrong');
    const load = kv.stats().load;
    ctx.log(row('close + reopen', `${ms(closeMs)} + ${ms(openMs)}; kv('${KV_NAMESPACE}') open ${ms(kvOpenMs)} (${load.fromCheckpoint ? 'from checkpoint' : 'no checkpoint'}, ${n0(load.replayedRecords)} records replayed); ${n0(visible)} keys`));
    ctx.commands.push(
      `npx sediment kv scan --dir ${ctx.dir} --ns ${KV_NAMESPACE} --prefix ${prefix} --limit 3`,
      `npx sediment kv get --dir ${ctx.dir} --ns ${KV_NAMESPACE} ${keyOf(del)}`,
      `npx sediment groups --dir ${ctx.dir}`,
    );
  },
};

// --- tiered storage ----------------------------------------------------------------

export const TIER_TOPIC = 'demo-tier';

export const tierSection: DemoSection = {
  title: 'Tiered storage (closed segments archived to an object store through OpenDAL: fs service here, S3/GCS/Azure alike)',
  async run(ctx) {
    const T = Math.max(BATCH, Math.min(ctx.records, 100_000));
    const storeDir = path.join(ctx.dir, 'tier-store');
    const restoreDir = path.join(ctx.dir, 'tier-restored');
    const bucket = path.join(ctx.dir, 'tier-bucket');
    for (const d of [storeDir, restoreDir, bucket]) fs.rmSync(d, { recursive: true, force: true });
    fs.mkdirSync(bucket, { recursive: true });
    const tier: TierConfig = { service: 'fs', options: { root: path.resolve(bucket) }, prefix: 'demo', autoArchive: false, checkIntervalMs: -1, localRetentionBytes: 0 };
    // About ten segments whatever the size (1 MiB at the default record count).
    const segmentBytes = Math.min(1 << 20, Math.max(16 << 10, T * 12));
    const t0 = Date.now() - T;
    const key = new TextEncoder().encode('sensor-7');
    const expected = (i: number, r: StoredRecord, v: Uint8Array) => { fillValue(v, i); return r.offset === i && r.timestamp === t0 + i && equalBytes(r.value, v) && equalBytes(r.key, key); };

    let store = await Store.open(storeDir, { retentionCheckMs: -1, tier });
    try {
      await store.createTopic(TIER_TOPIC, { config: { segmentBytes } });
      const part = store.partition(TIER_TOPIC, 0);
      // Small appends, so segments roll at about segmentBytes.
      const per = Math.max(10, Math.min(BATCH, Math.floor(T / 50)));
      for (let b = 0; b < T; b += per) {
        const recs: RecordInput[] = [];
        for (let i = b; i < Math.min(T, b + per); i++) {
          const value = new Uint8Array(VALUE_BYTES);
          fillValue(value, i);
          recs.push({ key, value, timestamp: t0 + i });
        }
        await part.append(recs);
      }
      await part.flush();
      const localBefore = part.sizeBytes;
      ctx.log(row('store', `${storeDir} (${n0(T)} records, ${(localBefore / 1e6).toFixed(1)} MB in ${part.segments.length} segments of ${segmentBytes >= 1 << 20 ? '1 MiB' : `${n0(segmentBytes / 1024)} KiB`}); bucket ${bucket}, prefix demo`));

      const t = store.tier!;
      let start = performance.now();
      await t.archiveNow();
      const archiveMs = performance.now() - start;
      const s = t.status(TIER_TOPIC).partitions[0]!;
      const req = t.status().requests;
      if (s.pendingSegments !== 0 || s.uploadedSegments === 0) throw new Error(`demo: archive left ${s.pendingSegments} segments pending, uploaded ${s.uploadedSegments}`);
      ctx.log(row('archive closed segments', `${s.uploadedSegments} segments (log + indexes + manifest: ${n0(req.requests)} requests), ${(req.bytesWritten / 1e6).toFixed(1)} MB in ${ms(archiveMs)}: ${mbps(req.bytesWritten, archiveMs)} MB/s`));
      if (part.localLogStartOffset === 0 || s.evictedSegments === 0) throw new Error('demo: nothing was evicted locally');
      ctx.log(row('evict local copies', `${s.evictedSegments} segments evicted (localRetentionBytes 0): local log now starts at offset ${n0(part.localLogStartOffset)}, ${(part.sizeBytes / 1e6).toFixed(2)} MB local; logStartOffset still ${part.logStartOffset}`));

      start = performance.now();
      let i = 0;
      const v = new Uint8Array(VALUE_BYTES);
      for await (const r of part.read({ offset: 0 })) {
        if (!expected(i, r, v)) throw new Error(`demo: tiered read of record ${i} wrong (offset ${r.offset})`);
        i++;
      }
      const readMs = performance.now() - start;
      if (i !== T) throw new Error(`demo: tiered read gave ${i} records, expected ${T}`);
      ctx.log(row('read from offset 0', `${n0(i)} records (${n0(part.localLogStartOffset)} from the object store, the rest local), verified: ${perSec(i, readMs)} records/s`));
      await t.archiveNow({ roll: true });
    } finally {
      await store.close();
    }

    let start = performance.now();
    store = await Store.restore(restoreDir, tier);
    const restoreMs = performance.now() - start;
    try {
      const part = store.partition(TIER_TOPIC, 0);
      let i = 0;
      const v = new Uint8Array(VALUE_BYTES);
      for await (const r of part.read({ offset: 0 })) {
        if (!expected(i, r, v)) throw new Error(`demo: restored record ${i} differs (offset ${r.offset})`);
        i++;
      }
      if (i !== T || part.logEndOffset !== T) throw new Error(`demo: restored ${i} records (logEndOffset ${part.logEndOffset}), expected ${T}`);
      ctx.log(row('Store.restore', `${restoreDir} from the object store alone in ${ms(restoreMs)} (${mbps(part.sizeBytes, restoreMs)} MB/s): all ${n0(i)} records equal`));
    } finally {
      await store.close();
    }
    const opt = `--service fs --option root=${path.resolve(bucket)} --prefix demo`;
    ctx.commands.push(
      `npx sediment tier status --dir ${storeDir} ${opt}`,
      `npx sediment tier restore --dir /tmp/sediment-restored ${opt}`,
    );
  },
};

/** The demo's sections, run in order on one store. */
export const SECTIONS: DemoSection[] = [logSection, produceSection, viewsSection, dedupSection, kvSection, tierSection];

export interface DemoOptions { dir?: string; records?: number; out?: (line: string) => void }

/** Runs every section; returns the exit code (0, or 4 when another process holds the store). */
export async function runDemo(opts: DemoOptions = {}): Promise<number> {
  const dir = opts.dir ?? 'data';
  const records = opts.records ?? 200_000;
  const out = opts.out ?? ((line: string) => process.stdout.write(line + '\n'));
  if (!Number.isSafeInteger(records) || records < 1 || records > 10_000_000) throw new Error(`--records must be in [1, 10000000], got ${records}`);
  const started = performance.now();
  let store: Store;
  try {
    store = await Store.open(dir, { retentionCheckMs: -1 });
  } catch (err) {
    if (err instanceof StoreLockedError) {
      out(`sediment demo: ${err.message}. Is another demo running?`);
      return 4;
    }
    throw err;
  }
  const ctx: DemoContext = {
    store,
    dir,
    records,
    log: (line = '') => out(line),
    commands: [],
    async reopen() {
      let t = performance.now();
      await ctx.store.close();
      const closeMs = performance.now() - t;
      t = performance.now();
      ctx.store = await Store.open(dir, { retentionCheckMs: -1 });
      return [closeMs, performance.now() - t];
    },
  };
  out(`sediment demo: store at ${path.resolve(dir)} (Node ${process.versions.node}, ${process.platform}/${process.arch})`);
  try {
    for (const s of SECTIONS) {
      out('');
      out(s.title);
      try {
        await s.run(ctx);
      } catch (err) {
        // Shown in place; the error itself goes to stderr and the exit code is 1.
        out(row('FAILED', (err as Error)?.message ?? String(err)));
        throw err;
      }
    }
  } finally {
    await ctx.store.close();
  }
  out('');
  out(`done in ${((performance.now() - started) / 1000).toFixed(1)} s. Explore the data with the CLI:`);
  for (const c of ctx.commands) out(`  ${c}`);
  return 0;
}

function parseArgs(argv: string[]): DemoOptions {
  const o: DemoOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--dir') o.dir = argv[++i];
    else if (a === '--records') o.records = Number(argv[++i]);
    else throw new Error(`usage: node dist/src/demo.js [--dir DIR] [--records N] (unknown argument ${a})`);
  }
  return o;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  runDemo(parseArgs(process.argv.slice(2))).then((code) => { process.exitCode = code; }, (err) => {
    process.stderr.write(`sediment demo: ${err instanceof SedimentError ? err.message : (err as Error)?.stack ?? err}\n`);
    process.exitCode = 1;
  });
}
