// Store-level behaviour of the log engine: partition directories copied from
// a Kafka broker, topic names, the writer lock across processes, and bad
// input (typed errors, nothing written).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { Store } from '../src/store.js';
import {
  InvalidArgumentError, OffsetOutOfRangeError, RecordTooLargeError, StoreLockedError, ReadOnlyError, TopicExistsError,
  TopicNotFoundError, SedimentError,
} from '../src/errors.js';
import { RECOVERY_POINT_FILE, CLEAN_SHUTDOWN_FILE } from '../src/partition.js';
import { refBatch, refRecords, RefRecord } from './fixtures/reference.js';
import {
  tmpDir, cleanupTmp, openPartition, partitionDir, readAll, segPath, testOpts, dirSizes, valueOf, assertRecord,
} from './helpers/log_util.js';

after(cleanupTmp);

const here = path.dirname(fileURLToPath(import.meta.url));
const lockChild = path.join(here, 'fixtures', 'log_lock_child.js');
const utf8 = new TextEncoder();

// --- Kafka-copied partition directories ------------------------------------------

interface KafkaRecord { offset: number; timestamp: number; key: string | null; value: string; headers: [string, string][] }

/**
 * Writes a Kafka partition directory with the independent reference encoder:
 * segments of batches (one gzip batch, one transaction control batch, a
 * producer id and leader epoch set), .log files only. Returns the records a
 * consumer sees.
 */
function writeKafkaPartition(pdir: string, segments: number[][]): KafkaRecord[] {
  fs.mkdirSync(pdir, { recursive: true });
  const visible: KafkaRecord[] = [];
  let offset = 0;
  let batchNo = 0;
  for (const batchSizes of segments) {
    const base = offset;
    const parts: Uint8Array[] = [];
    for (const n of batchSizes) {
      const first = 1_600_000_000_000 + offset * 1000;
      const control = batchNo === 3;
      const recs: RefRecord[] = [];
      const out: KafkaRecord[] = [];
      for (let i = 0; i < n; i++) {
        const o = offset + i;
        const key = control ? '\u0000\u0000\u0000\u0001' : o % 3 === 0 ? null : `key-${o}`;
        const value = control ? '\u0000\u0000\u0000\u0000\u0000\u0000' : `kafka value ${o}`;
        const headers: [string, string][] = o % 4 === 0 ? [['trace', `t${o}`]] : [];
        recs.push({ timestampDelta: BigInt(i * 1000), offsetDelta: i, key: key === null ? null : utf8.encode(key), value: utf8.encode(value),
          headers: headers.map(([k, v]) => ({ key: utf8.encode(k), value: utf8.encode(v) })) });
        out.push({ offset: o, timestamp: first + i * 1000, key, value, headers });
      }
      const gzip = batchNo === 2;
      const plain = refRecords(recs);
      parts.push(refBatch({
        baseOffset: BigInt(offset), partitionLeaderEpoch: 7, attributes: (gzip ? 1 : 0) | (control ? 0x30 : 0),
        lastOffsetDelta: n - 1, baseTimestamp: BigInt(first), maxTimestamp: BigInt(first + (n - 1) * 1000),
        producerId: 4242n, producerEpoch: 1, baseSequence: offset, recordCount: n,
      }, gzip ? gzipSync(plain) : plain));
      if (!control) visible.push(...out);
      offset += n;
      batchNo++;
    }
    fs.writeFileSync(path.join(pdir, String(base).padStart(20, '0') + '.log'), Buffer.concat(parts));
  }
  // Files a broker keeps next to the segments; they are not ours and must be ignored.
  fs.writeFileSync(path.join(pdir, 'leader-epoch-checkpoint'), '0\n1\n7 0\n');
  fs.writeFileSync(path.join(pdir, 'partition.metadata'), 'version: 0\ntopic_id: AAAAAAAAAAAAAAAAAAAAAA\n');
  return visible;
}

