// KV compaction: space is reclaimed, reads and writes continue during a
// pass, disabled and forgotten keys survive it, the segment swap is
// crash-safe at every step, and a checkpoint older than a swap is repaired
// by a rescan on open. Also Partition.replaceSegment's contract.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Store } from '../src/store.js';
import { KvStore, KvOptions } from '../src/kv/kv_store.js';
import { SWAP_SUFFIX } from '../src/partition.js';
import { FaultyStorage } from './helpers/faulty_storage.js';
import { tmpDir, cleanupTmp, noSync, segmentBases, batchPositions } from './helpers/log_util.js';

after(cleanupTmp);

const td = new TextDecoder();
const str = (v: Uint8Array | undefined) => (v === undefined ? undefined : td.decode(v));
const OPTS: KvOptions = { segmentBytes: 4096, flushMs: -1, minDirtyRatio: -1, checkpointBytes: -1, clusterRatio: -1, cacheBytes: 0 };

async function open(dir: string, opts: KvOptions = OPTS, storage?: FaultyStorage): Promise<{ store: Store; kv: KvStore }> {
  const store = await Store.open(dir, { retentionCheckMs: -1, ...(storage ? { storage } : {}) });
  return { store, kv: await store.kv('c', opts) };
}

const pdirOf = (dir: string) => path.join(dir, '__kv.c-0');
const val = (i: number, round: number) => `value ${i} round ${round} ${'.'.repeat(i % 40)}`;

function checkModel(kv: KvStore, model: Map<string, string>, where: string): void {
  assert.equal(kv.count(), model.size, `count ${where}`);
  for (const [k, v] of model) assert.equal(str(kv.getSync(k)), v, `${k} ${where}`);
  const keys = [...kv.keysSync()].map((k) => td.decode(k));
  assert.deepEqual(keys, [...model.keys()].sort(), `keys ${where}`);
}

test('compaction reclaims overwritten and deleted data; offsets keep their values; state is unchanged', async () => {
  const dir = tmpDir('kv-comp-');
  let { store, kv } = await open(dir);
  const model = new Map<string, string>();
  for (let round = 0; round < 6; round++) {
    for (let i = 0; i < 150; i++) {
      const k = `key${String(i).padStart(3, '0')}`;
      if (round === 5 && i % 3 === 0) { kv.deleteSync(k); model.delete(k); } else { kv.putSync(k, val(i, round)); model.set(k, val(i, round)); }
    }
  }
  const before = kv.stats();
  assert.ok(before.segments > 10);
  const st = await kv.compact();
  const afterSt = kv.stats();
  assert.ok(st.recordsDropped > 500, JSON.stringify(st));
  assert.ok(st.rewritten + st.removed > 0);
  assert.ok(afterSt.logBytes < before.logBytes / 2, `${afterSt.logBytes} vs ${before.logBytes}`);
  assert.equal(afterSt.logEndOffset, before.logEndOffset, 'offsets are never reassigned');
  checkModel(kv, model, 'after compaction');
  // Batches keep their base offsets; offsets have gaps; every record read through the log API is a live one.
  const p = store.partition('__kv.c', 0);
  let prev = -1;
  for await (const r of p.read({ offset: p.logStartOffset })) {
    assert.ok(r.offset > prev);
    prev = r.offset;
  }
  // A second pass right away has nothing to do.
  const again = await kv.compact();
  assert.equal(again.rewritten + again.removed, 0);
  await store.close();
  ({ store, kv } = await open(dir));
  checkModel(kv, model, 'after reopen');
  assert.equal(kv.stats().load.rescannedSegments, 0);
  await store.close();
  // Without the checkpoint the compacted log alone still gives the same state.
  fs.rmSync(path.join(pdirOf(dir), 'kv.checkpoint'));
  ({ store, kv } = await open(dir));
  checkModel(kv, model, 'after full replay');
  await store.close();
});

