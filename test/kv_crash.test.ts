// Crash behaviour of the KV store: a batch() torn at any byte is wholly
// absent after recovery (and wholly present when it reached the disk);
// flushed mutations always survive; a damaged or stale checkpoint falls back
// to replaying the log; damage in flushed log data is reported, never
// returned as data.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Store } from '../src/store.js';
import { KvStore, KvOptions } from '../src/kv/kv_store.js';
import { CHECKPOINT_FILE } from '../src/kv/kv_checkpoint.js';
import { FaultyStorage } from './helpers/faulty_storage.js';
import { tmpDir, cleanupTmp, noSync, batchPositions } from './helpers/log_util.js';

after(cleanupTmp);

const td = new TextDecoder();
const str = (v: Uint8Array | undefined) => (v === undefined ? undefined : td.decode(v));
const OPTS: KvOptions = { flushMs: -1, minDirtyRatio: -1, checkpointBytes: -1 };

async function open(dir: string, storage?: FaultyStorage, opts: KvOptions = OPTS): Promise<{ store: Store; kv: KvStore }> {
  const store = await Store.open(dir, { retentionCheckMs: -1, ...(storage ? { storage } : {}) });
  return { store, kv: await store.kv('x', opts) };
}

function snapshot(kv: KvStore): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of kv.rangeSync()) out[td.decode(e.key)] = td.decode(e.value);
  return out;
}

const BATCH = [
  { type: 'put' as const, key: 'a', value: 'A2' },
  { type: 'del' as const, key: 'b' },
  { type: 'put' as const, key: 'c', value: 'C1' },
  { type: 'put' as const, key: 'd', value: 'D1' },
  { type: 'put' as const, key: 'e', value: 'E1-' + 'e'.repeat(40) },
  { type: 'del' as const, key: 'f' },
];
const BEFORE = { a: 'A1', b: 'B1', f: 'F1', g: 'G1' };
const AFTER = { a: 'A2', c: 'C1', d: 'D1', e: 'E1-' + 'e'.repeat(40), g: 'G1' };

async function prepare(dir: string, fsx: FaultyStorage): Promise<{ store: Store; kv: KvStore }> {
  const o = await open(dir, fsx);
  for (const [k, v] of Object.entries(BEFORE)) o.kv.putSync(k, v);
  await o.kv.flush();
  return o;
}

test('batch() torn at every byte is absent after recovery; whole, it is present; flushed data always survives', async () => {
  // The size of the batch on disk, from a reference run.
  const ref = tmpDir('kv-crash-');
  {
    const { store, kv } = await prepare(ref, new FaultyStorage(noSync));
    kv.batchSync(BATCH);
    await store.close();
  }
  const bs = batchPositions(path.join(ref, '__kv.x-0', '00000000000000000000.log'));
  const size = bs[bs.length - 1]!.size;
  assert.ok(size > 100);
  const cuts = new Set<number>();
  for (let n = 0; n <= 72; n++) cuts.add(n);
  for (let n = 72; n < size; n += 5) cuts.add(n);
  for (let n = size - 3; n <= size; n++) cuts.add(n);
  let absent = 0;
  let present = 0;
  for (const cut of cuts) {
    const dir = tmpDir('kv-crash-');
    const fsx = new FaultyStorage(noSync);
    const w = await prepare(dir, fsx);
    assert.deepEqual(snapshot(w.kv), BEFORE);
    // The batch is the last write: the crash keeps its first `cut` bytes.
    w.kv.batchSync(BATCH);
    assert.deepEqual(snapshot(w.kv), AFTER);
    fsx.crash({ tornLastWrite: cut });
    fs.rmSync(path.join(dir, '.lock'), { force: true });
    const r = await open(dir, fsx);
    const got = snapshot(r.kv);
    if (cut === size) { assert.deepEqual(got, AFTER, `cut ${cut}`); present++; } else { assert.deepEqual(got, BEFORE, `cut ${cut} of ${size}`); absent++; }
    // The store goes on normally.
    r.kv.putSync('h', 'H');
    await r.store.close();
    const again = await open(dir, fsx);
    assert.equal(str(again.kv.getSync('h')), 'H');
    await again.store.close();
  }
  assert.equal(present, 1);
  assert.ok(absent > 80);
});

