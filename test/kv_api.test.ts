// KV store API: reads and writes, bytewise order and range bounds, update,
// batch limits, bad input (typed errors, nothing written), disable and
// forget, persistence across reopen, read-only opens.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Store } from '../src/store.js';
import { KvStore, RangeOptions } from '../src/kv/kv_store.js';
import { KeyDisabledError } from '../src/kv/kv_errors.js';
import { MAX_KEY_BYTES, MAX_VALUE_BYTES, prefixEnd, keyString, bytesToByteString } from '../src/kv/kv_keys.js';
import { CHECKPOINT_FILE } from '../src/kv/kv_checkpoint.js';
import { tmpDir, cleanupTmp, testOpts } from './helpers/log_util.js';

after(cleanupTmp);

const te = new TextEncoder();
const td = new TextDecoder();
const b = (s: string) => te.encode(s);
const str = (v: Uint8Array | undefined) => (v === undefined ? undefined : td.decode(v));

async function open(dir: string, opts: Parameters<Store['kv']>[1] = {}): Promise<{ store: Store; kv: KvStore }> {
  const store = await Store.open(dir, testOpts());
  const kv = await store.kv('t', { flushMs: -1, ...opts });
  return { store, kv };
}

test('put, get, has, delete, getMany, count; string and byte keys are the same key', async () => {
  const { store, kv } = await open(tmpDir('kv-'));
  await kv.put('alpha', 'one');
  await kv.put(b('beta'), b('two'));
  assert.equal(str(await kv.get(b('alpha'))), 'one');
  assert.equal(str(await kv.get('beta')), 'two');
  assert.equal(await kv.get('gamma'), undefined);
  assert.equal(await kv.has('alpha'), true);
  assert.equal(await kv.has('gamma'), false);
  assert.deepEqual((await kv.getMany(['beta', 'nope', 'alpha'])).map(str), ['two', undefined, 'one']);
  assert.equal(kv.count(), 2);
  await kv.put('alpha', '');
  assert.deepEqual(await kv.get('alpha'), new Uint8Array(0), 'empty values are values');
  assert.equal(kv.count(), 2);
  assert.equal(await kv.delete('alpha'), true);
  assert.equal(await kv.delete('alpha'), false);
  assert.equal(await kv.get('alpha'), undefined);
  assert.equal(kv.count(), 1);
  // Non-ASCII string keys are their UTF-8 bytes.
  await kv.put('клю\u00e9', 'v');
  assert.equal(str(await kv.get(te.encode('клю\u00e9'))), 'v');
  await store.close();
});

test('returned values are copies: mutating them or the input changes nothing stored', async () => {
  const { store, kv } = await open(tmpDir('kv-'));
  const input = b('hello');
  kv.putSync('k', input);
  input[0] = 0x4a;
  const v1 = kv.getSync('k')!;
  assert.equal(str(v1), 'hello');
  v1[0] = 0x4a;
  assert.equal(str(kv.getSync('k')), 'hello', 'the cached value was not exposed');
  for (const e of kv.rangeSync()) { e.value[0] = 0; e.key[0] = 0; }
  assert.equal(str(kv.getSync('k')), 'hello');
  assert.deepEqual([...kv.keysSync()].map((k) => td.decode(k)), ['k']);
  await store.close();
  // Keys loaded from a checkpoint are handed out as copies too.
  const again = await Store.open(store.dir, testOpts());
  const kv2 = await again.kv('t', { flushMs: -1 });
  for (const k of kv2.keysSync()) k.fill(0x41);
  for (const e of kv2.rangeSync()) { e.key.fill(0x42); e.value.fill(0x43); }
  for (const k of kv2.listForgotten()) k.fill(0);
  assert.deepEqual([...kv2.keysSync()].map((k) => td.decode(k)), ['k']);
  assert.equal(str(kv2.getSync('k')), 'hello');
  await again.close();
});

/** Every non-empty byte string of length <= 2 over a small alphabet, sorted by a reference memcmp. */
function sampleKeys(): Uint8Array[] {
  const alphabet = [0x00, 0x01, 0x61, 0x7f, 0x80, 0xfe, 0xff];
  const out: Uint8Array[] = [];
  for (const a of alphabet) { out.push(new Uint8Array([a])); for (const c of alphabet) out.push(new Uint8Array([a, c])); }
  return out;
}