function checkKafkaRecords(got: { offset: number; timestamp: number; key: Uint8Array | null; value: Uint8Array | null; headers: { key: string; value: Uint8Array | null }[] }[], want: KafkaRecord[]): void {
  assert.equal(got.length, want.length);
  const dec = new TextDecoder();
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    assert.equal(g.offset, w.offset);
    assert.equal(g.timestamp, w.timestamp);
    assert.equal(g.key === null ? null : dec.decode(g.key), w.key);
    assert.equal(dec.decode(g.value!), w.value);
    assert.deepEqual(g.headers.map((h) => [h.key, dec.decode(h.value!)]), w.headers);
  }
}

for (const variant of ['only .log files', 'stale preallocated indexes', 'indexes from other data'] as const) {
  test(`a partition directory copied from Kafka (${variant}) opens with the default config and reads`, async () => {
    const dir = tmpDir();
    const pdir = path.join(dir, 'orders.v1-0');
    const want = writeKafkaPartition(pdir, [[5, 3, 4, 1, 6], [2, 7, 3], [4, 4]]);
    const bases = [0, 19, 31];
    if (variant === 'stale preallocated indexes') {
      // A live broker's active segment: indexes preallocated (zeros) past their entries.
      for (const b of bases) {
        fs.writeFileSync(segPath(pdir, b, '.index'), Buffer.alloc(64 * 1024));
        fs.writeFileSync(segPath(pdir, b, '.timeindex'), Buffer.alloc(64 * 1024 + 4));
      }
    } else if (variant === 'indexes from other data') {
      const idx = Buffer.alloc(16);
      idx.writeUInt32BE(2, 0); idx.writeUInt32BE(70, 4); idx.writeUInt32BE(9, 8); idx.writeUInt32BE(300, 12);
      const tidx = Buffer.alloc(12);
      tidx.writeBigInt64BE(1_500_000_000_000n, 0); tidx.writeUInt32BE(1, 8);
      for (const b of bases) { fs.writeFileSync(segPath(pdir, b, '.index'), idx); fs.writeFileSync(segPath(pdir, b, '.timeindex'), tidx); }
    }
    const store = await Store.open(dir, testOpts());
    try {
      assert.deepEqual(store.listTopics(), ['orders.v1']);
      const p = store.partition('orders.v1', 0);
      assert.equal(p.config.segmentBytes, 1 << 30, 'default config');
      assert.equal(p.logStartOffset, 0);
      assert.equal(p.logEndOffset, 39);
      assert.equal(p.segments.length, 3);
      checkKafkaRecords(await readAll(p, { offset: 0 }), want);
      // Every offset, and every timestamp, by lookup.
      for (const w of want) {
        const r = await readAll(p, { offset: w.offset }, { maxRecords: 1 });
        assert.equal(r[0]!.offset, w.offset);
        assert.equal(await p.offsetForTimestamp(w.timestamp), w.offset);
      }
      // The control batch's offset (12) is skipped by reads but not reused.
      assert.equal(want.some((w) => w.offset === 12), false);
      const r12 = await readAll(p, { offset: 12 }, { maxRecords: 1 });
      assert.equal(r12[0]!.offset, 13);
      const res = await p.append([{ value: 'from sediment' }]);
      assert.equal(res.baseOffset, 39);
    } finally {
      await store.close();
    }
    // The broker's own files are left alone; our metadata and indexes were added.
    assert.ok(fs.existsSync(path.join(pdir, 'leader-epoch-checkpoint')));
    assert.ok(fs.existsSync(path.join(dir, 'sediment.json')));
    for (const b of bases) assert.equal(fs.statSync(segPath(pdir, b, '.index')).size % 8, 0);
    const again = await Store.open(dir, testOpts({ readOnly: true }));
    try {
      const p = again.partition('orders.v1', 0);
      assert.equal(p.logEndOffset, 40);
      checkKafkaRecords((await readAll(p, { offset: 0 })).slice(0, want.length), want);
    } finally {
      await again.close();
    }
  });
}