test('reads and writes continue during a compaction pass, and none is lost', async () => {
  const dir = tmpDir('kv-comp-');
  const { store, kv } = await open(dir, { ...OPTS, segmentBytes: 64 * 1024 });
  const model = new Map<string, string>();
  const N = 2000;
  for (let round = 0; round < 4; round++) {
    kv.batchSync(Array.from({ length: N }, (_, i) => ({ type: 'put' as const, key: `k${i}`, value: val(i, round) })));
    for (let i = 0; i < N; i++) model.set(`k${i}`, val(i, round));
  }
  await kv.checkpoint();
  let done = false;
  const pass = kv.compact().then((s) => { done = true; return s; });
  let steps = 0;
  let round = 100;
  // Interleave writes and reads with the pass until it finishes.
  while (!done) {
    for (let j = 0; j < 20; j++) {
      const i = (steps * 37 + j * 101) % N;
      const k = `k${i}`;
      if (j % 7 === 0) { kv.deleteSync(k); model.delete(k); } else { kv.putSync(k, val(i, round)); model.set(k, val(i, round)); }
      const probe = `k${(i * 13) % N}`;
      assert.equal(str(kv.getSync(probe)), model.get(probe), `read of ${probe} during compaction`);
    }
    round++;
    steps++;
    await new Promise((r) => setImmediate(r));
  }
  const st = await pass;
  assert.ok(steps > 1, 'the pass yielded to the event loop');
  assert.ok(st.rewritten + st.removed > 0, JSON.stringify(st));
  checkModel(kv, model, 'after the pass');
  await store.close();
  const re = await open(dir);
  checkModel(re.kv, model, 'after reopen');
  await re.store.close();
});

test('a log reader in the middle of a segment keeps reading it while compaction replaces it', async () => {
  const dir = tmpDir('kv-comp-');
  const { store, kv } = await open(dir);
  for (let round = 0; round < 3; round++) for (let i = 0; i < 100; i++) kv.putSync(`k${i}`, val(i, round));
  await kv.flush();
  const p = store.partition('__kv.c', 0);
  const it = p.read({ offset: 0 }, { maxRecords: 300 });
  const first = await it.next();
  assert.equal(first.value!.offset, 0);
  await kv.compact();
  let n = 1;
  let last = 0;
  for (;;) {
    const r = await it.next();
    if (r.done) break;
    assert.ok(r.value.offset > last);
    last = r.value.offset;
    n++;
  }
  assert.ok(n > 1);
  await store.close();
});

test('disabled and forgotten keys survive compaction and reopen; a forgotten value is kept until the key is written', async () => {
  const dir = tmpDir('kv-comp-');
  let { store, kv } = await open(dir);
  kv.putSync('dis', 'disabled value');
  kv.disableSync('dis');
  kv.disableSync('ghost');
  kv.putSync('forg', 'hidden value');
  kv.forgetSync('forg');
  for (let round = 0; round < 8; round++) for (let i = 0; i < 100; i++) kv.putSync(`fill${i}`, val(i, round));
  for (let pass = 0; pass < 3; pass++) {
    await kv.compact();
    for (let i = 0; i < 100; i++) kv.putSync(`fill${i}`, val(i, 10 + pass));
  }
  const check = (k: KvStore) => {
    assert.equal(str(k.getSync('dis')), 'disabled value');
    assert.equal(k.isDisabled('dis'), true);
    assert.equal(k.isDisabled('ghost'), true);
    assert.throws(() => k.putSync('ghost', 'x'), { code: 'ERR_KEY_DISABLED' });
    assert.equal(k.getSync('forg'), undefined);
    assert.equal(str(k.readForgotten('forg')), 'hidden value');
    assert.deepEqual(k.listForgotten().map((x) => td.decode(x)), ['forg']);
  };
  check(kv);
  await store.close();
  ({ store, kv } = await open(dir));
  check(kv);
  await store.close();
  fs.rmSync(path.join(pdirOf(dir), 'kv.checkpoint'));
  ({ store, kv } = await open(dir));
  check(kv);
  // Once written, the hidden value is released and compaction drops it.
  kv.putSync('forg', 'new');
  kv.enableSync('ghost');
  for (let round = 0; round < 4; round++) for (let i = 0; i < 100; i++) kv.putSync(`fill${i}`, val(i, 20 + round));
  await kv.compact();
  const logs = fs.readdirSync(pdirOf(dir)).filter((n) => n.endsWith('.log')).map((n) => fs.readFileSync(path.join(pdirOf(dir), n)));
  assert.equal(logs.some((b) => b.includes(Buffer.from('hidden value'))), false, 'the released value is gone from disk');
  assert.equal(logs.some((b) => b.includes(Buffer.from('disabled value'))), true);
  assert.deepEqual(kv.listForgotten(), []);
  await store.close();
  ({ store, kv } = await open(dir));
  assert.equal(str(kv.getSync('forg')), 'new');
  assert.equal(kv.isDisabled('ghost'), false);
  assert.equal(kv.isDisabled('dis'), true);
  await store.close();
});