function memcmp(a: Uint8Array, c: Uint8Array): number {
  const n = Math.min(a.length, c.length);
  for (let i = 0; i < n; i++) if (a[i] !== c[i]) return a[i]! - c[i]!;
  return a.length - c.length;
}

function hex(a: Uint8Array): string { return Buffer.from(a).toString('hex'); }

test('range and keys follow bytewise order for every mix of bounds, prefix, reverse and limit', async () => {
  const { store, kv } = await open(tmpDir('kv-'));
  const keys = sampleKeys();
  // Insert in a scrambled order.
  const scrambled = keys.map((k, i) => ({ k, i: (i * 37) % keys.length })).sort((x, y) => x.i - y.i).map((x) => x.k);
  for (const k of scrambled) kv.putSync(k, new Uint8Array([...k, 0xaa]));
  kv.forgetSync(keys[5]!);
  const sorted = [...keys].sort(memcmp).filter((k) => memcmp(k, keys[5]!) !== 0);
  const probes = [new Uint8Array([0x61]), new Uint8Array([0x61, 0x7f]), new Uint8Array([0x80]), new Uint8Array([0xff]), new Uint8Array([0xff, 0xff]), new Uint8Array([0x00])];
  const cases: RangeOptions[] = [{}];
  for (const p of probes) {
    cases.push({ gt: p }, { gte: p }, { lt: p }, { lte: p }, { prefix: p }, { gte: p, lt: new Uint8Array([0xff, 0x00]) }, { prefix: p, gt: new Uint8Array([p[0]!, 0x01]) });
  }
  let checked = 0;
  for (const c0 of cases) {
    for (const reverse of [false, true]) {
      for (const limit of [undefined, 0, 1, 3]) {
        const c: RangeOptions = { ...c0, reverse, ...(limit === undefined ? {} : { limit }) };
        let want = sorted.filter((k) =>
          (c.gt === undefined || memcmp(k, c.gt as Uint8Array) > 0) && (c.gte === undefined || memcmp(k, c.gte as Uint8Array) >= 0) &&
          (c.lt === undefined || memcmp(k, c.lt as Uint8Array) < 0) && (c.lte === undefined || memcmp(k, c.lte as Uint8Array) <= 0) &&
          (c.prefix === undefined || (k.length >= (c.prefix as Uint8Array).length && memcmp(k.subarray(0, (c.prefix as Uint8Array).length), c.prefix as Uint8Array) === 0)));
        if (reverse) want = want.reverse();
        if (limit !== undefined) want = want.slice(0, limit);
        const got: string[] = [];
        for await (const e of kv.range(c)) {
          assert.equal(hex(e.value), hex(e.key) + 'aa');
          got.push(hex(e.key));
        }
        assert.deepEqual(got, want.map(hex), JSON.stringify(c));
        const gotKeys: string[] = [];
        for await (const k of kv.keys(c)) gotKeys.push(hex(k));
        assert.deepEqual(gotKeys, want.map(hex));
        if (limit === undefined && !reverse) assert.equal(kv.count(c), want.length);
        checked++;
      }
    }
  }
  assert.ok(checked > 300);
  await store.close();
});

test('range over many keys crosses chunk boundaries without loss or repeats, and sees writes made between chunks', async () => {
  const { store, kv } = await open(tmpDir('kv-'));
  const n = 3000;
  for (let i = 0; i < n; i += 100) {
    kv.batchSync(Array.from({ length: 100 }, (_, j) => ({ type: 'put' as const, key: `k${String(i + j).padStart(5, '0')}`, value: `v${i + j}` })));
  }
  const seen: string[] = [];
  for await (const e of kv.range()) {
    const k = td.decode(e.key);
    if (k.startsWith('k0')) assert.equal(td.decode(e.value), `v${Number(k.slice(1))}`);
    seen.push(k);
    // After the first chunks: a key behind the cursor is not seen; keys ahead are, as they are when reached.
    if (seen.length === 1000) { kv.putSync('k00000x', 'late'); kv.putSync('k99999', 'ahead'); kv.deleteSync('k02000'); }
  }
  const want = Array.from({ length: n }, (_, j) => `k${String(j).padStart(5, '0')}`).filter((k) => k !== 'k02000');
  assert.deepEqual(seen, [...want, 'k99999']);
  const rest: string[] = [];
  for await (const e of kv.range({ gte: 'k02999' })) rest.push(td.decode(e.key));
  assert.deepEqual(rest, ['k02999', 'k99999']);
  let count = 0;
  for (const _ of kv.keysSync()) count++;
  assert.equal(count, n - 1 + 2);
  await store.close();
});

