// Adversarial cases of the KV store, each one a bug that was found and fixed
// (docs/kv.md is the contract): the test names say what must hold.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Store } from '../src/store.js';
import { KvStore, KvOptions } from '../src/kv/kv_store.js';
import { Kernels, compileKernels } from '../src/kernels.js';
import { FaultyStorage } from './helpers/faulty_storage.js';
import { tmpDir, cleanupTmp, noSync, batchPositions } from './helpers/log_util.js';

after(cleanupTmp);

const NS = 'adv';
const BASE: KvOptions = { segmentBytes: 1024, flushMs: -1, minDirtyRatio: -1, checkpointBytes: -1, clusterRatio: -1, cacheBytes: 0 };

async function open(dir: string, opts: KvOptions = BASE, storage?: FaultyStorage): Promise<{ store: Store; kv: KvStore }> {
  const store = await Store.open(dir, { retentionCheckMs: -1, ...(storage ? { storage } : {}) });
  return { store, kv: await store.kv(NS, opts) };
}

const logFiles = (dir: string) => fs.readdirSync(path.join(dir, `__kv.${NS}-0`)).filter((f) => f.endsWith('.log')).sort().map((f) => path.join(dir, `__kv.${NS}-0`, f));

/** Every key's visible value (hex), forgotten keys and their hidden values. */
function state(kv: KvStore): { visible: Record<string, number[]>; forgotten: Record<string, number[]> } {
  const visible: Record<string, number[]> = {};
  for (const e of kv.rangeSync()) visible[Buffer.from(e.key).toString('hex')] = [e.value.length, e.value[0] ?? -1, e.value[e.value.length - 1] ?? -1];
  const forgotten: Record<string, number[]> = {};
  for (const k of kv.listForgotten()) {
    const v = kv.readForgotten(k)!;
    forgotten[Buffer.from(k).toString('hex')] = [v.length, v[0] ?? -1, v[v.length - 1] ?? -1];
  }
  return { visible, forgotten };
}

test('clustering a namespace with a small batch limit splits its copies into batches within the limit (a forgotten key keeps put and flags in one batch; a value too large to copy stays put)', async () => {
  const opts: KvOptions = { ...BASE, maxBatchBytes: 8192 };
  const dir = tmpDir('kv-adv-');
  const fsx = new FaultyStorage(noSync);
  let { store, kv } = await open(dir, opts, fsx);
  // Values of about half the limit, out of key order: the pass's chunk (half the limit of value bytes, plus the value that
  // crosses it) used to be appended as one call the partition had to split, after which the KV store threw ERR_INTERNAL
  // with the copies already written (and a forgotten key's put and flags record in different batches).
  const order = [5, 1, 9, 3, 7, 2, 8, 4, 6, 0];
  for (const i of order) kv.putSync(`k${i}`, new Uint8Array(4050).fill(i));
  // The largest value a put accepts at this limit, on a key then forgotten: its copy would need a flags record too.
  let largest = 0;
  for (let n = 8000; n < 8192; n++) {
    try { kv.putSync('zz', new Uint8Array(n).fill(0xee)); largest = n; } catch (err) { assert.equal((err as { code?: string }).code, 'ERR_RECORD_TOO_LARGE'); break; }
  }
  assert.ok(largest > 8000);
  assert.equal(kv.forgetSync('zz'), true);
  kv.putSync('k3f', new Uint8Array(3000).fill(0x3f));
  assert.equal(kv.forgetSync('k3f'), true);
  kv.putSync('last', 'x'); // rolls past the values: they are all in closed segments
  const before = state(kv);
  await kv.flush();
  const endBefore = kv.stats().logEndOffset;
  const st = await kv.cluster();
  assert.equal(st.copied + st.inPlace, order.length + 2, 'every value outside the active segment was visited');
  assert.ok(st.copied >= order.length, `copied ${st.copied}`);
  assert.ok(kv.stats().logEndOffset > endBefore);
  assert.deepEqual(state(kv), before);
  // Every batch in the log is within the limit, and the forgotten keys' copies kept their flags record next to the put.
  for (const f of logFiles(dir)) for (const b of batchPositions(f)) assert.ok(b.size <= 8192, `batch of ${b.size} bytes in ${f}`);
  // A later pass copies only what was in the active segment before ('last'); the value too large to copy is not retried.
  await kv.cluster();
  const again = await kv.cluster();
  assert.equal(again.copied + again.inPlace, 0, 'nothing is visited twice');
  assert.deepEqual(state(kv), before);
  // A crash tearing the last write at any byte never resurrects a forgotten key, nor loses a flushed one.
  await kv.flush();
  kv.putSync('k1', new Uint8Array(10).fill(1));
  const size = fs.statSync(logFiles(dir).at(-1)!).size;
  assert.ok(size > 0);
  for (const cut of [0, 1, 30, 61]) {
    fsx.crash({ tornLastWrite: cut });
    fs.rmSync(path.join(dir, '.lock'), { force: true });
    ({ store, kv } = await open(dir, opts, fsx));
    assert.deepEqual(state(kv), before, `crash tearing ${cut} bytes`);
    await store.close();
    ({ store, kv } = await open(dir, opts, fsx));
  }
  // The copies are what a reopen (from the checkpoint, and from the log alone) finds.
  await store.close();
  fs.rmSync(path.join(dir, `__kv.${NS}-0`, 'kv.checkpoint'), { force: true });
  ({ store, kv } = await open(dir, opts, fsx));
  assert.equal(kv.stats().load.fromCheckpoint, false);
  assert.deepEqual(state(kv), before);
  await store.close();
});