test('background compaction runs when enough of the log is dead', async () => {
  const dir = tmpDir('kv-comp-');
  const { store, kv } = await open(dir, { ...OPTS, minDirtyRatio: 0.5, segmentBytes: 256 * 1024, checkpointBytes: 512 * 1024 });
  const big = 'x'.repeat(1000);
  for (let round = 0; round < 30; round++) for (let i = 0; i < 200; i++) kv.putSync(`k${i}`, `${round}:${big}`);
  const deadline = Date.now() + 10_000;
  while (kv.stats().compactionPasses === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  // Let a pass that is running finish.
  await kv.checkpoint();
  const st = kv.stats();
  assert.ok(st.compactionPasses > 0, 'a pass ran in the background');
  assert.equal(st.maintenanceError, null);
  assert.ok(st.logBytes < 30 * 200 * 1000 / 2, `log is ${st.logBytes} bytes`);
  assert.ok(st.checkpointOffset > 0, 'a background checkpoint was written');
  for (let i = 0; i < 200; i++) assert.equal(str(kv.getSync(`k${i}`)), `29:${big}`);
  await store.close();
});

for (const when of ['before the swap rename', 'after the swap rename'] as const) {
  test(`a crash ${when} of a compaction leaves a consistent store (a checkpoint older than the swap is repaired)`, async () => {
    const dir = tmpDir('kv-comp-');
    const fsx = new FaultyStorage(noSync);
    let { store, kv } = await open(dir, OPTS, fsx);
    const model = new Map<string, string>();
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 80; i++) {
        kv.putSync(`k${i}`, val(i, round)); model.set(`k${i}`, val(i, round));
        // Keys written once, between overwritten ones: every segment keeps some live records.
        if (i % 10 === 0) { kv.putSync(`stable${round}-${i}`, `s${i}`); model.set(`stable${round}-${i}`, `s${i}`); }
      }
    }
    kv.putSync('forg', 'hidden');
    kv.forgetSync('forg');
    await kv.checkpoint();
    for (let i = 0; i < 80; i += 2) { kv.putSync(`k${i}`, val(i, 9)); model.set(`k${i}`, val(i, 9)); }
    await kv.flush();
    const undoCp = fsx.failOn({ op: 'open', path: 'kv.checkpoint', times: Infinity });
    const undoSwap = when === 'before the swap rename' ? fsx.failOn({ op: 'rename', path: /\.log\.swap$/, times: 1 }) : () => undefined;
    await assert.rejects(kv.compact());
    undoCp();
    undoSwap();
    const pdir = pdirOf(dir);
    if (when === 'before the swap rename') assert.ok(fs.readdirSync(pdir).some((n) => n.endsWith(`.log${SWAP_SUFFIX}`)), 'a durable .swap file waits');
    fsx.crash();
    fs.rmSync(path.join(dir, '.lock'), { force: true });
    ({ store, kv } = await open(dir, OPTS, fsx));
    assert.equal(fs.readdirSync(pdir).some((n) => n.endsWith(SWAP_SUFFIX) || n.endsWith('.cleaned')), false, 'the swap was finished on open');
    const load = kv.stats().load;
    assert.equal(load.fromCheckpoint, true);
    assert.ok(load.rescannedSegments > 0, 'positions from the old checkpoint were repaired');
    checkModel(kv, model, 'after the crash');
    assert.equal(str(kv.readForgotten('forg')), 'hidden');
    await store.close();
  });
}