test('a Kafka-copied directory opens read-only without writing anything', async () => {
  const dir = tmpDir();
  const pdir = path.join(dir, 'events-0');
  const want = writeKafkaPartition(pdir, [[3, 3], [2]]);
  const before = dirSizes(pdir);
  const store = await Store.open(dir, testOpts({ readOnly: true }));
  try {
    const p = store.partition('events', 0);
    checkKafkaRecords(await readAll(p), want);
    await assert.rejects(p.append([{ value: 'x' }]), ReadOnlyError);
  } finally {
    await store.close();
  }
  assert.deepEqual(dirSizes(pdir), before);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['events-0']);
  // A copy of partition 3 alone: a writer creates partitions 0-2 empty; a
  // read-only open cannot, and says which directory is missing.
  fs.renameSync(pdir, path.join(dir, 'events-3'));
  await assert.rejects(Store.open(dir, testOpts({ readOnly: true })), (e: unknown) => e instanceof InvalidArgumentError && /events-0 is missing/.test(e.message));
  const writer = await Store.open(dir, testOpts());
  try {
    assert.equal(writer.topic('events').partitions.length, 4);
    assert.equal(writer.partition('events', 0).logEndOffset, 0);
    checkKafkaRecords(await readAll(writer.partition('events', 3)), want);
  } finally {
    await writer.close();
  }
});

// --- topic names -----------------------------------------------------------------

test('topic names follow Kafka rules and can never act as a path', async () => {
  const dir = tmpDir();
  const store = await Store.open(dir, testOpts());
  try {
    const bad: unknown[] = ['', '.', '..', '../x', 'a/b', 'a\\b', 'x'.repeat(250), 'sp ace', 'tab\t', 'é', 'a\u0000b', 7, null, undefined, '/abs'];
    for (const name of bad) {
      await assert.rejects(store.createTopic(name as string), (e: unknown) => e instanceof InvalidArgumentError && e.code === 'ERR_INVALID_ARGUMENT', String(name));
    }
    assert.deepEqual(fs.readdirSync(dir).filter((n) => n !== '.lock'), []);
    for (const name of ['a', 'A-b_c.d', 'x'.repeat(249), '...', '-0', 'topic-1']) await store.createTopic(name);
    assert.deepEqual(store.listTopics(), ['-0', '...', 'A-b_c.d', 'a', 'topic-1', 'x'.repeat(249)]);
    await assert.rejects(store.createTopic('a'), TopicExistsError);
    assert.throws(() => store.topic('nope'), TopicNotFoundError);
    assert.throws(() => store.partition('a', 1), InvalidArgumentError);
    assert.throws(() => store.partition('a', -1), InvalidArgumentError);
    await assert.rejects(store.createTopic('p', { partitions: 0 }), InvalidArgumentError);
    await assert.rejects(store.createTopic('p', { partitions: 1.5 }), InvalidArgumentError);
    await assert.rejects(store.createTopic('p', { config: { segmentBytes: 10 } }), InvalidArgumentError);
    await assert.rejects(store.createTopic('p', { config: { nope: 1 } as never }), InvalidArgumentError);
  } finally {
    await store.close();
  }
  // Reopen: 'topic-1' partition 0 lives in topic-1-0 and is not confused with topic 'topic' partition 1.
  const again = await Store.open(dir, testOpts());
  assert.deepEqual(again.listTopics(), ['-0', '...', 'A-b_c.d', 'a', 'topic-1', 'x'.repeat(249)]);
  await again.close();
});