test('prefixEnd and key strings', () => {
  assert.equal(prefixEnd('ab'), 'ac');
  assert.equal(prefixEnd('a\xff'), 'b');
  assert.equal(prefixEnd('\xff\xff'), null);
  assert.equal(prefixEnd(''), null);
  assert.equal(keyString('abc'), 'abc');
  assert.equal(keyString(new Uint8Array([0xc3, 0xa9])), '\xc3\xa9');
  assert.equal(keyString('é'), '\xc3\xa9');
  const long = new Uint8Array(300).map((_, i) => i & 0xff);
  assert.equal(bytesToByteString(long), Array.from(long, (x) => String.fromCharCode(x)).join(''));
});

test('update: atomic read-modify-write, delete with null, no-op with undefined, promises refused', async () => {
  const { store, kv } = await open(tmpDir('kv-'));
  const r1 = await kv.update('n', (old) => { assert.equal(old, undefined); return '1'; });
  assert.equal(r1.old, undefined);
  assert.equal(str(r1.value), '1');
  const r2 = kv.updateSync('n', (old) => String(Number(str(old)) + 1));
  assert.deepEqual([str(r2.old), str(r2.value)], ['1', '2']);
  const end = kv.stats().logEndOffset;
  const r3 = kv.updateSync('n', () => undefined);
  assert.deepEqual([str(r3.old), str(r3.value)], ['2', '2']);
  assert.equal(kv.stats().logEndOffset, end, 'undefined writes nothing');
  assert.throws(() => kv.updateSync('n', (() => Promise.resolve('x')) as never), { code: 'ERR_INVALID_ARGUMENT' });
  assert.equal(kv.stats().logEndOffset, end);
  assert.equal(str(kv.getSync('n')), '2');
  const r4 = kv.updateSync('n', () => null);
  assert.deepEqual([str(r4.old), r4.value], ['2', undefined]);
  assert.equal(kv.getSync('n'), undefined);
  // Concurrent async increments never lose an update.
  await Promise.all(Array.from({ length: 50 }, () => kv.update('c', (o) => String(Number(o ? str(o) : '0') + 1))));
  assert.equal(str(kv.getSync('c')), '50');
  await store.close();
});