test('every step of the swap protocol is crash-safe (crash after each storage operation of a pass)', async () => {
  const base = tmpDir('kv-comp-');
  const pristine = path.join(base, 'pristine');
  const model = new Map<string, string>();
  {
    const { store, kv } = await open(pristine);
    for (let round = 0; round < 3; round++) for (let i = 0; i < 60; i++) { kv.putSync(`k${i}`, val(i, round)); model.set(`k${i}`, val(i, round)); }
    kv.deleteSync('k5'); model.delete('k5');
    await kv.checkpoint();
    await store.close();
  }
  let crashedAt = 0;
  for (let n = 0; ; n++) {
    const dir = path.join(base, `run${n}`);
    fs.cpSync(pristine, dir, { recursive: true });
    const fsx = new FaultyStorage(noSync);
    let { store, kv } = await open(dir, OPTS, fsx);
    // Fail the n-th mutating storage operation of the pass, then crash.
    let ops = 0;
    let failed = false;
    for (const op of ['rename', 'remove', 'syncDir', 'datasync', 'write', 'truncate'] as const) {
      fsx.failOn({ op, times: Infinity, path: () => { ops++; if (ops === n + 1) { failed = true; return true; } return false; } });
    }
    const r = await kv.compact().then(() => 'ok', () => 'failed');
    fsx.clearFaults();
    if (!failed) { assert.equal(r, 'ok'); await store.close(); break; }
    fsx.crash();
    fs.rmSync(path.join(dir, '.lock'), { force: true });
    ({ store, kv } = await open(dir, OPTS, fsx));
    checkModel(kv, model, `crash at storage operation ${n + 1}`);
    assert.equal(segmentBases(pdirOf(dir)).length > 0, true);
    await store.close();
    crashedAt++;
  }
  assert.ok(crashedAt > 10, `crashed at ${crashedAt} points`);
});

test('Partition.replaceSegment refuses the active segment and foreign files; compacted batches verify', async () => {
  const dir = tmpDir('kv-comp-');
  const { store, kv } = await open(dir);
  for (let round = 0; round < 3; round++) for (let i = 0; i < 60; i++) kv.putSync(`k${i}`, val(i, round));
  const p = store.partition('__kv.c', 0);
  await assert.rejects(p.replaceSegment(p.active, null), { code: 'ERR_INVALID_ARGUMENT' });
  await assert.rejects(p.replaceSegment(p.segments[0]!, path.join(base(dir), 'elsewhere.log')), { code: 'ERR_INVALID_ARGUMENT' });
  await kv.compact();
  await kv.flush();
  // Every batch of every compacted segment still has a valid CRC: the log engine reads them all back.
  let n = 0;
  for await (const _ of p.read({ offset: p.logStartOffset })) n++;
  assert.ok(n >= 60);
  for (const b of segmentBases(pdirOf(dir))) {
    const bs = batchPositions(path.join(pdirOf(dir), `${String(b).padStart(20, '0')}.log`));
    for (let i = 1; i < bs.length; i++) assert.ok(bs[i]!.baseOffset > bs[i - 1]!.lastOffset);
  }
  await store.close();
});

function base(d: string): string { return path.dirname(d); }