test('a tampered sediment.json cannot point a topic outside the store', async () => {
  const dir = tmpDir();
  const store = await Store.open(dir, testOpts());
  await store.createTopic('ok');
  await store.close();
  const outside = path.join(path.dirname(dir), `escape-${path.basename(dir)}`);
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'sediment.json'), 'utf8'));
  meta.topics[`../${path.basename(outside)}`] = { partitions: 1, config: {} };
  fs.writeFileSync(path.join(dir, 'sediment.json'), JSON.stringify(meta));
  await assert.rejects(Store.open(dir, testOpts()), InvalidArgumentError);
  assert.equal(fs.existsSync(`${outside}-0`), false);
  assert.equal(fs.existsSync(path.join(dir, '.lock')), false, 'the lock is released after a failed open');
  const meta2 = JSON.parse(fs.readFileSync(path.join(dir, 'sediment.json'), 'utf8'));
  delete meta2.topics[`../${path.basename(outside)}`];
  meta2.topics.ok.partitions = 1e9;
  fs.writeFileSync(path.join(dir, 'sediment.json'), JSON.stringify(meta2));
  await assert.rejects(Store.open(dir, testOpts()), InvalidArgumentError);
});

test('partition directories with absurd numbers are not adopted', async () => {
  const dir = tmpDir();
  fs.mkdirSync(path.join(dir, 'huge-99999999'));
  fs.mkdirSync(path.join(dir, 'not a topic-0'));
  fs.mkdirSync(path.join(dir, 'padded-01'));
  const store = await Store.open(dir, testOpts());
  try {
    assert.deepEqual(store.listTopics(), []);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['.lock', 'huge-99999999', 'not a topic-0', 'padded-01']);
  } finally {
    await store.close();
  }
});

// --- the writer lock ---------------------------------------------------------------

interface ChildResult { status: number | null; out: { ok: boolean; code?: string; name?: string; message?: string; ends?: number[] } }

function runChild(dir: string, mode: 'write' | 'read'): ChildResult {
  const r = spawnSync(process.execPath, [lockChild, dir, mode], { encoding: 'utf8', timeout: 30_000 });
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  let out: ChildResult['out'];
  try { out = JSON.parse(line); } catch { throw new Error(`child printed ${JSON.stringify(r.stdout)}; stderr ${r.stderr}`); }
  return { status: r.status, out };
}

test('a second writer in another process gets StoreLockedError; read-only opens work alongside', async () => {
  const dir = tmpDir();
  const { store, p } = await openPartition(dir);
  try {
    await p.append([{ value: 'a' }, { value: 'b' }]);
    await p.flush();
    const w = runChild(dir, 'write');
    assert.equal(w.status, 3);
    assert.equal(w.out.ok, false);
    assert.equal(w.out.code, 'ERR_STORE_LOCKED');
    assert.equal(w.out.name, 'StoreLockedError');
    assert.match(w.out.message!, new RegExp(`locked by another writer \\(pid ${process.pid}\\).*readOnly`));
    const r = runChild(dir, 'read');
    assert.equal(r.status, 0);
    assert.deepEqual(r.out, { ...r.out, ok: true, ends: [2] });
    // In this process too: a second writer is refused, a reader is not.
    await assert.rejects(Store.open(dir, testOpts()), (e: unknown) => e instanceof StoreLockedError && e.holderPid === process.pid);
    const reader = await Store.open(dir, testOpts({ readOnly: true }));
    assert.equal(reader.partition('t', 0).logEndOffset, 2);
    await assert.rejects(reader.createTopic('x'), ReadOnlyError);
    await reader.close();
    assert.ok(fs.existsSync(path.join(dir, '.lock')), 'a reader does not touch the lock');
  } finally {
    await store.close();
  }
  assert.equal(fs.existsSync(path.join(dir, '.lock')), false);
  // Once released, another process can write.
  const w2 = runChild(dir, 'write');
  assert.equal(w2.status, 0);
  assert.deepEqual(w2.out.ends, [2]);
});