test('bad input: typed errors and nothing written', async () => {
  const dir = tmpDir('kv-');
  const { store, kv } = await open(dir, { maxBatchBytes: 64 * 1024 });
  kv.putSync('ok', 'v');
  await kv.flush();
  const pdir = path.join(dir, '__kv.t-0');
  const sizes = () => fs.readdirSync(pdir).filter((n) => n.endsWith('.log')).map((n) => fs.statSync(path.join(pdir, n)).size);
  const before = { end: kv.stats().logEndOffset, sizes: sizes() };
  const bad: [() => unknown, string][] = [
    [() => kv.putSync('', 'v'), 'ERR_INVALID_ARGUMENT'],
    [() => kv.putSync(new Uint8Array(0), 'v'), 'ERR_INVALID_ARGUMENT'],
    [() => kv.putSync(42 as never, 'v'), 'ERR_INVALID_ARGUMENT'],
    [() => kv.putSync(null as never, 'v'), 'ERR_INVALID_ARGUMENT'],
    [() => kv.putSync([1, 2] as never, 'v'), 'ERR_INVALID_ARGUMENT'],
    [() => kv.putSync(new Uint16Array(2) as never, 'v'), 'ERR_INVALID_ARGUMENT'],
    [() => kv.putSync('k', null as never), 'ERR_INVALID_ARGUMENT'],
    [() => kv.putSync('k', undefined as never), 'ERR_INVALID_ARGUMENT'],
    [() => kv.putSync('k', { a: 1 } as never), 'ERR_INVALID_ARGUMENT'],
    [() => kv.putSync(new Uint8Array(MAX_KEY_BYTES + 1), 'v'), 'ERR_RECORD_TOO_LARGE'],
    [() => kv.putSync('x'.repeat(MAX_KEY_BYTES + 1), 'v'), 'ERR_RECORD_TOO_LARGE'],
    [() => kv.putSync('é'.repeat(MAX_KEY_BYTES / 2 + 1), 'v'), 'ERR_RECORD_TOO_LARGE'],
    [() => kv.putSync('k', new Uint8Array(MAX_VALUE_BYTES + 1)), 'ERR_RECORD_TOO_LARGE'],
    [() => kv.putSync('k', new Uint8Array(64 * 1024)), 'ERR_RECORD_TOO_LARGE'], // over this namespace's batch limit
    [() => kv.getSync(''), 'ERR_INVALID_ARGUMENT'],
    [() => kv.getSync(7 as never), 'ERR_INVALID_ARGUMENT'],
    [() => kv.deleteSync(''), 'ERR_INVALID_ARGUMENT'],
    [() => kv.batchSync([{ type: 'put', key: 'a', value: 'v' }, { type: 'put', key: '', value: 'v' }]), 'ERR_INVALID_ARGUMENT'],
    [() => kv.batchSync([{ type: 'put', key: 'a', value: 'v' }, { type: 'nope', key: 'b' } as never]), 'ERR_INVALID_ARGUMENT'],
    [() => kv.batchSync([{ type: 'put', key: 'a', value: 'v' }, null as never]), 'ERR_INVALID_ARGUMENT'],
    [() => kv.batchSync('x' as never), 'ERR_INVALID_ARGUMENT'],
    [() => kv.batchSync(Array.from({ length: 20 }, (_, i) => ({ type: 'put' as const, key: `b${i}`, value: new Uint8Array(4000) }))), 'ERR_RECORD_TOO_LARGE'],
    [() => kv.rangeSync({ gt: 'a', gte: 'b' }), 'ERR_INVALID_ARGUMENT'],
    [() => kv.rangeSync({ limit: -1 }), 'ERR_INVALID_ARGUMENT'],
    [() => kv.range({ limit: 1.5 }), 'ERR_INVALID_ARGUMENT'],
    [() => kv.keys({ prefix: 5 as never }), 'ERR_INVALID_ARGUMENT'],
  ];
  for (const [fn, code] of bad) assert.throws(fn, (e: Error & { code?: string }) => e.code === code, String(fn));
  await assert.rejects(kv.put('', 'v'), { code: 'ERR_INVALID_ARGUMENT' });
  assert.equal(kv.stats().logEndOffset, before.end);
  assert.deepEqual(sizes(), before.sizes);
  assert.deepEqual(kv.getManySync(['a', 'b0', 'k']), [undefined, undefined, undefined]);
  await assert.rejects(store.kv('bad name'), { code: 'ERR_INVALID_ARGUMENT' });
  await assert.rejects(store.kv(''), { code: 'ERR_INVALID_ARGUMENT' });
  await assert.rejects(store.kv('x'.repeat(201)), { code: 'ERR_INVALID_ARGUMENT' });
  await store.close();
});

test('batch: all or nothing, in order, duplicates resolve to the last operation', async () => {
  const { store, kv } = await open(tmpDir('kv-'));
  kv.putSync('gone', 'x');
  const end = kv.stats().logEndOffset;
  await kv.batch([
    { type: 'put', key: 'a', value: '1' },
    { type: 'put', key: 'a', value: '2' },
    { type: 'del', key: 'gone' },
    { type: 'put', key: 'b', value: '3' },
    { type: 'del', key: 'b' },
    { type: 'del', key: 'never' },
  ]);
  assert.equal(kv.stats().logEndOffset, end + 6, 'one record per operation');
  assert.equal(str(kv.getSync('a')), '2');
  assert.equal(kv.getSync('gone'), undefined);
  assert.equal(kv.getSync('b'), undefined);
  assert.equal(kv.count(), 1);
  await kv.batch([]);
  assert.equal(kv.stats().logEndOffset, end + 6);
  await store.close();
});