test('a batch is one record batch: every operation shares one CRC', async () => {
  const dir = tmpDir('kv-crash-');
  const { store, kv } = await open(dir);
  kv.batchSync(BATCH);
  await store.close();
  const bs = batchPositions(path.join(dir, '__kv.x-0', '00000000000000000000.log'));
  assert.equal(bs.length, 1);
  assert.equal(bs[0]!.lastOffset - bs[0]!.baseOffset + 1, BATCH.length);
});

test('unflushed writes may be lost in a crash, flushed ones never; each write is all or nothing', async () => {
  const dir = tmpDir('kv-crash-');
  const fsx = new FaultyStorage(noSync);
  let { store, kv } = await open(dir, fsx);
  for (let i = 0; i < 100; i++) kv.putSync(`f${i}`, `flushed ${i}`);
  await kv.flush();
  for (let i = 0; i < 100; i++) kv.putSync(`u${i}`, `unflushed ${i}`);
  fsx.crash();
  fs.rmSync(path.join(dir, '.lock'), { force: true });
  ({ store, kv } = await open(dir, fsx));
  for (let i = 0; i < 100; i++) assert.equal(str(kv.getSync(`f${i}`)), `flushed ${i}`);
  assert.equal(kv.getSync('u0'), undefined);
  assert.equal(kv.count(), 100);
  await store.close();
});

test('a damaged, truncated or stale checkpoint is not used: the log is replayed', async () => {
  const damage: [string, (file: string, dir: string) => void][] = [
    ['bit flip', (f) => { const b = fs.readFileSync(f); b[b.length >> 1] ^= 0x10; fs.writeFileSync(f, b); }],
    ['truncated', (f) => { const b = fs.readFileSync(f); fs.writeFileSync(f, b.subarray(0, b.length - 9)); }],
    ['garbage', (f) => { fs.writeFileSync(f, Buffer.from('not a checkpoint at all, just some text')); }],
    ['empty', (f) => { fs.writeFileSync(f, Buffer.alloc(0)); }],
    ['ahead of the log', (_f, dir) => {
      // The log lost its tail (e.g. restored from an older copy) but the checkpoint did not.
      const pdir = path.join(dir, '__kv.x-0');
      const log = path.join(pdir, '00000000000000000000.log');
      const bs = batchPositions(log);
      fs.truncateSync(log, bs[bs.length - 5]!.position);
      fs.rmSync(path.join(pdir, '00000000000000000000.index'), { force: true });
      fs.rmSync(path.join(pdir, '.clean-shutdown'), { force: true });
    }],
  ];
  for (const [name, fn] of damage) {
    const dir = tmpDir('kv-crash-');
    let { store, kv } = await open(dir);
    for (let i = 0; i < 50; i++) kv.putSync(`k${i}`, `v${i}`);
    await store.close();
    fn(path.join(dir, '__kv.x-0', CHECKPOINT_FILE), dir);
    ({ store, kv } = await open(dir));
    const load = kv.stats().load;
    assert.equal(load.fromCheckpoint, false, name);
    assert.ok(load.checkpointProblem, name);
    const n = name === 'ahead of the log' ? 45 : 50;
    assert.equal(kv.count(), n, name);
    for (let i = 0; i < n; i++) assert.equal(str(kv.getSync(`k${i}`)), `v${i}`, name);
    await store.close();
    // A good checkpoint was written on close.
    ({ store, kv } = await open(dir));
    assert.equal(kv.stats().load.fromCheckpoint, true, name);
    await store.close();
  }
});

test('damage inside flushed log data is reported as CorruptionError, never returned', async () => {
  const dir = tmpDir('kv-crash-');
  let { store, kv } = await open(dir);
  for (let i = 0; i < 50; i++) kv.putSync(`k${i}`, `value number ${i}`);
  await store.close();
  fs.rmSync(path.join(dir, '__kv.x-0', CHECKPOINT_FILE));
  const log = path.join(dir, '__kv.x-0', '00000000000000000000.log');
  const b = fs.readFileSync(log);
  const at = b.indexOf(Buffer.from('value number 20'));
  b[at + 2] ^= 0x01;
  fs.writeFileSync(log, b);
  // Flushed and cleanly closed: recovery trusts the segment, and the KV replay checks every batch CRC.
  for (const readOnly of [true, false]) {
    const st = await Store.open(dir, { readOnly, retentionCheckMs: -1 });
    try {
      await assert.rejects(st.kv('x'), (e: Error & { code?: string; message: string }) => e.code === 'ERR_CORRUPTION' && /CRC/.test(e.message));
    } finally {
      await st.close();
    }
  }
  void store; void kv;
});