test('a writer in another process holds the lock until it exits; this process is refused meanwhile', async () => {
  const dir = tmpDir();
  const { store } = await openPartition(dir);
  await store.close();
  const child = spawn(process.execPath, [lockChild, dir, 'write', 'hold'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (d) => { buf += d; if (buf.includes('\n')) resolve(buf.trim()); });
    child.on('exit', () => reject(new Error(`child exited early: ${buf}`)));
  });
  const info = JSON.parse(line);
  assert.equal(info.ok, true);
  try {
    await assert.rejects(Store.open(dir, testOpts()), (e: unknown) => e instanceof StoreLockedError && e.holderPid === info.pid && e.code === 'ERR_STORE_LOCKED');
  } finally {
    child.stdin.end();
    await new Promise((resolve) => child.on('exit', resolve));
  }
  const store2 = await Store.open(dir, testOpts());
  await store2.close();
});

test('a stale lock (dead pid) is taken over', async () => {
  const dir = tmpDir();
  const { store, p } = await openPartition(dir);
  await p.append([{ value: 'x' }]);
  await store.close();
  // A pid that existed and is gone.
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  const deadPid = Number(dead.stdout);
  assert.ok(deadPid > 0);
  fs.writeFileSync(path.join(dir, '.lock'), String(deadPid));
  const again = await Store.open(dir, testOpts());
  try {
    assert.equal(fs.readFileSync(path.join(dir, '.lock'), 'utf8'), String(process.pid));
    assert.equal(again.partition('t', 0).logEndOffset, 1);
  } finally {
    await again.close();
  }
  // Unreadable lock contents are treated as stale too.
  fs.writeFileSync(path.join(dir, '.lock'), 'garbage');
  const third = await Store.open(dir, testOpts());
  await third.close();
  // A takeover cut short by a crash leaves .lock.takeover: stale too, unless its process lives.
  fs.writeFileSync(path.join(dir, '.lock'), String(deadPid));
  fs.writeFileSync(path.join(dir, '.lock.takeover'), String(deadPid));
  const fourth = await Store.open(dir, testOpts());
  await fourth.close();
  assert.deepEqual(fs.readdirSync(dir).filter((n) => n.startsWith('.lock')), []);
  fs.writeFileSync(path.join(dir, '.lock'), String(deadPid));
  fs.writeFileSync(path.join(dir, '.lock.takeover'), String(process.pid));
  await assert.rejects(Store.open(dir, testOpts()), (e: unknown) => e instanceof StoreLockedError && e.holderPid === process.pid);
});

test('processes racing to take over a stale lock: exactly one wins', async () => {
  const dir = tmpDir();
  const { store } = await openPartition(dir);
  await store.close();
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  for (let round = 0; round < 3; round++) {
    fs.writeFileSync(path.join(dir, '.lock'), dead.stdout);
    const kids = Array.from({ length: 4 }, () => spawn(process.execPath, [lockChild, dir, 'write', 'hold'], { stdio: ['pipe', 'pipe', 'inherit'] }));
    const results = await Promise.all(kids.map((k) => new Promise<{ ok: boolean; code?: string }>((resolve, reject) => {
      let buf = '';
      k.stdout.on('data', (d) => { buf += d; if (buf.includes('\n')) resolve(JSON.parse(buf.trim())); });
      k.on('exit', (code) => { if (!buf.includes('\n')) reject(new Error(`child exited with ${code}`)); });
    })));
    for (const k of kids) k.stdin.end();
    await Promise.all(kids.map((k) => new Promise((r) => (k.exitCode !== null ? r(null) : k.on('exit', r)))));
    assert.equal(results.filter((r) => r.ok).length, 1, `round ${round}: ${JSON.stringify(results)}`);
    assert.ok(results.filter((r) => !r.ok).every((r) => r.code === 'ERR_STORE_LOCKED'));
    assert.equal(fs.existsSync(path.join(dir, '.lock')), false, 'the winner released the lock');
  }
});

// --- bad input ----------------------------------------------------------------------