test('disable: reads work, every write is refused with KeyDisabledError until enable; survives reopen', async () => {
  const dir = tmpDir('kv-');
  let { store, kv } = await open(dir);
  kv.putSync('d', 'v1');
  assert.equal(kv.disableSync('d'), true);
  assert.equal(kv.disableSync('d'), false, 'already disabled');
  assert.equal(kv.disableSync('absent'), true, 'absent keys can be disabled');
  const end = kv.stats().logEndOffset;
  const writes: (() => unknown)[] = [
    () => kv.putSync('d', 'v2'),
    () => kv.deleteSync('d'),
    () => kv.updateSync('d', () => 'v2'),
    () => kv.forgetSync('d'),
    () => kv.batchSync([{ type: 'put', key: 'other', value: 'x' }, { type: 'put', key: 'd', value: 'v2' }]),
    () => kv.putSync('absent', 'x'),
  ];
  for (const w of writes) {
    assert.throws(w, (e: unknown) => e instanceof KeyDisabledError && e.code === 'ERR_KEY_DISABLED');
  }
  assert.equal(kv.stats().logEndOffset, end, 'nothing written');
  assert.equal(kv.getSync('other'), undefined, 'the refused batch wrote nothing');
  assert.equal(str(kv.getSync('d')), 'v1');
  assert.equal(kv.hasSync('d'), true);
  assert.equal(kv.isDisabled('d'), true);
  assert.equal(kv.getSync('absent'), undefined);
  assert.equal(kv.count(), 1);
  await store.close();
  ({ store, kv } = await open(dir));
  assert.equal(kv.isDisabled('d'), true);
  assert.equal(kv.isDisabled('absent'), true);
  assert.throws(() => kv.putSync('d', 'v2'), KeyDisabledError);
  assert.equal(kv.enableSync('d'), true);
  assert.equal(kv.enableSync('d'), false);
  kv.putSync('d', 'v2');
  assert.equal(str(kv.getSync('d')), 'v2');
  assert.equal(kv.enableSync('absent'), true);
  kv.putSync('absent', 'now');
  await store.close();
  ({ store, kv } = await open(dir));
  assert.equal(kv.isDisabled('d'), false);
  assert.equal(str(kv.getSync('absent')), 'now');
  await store.close();
});

test('forget: absent for reads, updates and scans; audit lists and reads it; a write ends it; survives reopen', async () => {
  const dir = tmpDir('kv-');
  let { store, kv } = await open(dir);
  kv.putSync('a', 'A');
  kv.putSync('f', 'secret');
  kv.putSync('z', 'Z');
  assert.equal(str(kv.getSync('f')), 'secret'); // cached
  assert.equal(kv.forgetSync('f'), true);
  assert.equal(kv.forgetSync('f'), false, 'already hidden');
  assert.equal(kv.forgetSync('nope'), false);
  assert.equal(kv.getSync('f'), undefined);
  assert.equal(kv.hasSync('f'), false);
  assert.deepEqual(kv.getManySync(['f']), [undefined]);
  assert.equal(kv.count(), 2);
  assert.deepEqual([...kv.keysSync()].map((k) => td.decode(k)), ['a', 'z']);
  assert.deepEqual([...kv.rangeSync({ prefix: 'f' })], []);
  assert.deepEqual(kv.listForgotten().map((k) => td.decode(k)), ['f']);
  assert.equal(str(kv.readForgotten('f')), 'secret');
  assert.equal(kv.readForgotten('a'), undefined, 'not forgotten');
  kv.updateSync('f', (old) => { assert.equal(old, undefined, 'update sees it absent'); return undefined; });
  assert.deepEqual(kv.listForgotten().length, 1, 'a no-op update keeps it forgotten');
  await store.close();

  ({ store, kv } = await open(dir));
  assert.equal(kv.getSync('f'), undefined);
  assert.equal(str(kv.readForgotten('f')), 'secret');
  assert.equal(kv.count(), 2);
  // Disabling a forgotten key keeps it hidden and makes it unwritable.
  kv.disableSync('f');
  assert.throws(() => kv.putSync('f', 'x'), KeyDisabledError);
  assert.equal(str(kv.readForgotten('f')), 'secret');
  kv.enableSync('f');
  assert.equal(kv.deleteSync('f'), false, 'it was not visible');
  assert.deepEqual(kv.listForgotten(), [], 'the delete removed the hidden value');
  assert.equal(kv.readForgotten('f'), undefined);
  kv.putSync('g', 'G1');
  kv.forgetSync('g');
  kv.putSync('g', 'G2');
  assert.equal(str(kv.getSync('g')), 'G2', 'a put ends the forgotten state');
  assert.deepEqual(kv.listForgotten(), []);
  await store.close();
  ({ store, kv } = await open(dir));
  assert.equal(str(kv.getSync('g')), 'G2');
  assert.equal(kv.getSync('f'), undefined);
  assert.deepEqual(kv.listForgotten(), []);
  await store.close();
});