test('a string key with a lone surrogate is refused (typed), never taken as U+FFFD: two different strings are never one key', async () => {
  const dir = tmpDir('kv-adv-');
  const { store, kv } = await open(dir);
  const lone = ['a\uD800', 'a\uDC00', '\uDBFFz', 'x\uDC00\uD800', 'é\uD83D'];
  for (const k of lone) {
    const end = kv.stats().logEndOffset;
    for (const call of [() => kv.putSync(k, 'v'), () => kv.getSync(k), () => kv.hasSync(k), () => kv.deleteSync(k), () => kv.disableSync(k),
      () => kv.forgetSync(k), () => kv.updateSync(k, () => 'v'), () => kv.batchSync([{ type: 'put', key: k, value: 'v' }]),
      () => [...kv.rangeSync({ prefix: k })], () => [...kv.keysSync({ gte: k })], () => kv.count({ lt: k })]) {
      assert.throws(call, (err: unknown) => (err as { code?: string }).code === 'ERR_INVALID_ARGUMENT', JSON.stringify(k));
    }
    assert.equal(kv.stats().logEndOffset, end, 'nothing written');
  }
  // Well-formed strings, including U+FFFD itself and surrogate pairs, are their UTF-8 bytes as before.
  kv.putSync('a\uFFFD', 'replacement char');
  kv.putSync('a\uD83D\uDE00', 'emoji');
  assert.equal(new TextDecoder().decode(kv.getSync(new Uint8Array([0x61, 0xef, 0xbf, 0xbd]))), 'replacement char');
  assert.equal(new TextDecoder().decode(kv.getSync(new Uint8Array([0x61, 0xf0, 0x9f, 0x98, 0x80]))), 'emoji');
  assert.equal(kv.count(), 2);
  // Group ids of consumer offsets are keys too.
  const offsets = await store.consumerOffsets();
  await assert.rejects(offsets.commitOffset('g\uD800', 't', 0, 5), (err: unknown) => (err as { code?: string }).code === 'ERR_INVALID_ARGUMENT');
  await offsets.commitOffset('g\uFFFD', 't', 0, 5);
  await assert.rejects(offsets.fetchOffset('g\uDBFF', 't', 0), (err: unknown) => (err as { code?: string }).code === 'ERR_INVALID_ARGUMENT');
  assert.equal((await offsets.fetchOffset('g\uFFFD', 't', 0))?.offset, 5);
  await store.close();
});

test('commitOffsets checks the group id even when there is nothing to commit', async () => {
  const dir = tmpDir('kv-adv-');
  const store = await Store.open(dir, { retentionCheckMs: -1 });
  const offsets = await store.consumerOffsets();
  for (const bad of ['', 'g\0h', 'x'.repeat(1025), 42 as unknown as string]) {
    await assert.rejects(offsets.commitOffsets(bad, []), (err: unknown) => (err as { code?: string }).code === 'ERR_INVALID_ARGUMENT', JSON.stringify(bad));
  }
  await offsets.commitOffsets('g', []);
  assert.deepEqual(offsets.listGroups(), []);
  await store.close();
});

test('a second close() (e.g. store.close() during kv.close()) waits for the close in progress: when it resolves the namespace is closed and its checkpoint written', async () => {
  const dir = tmpDir('kv-adv-');
  const cp = path.join(dir, `__kv.${NS}-0`, 'kv.checkpoint');
  let { store, kv } = await open(dir);
  for (let i = 0; i < 200; i++) kv.putSync(`k${i}`, `v${i}`);
  const first = kv.close();
  await kv.close();
  assert.equal(kv.isClosed, true);
  assert.ok(fs.existsSync(cp));
  await first;
  await store.close();
  ({ store, kv } = await open(dir));
  assert.equal(kv.stats().load.fromCheckpoint, true);
  assert.equal(kv.stats().load.replayedRecords, 0);
  for (let i = 200; i < 400; i++) kv.putSync(`k${i}`, `v${i}`);
  const closing = kv.close();
  await store.close();
  assert.equal(kv.isClosed, true, 'store.close() returned before the namespace was closed');
  await closing;
  ({ store, kv } = await open(dir));
  assert.equal(kv.stats().load.fromCheckpoint, true);
  assert.equal(kv.stats().load.replayedRecords, 0, 'the checkpoint written on close covers every write');
  assert.equal(kv.count(), 400);
  await store.close();
});