test('bad input gives typed errors and writes nothing', async () => {
  const dir = tmpDir();
  const { store, p } = await openPartition(dir, { maxMessageBytes: 4096 });
  try {
    await p.append([{ value: 'first' }]);
    await p.flush();
    const pdir = partitionDir(dir);
    const sizes = dirSizes(pdir);
    const good = { value: 'ok' };
    const cases: [string, unknown, new (...a: never[]) => SedimentError][] = [
      ['not an array', { value: 'x' }, InvalidArgumentError],
      ['a string', 'abc', InvalidArgumentError],
      ['null record', [good, null], InvalidArgumentError],
      ['number record', [good, 5], InvalidArgumentError],
      ['bytes as a record', [good, new Uint8Array(3)], InvalidArgumentError],
      ['no value field', [good, { key: 'k' }], InvalidArgumentError],
      ['number value', [good, { value: 12 }], InvalidArgumentError],
      ['object value', [good, { value: { a: 1 } }], InvalidArgumentError],
      ['ArrayBuffer value', [good, { value: new ArrayBuffer(4) }], InvalidArgumentError],
      ['DataView value', [good, { value: new DataView(new ArrayBuffer(4)) }], InvalidArgumentError],
      ['array value', [good, { value: [1, 2] }], InvalidArgumentError],
      ['number key', [good, { key: 1, value: 'v' }], InvalidArgumentError],
      ['bad header value', [good, { value: 'v', headers: { h: 3 } }], InvalidArgumentError],
      ['bad header shape', [good, { value: 'v', headers: [[1, 'x']] }], InvalidArgumentError],
      ['headers a string', [good, { value: 'v', headers: 'h' }], InvalidArgumentError],
      ['fractional timestamp', [good, { value: 'v', timestamp: 1.5 }], InvalidArgumentError],
      ['NaN timestamp', [good, { value: 'v', timestamp: NaN }], InvalidArgumentError],
      ['string timestamp', [good, { value: 'v', timestamp: '5' }], InvalidArgumentError],
      ['negative timestamp', [good, { value: 'v', timestamp: -5 }], InvalidArgumentError],
      ['unsafe timestamp', [good, { value: 'v', timestamp: 2 ** 60 }], InvalidArgumentError],
      ['value over max.message.bytes', [good, { value: new Uint8Array(4096) }], RecordTooLargeError],
      ['key over max.message.bytes', [good, { key: 'k'.repeat(5000), value: null }], RecordTooLargeError],
      ['headers over max.message.bytes', [good, { value: 'v', headers: { big: 'h'.repeat(4100) } }], RecordTooLargeError],
    ];
    for (const [label, input, type] of cases) {
      assert.throws(() => p.appendSync(input as never), (e: unknown) => e instanceof type && typeof (e as SedimentError).code === 'string', label);
      await assert.rejects(p.append(input as never), type, label);
      assert.equal(p.logEndOffset, 1, label);
      assert.deepEqual(dirSizes(pdir), sizes, `${label}: no file changed`);
    }
    const tooLarge = (() => { try { p.appendSync([{ value: new Uint8Array(5000) }]); } catch (e) { return e; } })() as RecordTooLargeError;
    assert.equal(tooLarge.code, 'ERR_RECORD_TOO_LARGE');
    assert.equal(tooLarge.limit, 4096);
    assert.ok(tooLarge.size > 5000);
    // The partition still works after all that.
    assert.equal((await p.append([{ value: 'second' }])).baseOffset, 1);
    const readErrors: [string, unknown, unknown, new (...a: never[]) => SedimentError][] = [
      ['negative offset', { offset: -1 }, {}, InvalidArgumentError],
      ['fractional offset', { offset: 0.5 }, {}, InvalidArgumentError],
      ['NaN offset', { offset: NaN }, {}, InvalidArgumentError],
      ['string offset', { offset: '0' }, {}, InvalidArgumentError],
      ['huge offset', { offset: 2 ** 53 }, {}, InvalidArgumentError],
      ['no position', {}, {}, InvalidArgumentError],
      ['null position', null, {}, InvalidArgumentError],
      ['fractional timestamp', { timestamp: 0.5 }, {}, InvalidArgumentError],
      ['past the end', { offset: 3 }, {}, OffsetOutOfRangeError],
      ['maxRecords 0', { offset: 0 }, { maxRecords: 0 }, InvalidArgumentError],
      ['maxRecords fraction', { offset: 0 }, { maxRecords: 1.5 }, InvalidArgumentError],
      ['maxBytes negative', { offset: 0 }, { maxBytes: -1 }, InvalidArgumentError],
    ];
    for (const [label, from, opts, type] of readErrors) {
      await assert.rejects(readAll(p, from as never, opts as never), type, label);
    }
    const oor = await readAll(p, { offset: 3 }).catch((e) => e) as OffsetOutOfRangeError;
    assert.equal(oor.code, 'ERR_OFFSET_OUT_OF_RANGE');
    assert.equal(oor.offset, 3);
    assert.equal(oor.logStartOffset, 0);
    assert.equal(oor.logEndOffset, 2);
    // Reading at logEndOffset is allowed (nothing yet).
    assert.deepEqual(await readAll(p, { offset: 2 }), []);
    const recs = await readAll(p);
    assert.deepEqual(recs.map((r) => new TextDecoder().decode(r.value!)), ['first', 'second']);
  } finally {
    await store.close();
  }
});