test('persistence: reopen with and without the checkpoint gives the same state', async () => {
  const dir = tmpDir('kv-');
  let { store, kv } = await open(dir, { segmentBytes: 8 * 1024 });
  const model = new Map<string, string>();
  for (let i = 0; i < 3000; i++) {
    const k = `key${(i * 7919) % 500}`;
    if (i % 11 === 0) { kv.deleteSync(k); model.delete(k); } else { kv.putSync(k, `v${i}`); model.set(k, `v${i}`); }
  }
  await kv.checkpoint();
  for (let i = 0; i < 200; i++) { kv.putSync(`late${i}`, `L${i}`); model.set(`late${i}`, `L${i}`); }
  await store.close();
  const check = (kv2: KvStore) => {
    assert.equal(kv2.count(), model.size);
    const got = [...kv2.rangeSync()].map((e) => [td.decode(e.key), td.decode(e.value)]);
    assert.deepEqual(got, [...model.entries()].sort((x, y) => (x[0] < y[0] ? -1 : 1)));
  };
  ({ store, kv } = await open(dir));
  assert.equal(kv.stats().load.fromCheckpoint, true);
  check(kv);
  await store.close();
  fs.rmSync(path.join(dir, '__kv.t-0', CHECKPOINT_FILE));
  ({ store, kv } = await open(dir));
  assert.equal(kv.stats().load.fromCheckpoint, false);
  assert.ok(kv.stats().load.replayedRecords >= model.size);
  check(kv);
  await store.close();
});

test('read-only open: reads work, writes are refused; a missing namespace is not found', async () => {
  const dir = tmpDir('kv-');
  const w = await open(dir);
  w.kv.putSync('k', 'v');
  await w.kv.flush();
  // A reader next to the running writer sees flushed data.
  const ro = await Store.open(dir, { readOnly: true, retentionCheckMs: -1 });
  const kv = await ro.kv('t');
  assert.equal(str(kv.getSync('k')), 'v');
  assert.throws(() => kv.putSync('k', 'x'), { code: 'ERR_READ_ONLY' });
  await assert.rejects(kv.compact(), { code: 'ERR_READ_ONLY' });
  await assert.rejects(ro.kv('other'), { code: 'ERR_NOT_FOUND' });
  await ro.close();
  await w.store.close();
});

test('closed namespaces refuse calls; the store closes its namespaces and reuses open ones', async () => {
  const { store, kv: first } = await open(tmpDir('kv-'));
  assert.equal(await store.kv('t'), first);
  first.putSync('k', 'v');
  await first.close();
  assert.throws(() => first.getSync('k'), { code: 'ERR_CLOSED' });
  // A namespace closed by its user is opened again by the next store.kv().
  const kv = await store.kv('t');
  assert.notEqual(kv, first);
  assert.equal(str(kv.getSync('k')), 'v');
  assert.equal(await store.kv('t'), kv);
  await store.close();
  assert.equal(kv.isClosed, true);
  assert.throws(() => kv.getSync('k'), { code: 'ERR_CLOSED' });
  assert.throws(() => kv.putSync('k', 'v'), { code: 'ERR_CLOSED' });
});