test('clustering copies values into key order; a range then needs few reads; state, forget and disable survive', async () => {
  const dir = tmpDir('kv-clu-');
  let { store, kv } = await open(dir, { ...OPTS, segmentBytes: 16 * 1024 });
  const model = new Map<string, string>();
  const n = 600;
  // Random order: values end up scattered over many segments.
  for (let j = 0; j < n; j++) {
    const i = (j * 7919) % n;
    const k = `key${String(i).padStart(4, '0')}`;
    kv.putSync(k, val(i, 0));
    model.set(k, val(i, 0));
  }
  kv.forgetSync('key0100');
  model.delete('key0100');
  kv.disableSync('key0200');
  kv.putSync('tail', 'in the active segment');
  model.set('tail', 'in the active segment');
  const st = await kv.cluster();
  assert.ok(st.copied > n / 2, JSON.stringify(st));
  checkModel(kv, model, 'after clustering');
  assert.equal(str(kv.readForgotten('key0100')), val(100, 0));
  assert.equal(kv.isDisabled('key0200'), true);
  // The copies are at the end of the log, in key order.
  const p = store.partition('__kv.c', 0);
  const tailKeys: string[] = [];
  for await (const r of p.read({ offset: p.logEndOffset - st.copied - 1 })) if (r.value !== null) tailKeys.push(td.decode(r.key!));
  const copied = tailKeys.slice(-st.copied);
  assert.deepEqual(copied, [...copied].sort());
  // A second pass only copies what was in the active segment during the first; a third finds nothing.
  assert.ok((await kv.cluster()).copied < 60);
  assert.equal((await kv.cluster()).copied, 0);
  assert.equal(kv.stats().clusteredValues, kv.stats().values, 'every value is in a key-ordered run or marked in place');
  const before = kv.stats().logBytes;
  await kv.compact();
  assert.ok(kv.stats().logBytes < before, 'old copies were reclaimed');
  await store.close();
  ({ store, kv } = await open(dir));
  checkModel(kv, model, 'after reopen');
  assert.equal(str(kv.readForgotten('key0100')), val(100, 0));
  assert.equal(kv.isDisabled('key0200'), true);
  await store.close();
  fs.rmSync(path.join(pdirOf(dir), 'kv.checkpoint'));
  ({ store, kv } = await open(dir));
  checkModel(kv, model, 'after full replay');
  assert.equal(str(kv.readForgotten('key0100')), val(100, 0));
  await store.close();
});

test('values written in key order are marked in place, not copied', async () => {
  const dir = tmpDir('kv-clu-');
  const { store, kv } = await open(dir, { ...OPTS, segmentBytes: 16 * 1024 });
  for (let b = 0; b < 2000; b += 100) kv.batchSync(Array.from({ length: 100 }, (_, j) => ({ type: 'put' as const, key: `k${String(b + j).padStart(5, '0')}`, value: val(b + j, 0) })));
  const end = kv.stats().logEndOffset;
  const st = await kv.cluster();
  assert.equal(st.copied, 0);
  assert.ok(st.inPlace > 1500, JSON.stringify(st));
  assert.equal(kv.stats().logEndOffset, end, 'nothing written');
  await store.close();
});

test('background clustering runs after a random-order load; a crash in the middle of a pass loses nothing', async () => {
  const dir = tmpDir('kv-clu-');
  const fsx = new FaultyStorage(noSync);
  let { store, kv } = await open(dir, { ...OPTS, segmentBytes: 64 * 1024, clusterRatio: 0.25 }, fsx);
  const model = new Map<string, string>();
  const n = 6000;
  for (let j = 0; j < n; j++) {
    const i = (j * 7919) % n;
    kv.putSync(`k${i}`, val(i, 1));
    model.set(`k${i}`, val(i, 1));
  }
  await kv.flush();
  await kv.maintain();
  assert.ok(kv.stats().clusterPasses > 0, 'maintenance clustered');
  assert.ok(kv.stats().clusteredValues > n / 2);
  checkModel(kv, model, 'after background clustering');
  // Now interrupt a pass: fail an append in the middle, then crash.
  for (let j = 0; j < n; j++) { const i = (j * 7919) % n; kv.putSync(`k${i}`, val(i, 2)); model.set(`k${i}`, val(i, 2)); }
  await kv.flush();
  // The pass copies in batches of 4096 values: the first batch is written, the second fails.
  let writes = 0;
  fsx.failOn({ op: 'write', times: Infinity, path: (p) => p.endsWith('.log') && ++writes > 1 });
  await assert.rejects(kv.cluster());
  fsx.clearFaults();
  fsx.crash();
  fs.rmSync(path.join(dir, '.lock'), { force: true });
  ({ store, kv } = await open(dir, { ...OPTS, segmentBytes: 64 * 1024 }, fsx));
  checkModel(kv, model, 'after a crash during clustering');
  await store.close();
});