test('records are split into batches of at most max.message.bytes; a record exactly at the limit is accepted', async () => {
  const dir = tmpDir();
  const { store, p } = await openPartition(dir, { maxMessageBytes: 1024 });
  try {
    // The limit applies to the framed batch bound; find the largest value that fits.
    let ok = 0;
    for (let n = 1024; n > 0; n--) {
      try { p.appendSync([{ value: new Uint8Array(n) }]); ok = n; break; } catch (e) { assert.ok(e instanceof RecordTooLargeError); }
    }
    assert.ok(ok > 900, `largest accepted value ${ok}`);
    assert.equal(p.logEndOffset, 1);
    const many = Array.from({ length: 40 }, (_, i) => ({ value: valueOf(i, 100) }));
    const res = await p.append(many);
    assert.equal(res.count, 40);
    assert.deepEqual(res.offsets, many.map((_, i) => 1 + i));
    const recs = await readAll(p, { offset: 1 });
    recs.forEach((r, i) => assertRecord(r, 1 + i, valueOf(i, 100)));
    // Every stored batch is within the limit.
    const log = fs.readFileSync(segPath(partitionDir(dir), 0, '.log'));
    for (let pos = 0; pos < log.length;) {
      const size = log.readInt32BE(pos + 8) + 12;
      assert.ok(size <= 1024, `batch of ${size} bytes`);
      pos += size;
    }
  } finally {
    await store.close();
  }
});

test('the recovery point and clean-shutdown marker are where docs/log.md says', async () => {
  const dir = tmpDir();
  const { store, p } = await openPartition(dir);
  await p.append([{ value: 'a' }]);
  await p.flush();
  const pdir = partitionDir(dir);
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(pdir, RECOVERY_POINT_FILE), 'utf8')), { offset: 1 });
  assert.equal(fs.existsSync(path.join(pdir, CLEAN_SHUTDOWN_FILE)), false);
  await store.close();
  assert.equal(fs.existsSync(path.join(pdir, CLEAN_SHUTDOWN_FILE)), true);
  assert.equal(fs.existsSync(path.join(dir, '.lock')), false);
  const names = fs.readdirSync(pdir).sort();
  assert.deepEqual(names, ['.clean-shutdown', '00000000000000000000.index', '00000000000000000000.log', '00000000000000000000.timeindex', 'recovery-point']);
});