test('cache: hot values are served from memory; a cold read after eviction checks the value CRC', async () => {
  const dir = tmpDir('kv-');
  let { store, kv } = await open(dir, { cacheBytes: 4096 });
  for (let i = 0; i < 200; i++) kv.putSync(`k${i}`, `value-${i}-${'x'.repeat(50)}`);
  for (let r = 0; r < 3; r++) for (let i = 0; i < 200; i++) assert.equal(str(kv.getSync(`k${i}`)), `value-${i}-${'x'.repeat(50)}`);
  const st = kv.stats();
  assert.ok(st.cacheEntries < 200, 'the cache is bounded');
  kv.getSync('k1');
  const h = kv.stats().cacheHits;
  kv.getSync('k1');
  assert.equal(kv.stats().cacheHits, h + 1);
  await store.close();
  // Flip a bit inside a value on disk: the read fails with a CorruptionError instead of returning bad bytes.
  const log = path.join(dir, '__kv.t-0', fs.readdirSync(path.join(dir, '__kv.t-0')).find((n) => n.endsWith('.log'))!);
  const data = fs.readFileSync(log);
  const at = data.indexOf(Buffer.from('value-7-'));
  assert.ok(at > 0);
  data[at + 3] = data[at + 3]! ^ 1;
  fs.writeFileSync(log, data);
  ({ store, kv } = await open(dir));
  assert.throws(() => kv.getSync('k7'), { code: 'ERR_CORRUPTION' });
  assert.equal(str(kv.getSync('k8')), `value-8-${'x'.repeat(50)}`);
  await store.close();
});

test('index keys: packed (number) and string forms compare bytewise with each other (property)', async () => {
  const fc = (await import('fast-check')).default;
  const { keyComparator, packedAscending } = await import('../src/kv/kv_index.js');
  fc.assert(fc.property(fc.array(fc.uint8Array({ minLength: 1, maxLength: 6, max: 4 }).map((a) => a.map((x) => [0, 1, 0x7f, 0x80, 0xff][x]!)), { minLength: 2, maxLength: 20 }), (arr) => {
    const keys = [...new Map(arr.map((a) => [hex(a), a])).values()].sort(memcmp);
    const ends = new Uint32Array(keys.length);
    let total = 0;
    keys.forEach((k, i) => { total += k.length; ends[i] = total; });
    const bytes = new Uint8Array(total);
    keys.forEach((k, i) => bytes.set(k, i === 0 ? 0 : ends[i - 1]!));
    const cmp = keyComparator({ bytes, ends });
    assert.equal(packedAscending({ bytes, ends }), true);
    if (keys.length >= 2) {
      // The same keys with the last two swapped are not ascending.
      const sw = [...keys.slice(0, -2), keys[keys.length - 1]!, keys[keys.length - 2]!];
      const e2 = new Uint32Array(sw.length);
      let t2 = 0;
      sw.forEach((k, i) => { t2 += k.length; e2[i] = t2; });
      const b2 = new Uint8Array(t2);
      sw.forEach((k, i) => b2.set(k, i === 0 ? 0 : e2[i - 1]!));
      assert.equal(packedAscending({ bytes: b2, ends: e2 }), false);
    }
    const sign = (x: number) => (x > 0 ? 1 : x < 0 ? -1 : 0);
    for (let i = 0; i < keys.length; i++) {
      for (let j = 0; j < keys.length; j++) {
        const want = sign(memcmp(keys[i]!, keys[j]!));
        const si = bytesToByteString(keys[i]!);
        const sj = bytesToByteString(keys[j]!);
        assert.equal(sign(cmp(i, j)), want);
        assert.equal(sign(cmp(i, sj)), want);
        assert.equal(sign(cmp(si, j)), want);
        assert.equal(sign(cmp(si, sj)), want);
      }
    }
  }), { numRuns: 200 });
});