test('deleting the topic of an open namespace closes it: no stale reads from the dead instance, and store.kv() creates the namespace afresh', async () => {
  const dir = tmpDir('kv-adv-');
  const store = await Store.open(dir, { retentionCheckMs: -1 });
  const kv = await store.kv(NS, { ...BASE, cacheBytes: 1 << 20 });
  kv.putSync('a', '1');
  kv.putSync('b', '2');
  assert.equal(new TextDecoder().decode(kv.getSync('a')), '1'); // cached
  await store.deleteTopic(`__kv.${NS}`);
  assert.equal(kv.isClosed, true);
  for (const call of [() => kv.getSync('a'), () => kv.getSync('b'), () => kv.count(), () => kv.putSync('c', '3'), () => [...kv.keysSync()]]) {
    assert.throws(call, (err: unknown) => (err as { code?: string }).code === 'ERR_CLOSED');
  }
  const fresh = await store.kv(NS, BASE);
  assert.notEqual(fresh, kv);
  assert.equal(fresh.count(), 0);
  assert.equal(fresh.getSync('a'), undefined);
  fresh.putSync('z', '26');
  await store.close();
  const again = await Store.open(dir, { retentionCheckMs: -1 });
  const kv2 = await again.kv(NS, BASE);
  assert.deepEqual([...kv2.keysSync()].map((k) => new TextDecoder().decode(k)), ['z']);
  await again.close();
});

test('store.kv() while the namespace is closing waits for the close and opens it again (never hands out the closing instance)', async () => {
  const dir = tmpDir('kv-adv-');
  const store = await Store.open(dir, { retentionCheckMs: -1 });
  const kv = await store.kv(NS, BASE);
  for (let i = 0; i < 100; i++) kv.putSync(`k${i}`, `v${i}`);
  const closing = kv.close();
  const [a, b] = await Promise.all([store.kv(NS, BASE), store.kv(NS, BASE)]);
  assert.equal(kv.isClosed, true);
  assert.notEqual(a, kv);
  assert.equal(a, b, 'one instance per name');
  a.putSync('k100', 'v100');
  assert.equal(a.count(), 101);
  assert.equal(a.stats().load.fromCheckpoint, true, 'it loaded the checkpoint the close wrote');
  await closing;
  await store.close();
});

test('compaction does not hold a buffer of the whole batch limit per namespace: many compacted namespaces fit in wasm memory', async () => {
  // Every open namespace's compactor kept a buffer of its batch limit (16 MiB by default, 32 MiB once rounded) after its
  // first pass: about 120 compacted namespaces exhausted the 4 GiB of wasm memory (WasmMemoryError for every partition).
  const k = new Kernels(await compileKernels());
  const dir = tmpDir('kv-adv-');
  const store = await Store.open(dir, { retentionCheckMs: -1, storage: noSync, kernels: k });
  const start = k.u8.buffer.byteLength;
  const n = 12;
  for (let i = 0; i < n; i++) {
    const kv = await store.kv(`n${i}`, { segmentBytes: 1024, flushMs: -1, minDirtyRatio: -1, checkpointBytes: -1, clusterRatio: -1 });
    for (let j = 0; j < 12; j++) kv.putSync(`k${j % 3}`, 'x'.repeat(300));
    const st = await kv.compact();
    assert.ok(st.rewritten + st.removed > 0, 'the pass rewrote something');
    assert.equal(kv.stats().keys, 3);
  }
  const grown = k.u8.buffer.byteLength - start;
  assert.ok(grown < n * 8 * 1024 * 1024, `wasm memory grew by ${(grown / 2 ** 20).toFixed(0)} MiB for ${n} namespaces`);
  // A pass over large batches still works (its buffer grows for it, and is given back after the pass).
  const big = await store.kv('big', { segmentBytes: 1 << 20, flushMs: -1, minDirtyRatio: -1, checkpointBytes: -1, clusterRatio: -1 });
  for (let r = 0; r < 3; r++) big.batchSync(Array.from({ length: 4 }, (_, j) => ({ type: 'put' as const, key: `b${j}`, value: new Uint8Array(300_000).fill(r) })));
  big.putSync('tail', 'x');
  const st = await big.compact();
  assert.ok(st.rewritten + st.removed > 0);
  for (let j = 0; j < 4; j++) assert.deepEqual(big.getSync(`b${j}`), new Uint8Array(300_000).fill(2));
  await store.close();
});