test('after a reopen from a checkpoint, keys from the checkpoint and new keys mix in order', async () => {
  const dir = tmpDir('kv-');
  let { store, kv } = await open(dir);
  for (let i = 0; i < 300; i += 2) kv.putSync(`k${String(i).padStart(3, '0')}`, `old${i}`);
  await store.close();
  ({ store, kv } = await open(dir));
  assert.equal(kv.stats().load.fromCheckpoint, true);
  for (let i = 1; i < 300; i += 2) kv.putSync(`k${String(i).padStart(3, '0')}`, `new${i}`);
  kv.deleteSync('k010');
  kv.putSync('k010', 'again');
  kv.deleteSync('k012');
  const want = Array.from({ length: 300 }, (_, i) => `k${String(i).padStart(3, '0')}`).filter((k) => k !== 'k012');
  assert.deepEqual([...kv.keysSync()].map((k) => td.decode(k)), want);
  assert.deepEqual([...kv.keysSync({ reverse: true, gt: 'k005', lte: 'k013' })].map((k) => td.decode(k)), ['k013', 'k011', 'k010', 'k009', 'k008', 'k007', 'k006']);
  assert.equal(str(kv.getSync('k010')), 'again');
  assert.equal(str(kv.getSync('k100')), 'old100');
  assert.equal(kv.count(), 299);
  let n = 0;
  for await (const e of kv.range({ gte: 'k100', limit: 70 })) { assert.equal(td.decode(e.key), want[want.indexOf('k100') + n]); n++; }
  assert.equal(n, 70);
  await store.close();
  ({ store, kv } = await open(dir));
  assert.deepEqual([...kv.keysSync()].map((k) => td.decode(k)), want);
  await store.close();
});

test('a checkpoint whose keys are out of order is refused even with a valid CRC', async () => {
  const { encodeCheckpoint, decodeCheckpoint } = await import('../src/kv/kv_checkpoint.js');
  const { Crc32c } = await import('../src/crc32c.js');
  const { getKernelsSync } = await import('../src/kernels.js');
  const crc = new Crc32c(getKernelsSync());
  const mk = (keys: string[]) => encodeCheckpoint({
    covered: 5, segments: [{ base: 0, gen: -1 }], keys, slots: keys.map((_, i) => i),
    keyLength: (k) => String(k).length, writeKey: (k, out, at) => { const s = String(k); for (let i = 0; i < s.length; i++) out[at + i] = s.charCodeAt(i); return at + s.length; },
    valOff: new Float64Array(keys.length), flagOff: new Float64Array(keys.length).fill(-1), valPos: new Int32Array(keys.length),
    valLen: new Int32Array(keys.length).fill(1), valCrc: new Uint32Array(keys.length), flags: new Uint8Array(keys.length),
  }, crc);
  const good = decodeCheckpoint(await mk(['a', 'ab', 'b']), crc, 'x');
  assert.equal(good.index.size, 3);
  assert.equal(good.index.slot('ab'), 1);
  for (const bad of [['b', 'a'], ['a', 'a'], ['ab', 'a']]) {
    await assert.rejects(async () => decodeCheckpoint(await mk(bad), crc, 'x'), { code: 'ERR_CORRUPTION' });
  }
});

test('a store whose default topic config deduplicates cannot host a KV namespace (typed error, nothing opened)', async () => {
  const store = await Store.open(tmpDir('kv-'), { ...testOpts(), defaultTopicConfig: { dedup: { by: 'value', window: { count: 100 } } } });
  await assert.rejects(store.kv('d'), (e: Error & { code?: string }) => e.code === 'ERR_INVALID_ARGUMENT' && /deduplicates/.test(e.message));
  await store.close();
});

test('invalid options are refused before anything is created', async () => {
  const dir = tmpDir('kv-');
  const store = await Store.open(dir, testOpts());
  for (const o of [{ cacheBytes: -1 }, { segmentBytes: 10 }, { maxBatchBytes: 1.5 }, { minDirtyRatio: 2 }, { clusterRatio: -0.5 }, { checkpointBytes: 0 }, { flushMs: 'x' }]) {
    await assert.rejects(store.kv('o', o as never), { code: 'ERR_INVALID_ARGUMENT' }, JSON.stringify(o));
  }
  await assert.rejects(store.kv('o', null as never), { code: 'ERR_INVALID_ARGUMENT' });
  assert.equal(store.hasTopic('__kv.o'), false);
  await store.close();
});
