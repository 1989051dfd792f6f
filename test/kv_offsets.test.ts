// Consumer offsets on the KV store, and the CLI: sediment kv get | put |
// del | scan | list and sediment groups.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { main } from '../src/cli/main.js';
import { Store } from '../src/store.js';
import { offsetKey, CONSUMER_OFFSETS_TOPIC, MAX_METADATA_BYTES } from '../src/kv/consumer_offsets.js';
import { decodeArg, encodeOut } from '../src/cli/kv_commands.js';
import { tmpDir, cleanupTmp, testOpts } from './helpers/log_util.js';

after(cleanupTmp);

class Sink {
  chunks: Buffer[] = [];
  write(s: string | Uint8Array): boolean { this.chunks.push(Buffer.from(s)); return true; }
  get text(): string { return Buffer.concat(this.chunks).toString('utf8'); }
}

async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const stdout = new Sink();
  const stderr = new Sink();
  const code = await main(['node', 'sediment', ...args], { stdout, stderr, stdin: Readable.from([]), isTTY: false });
  return { code, out: stdout.text, err: stderr.text };
}

test('commitOffset / fetchOffset round trip, survive reopen, atomic multi-partition commits', async () => {
  const dir = tmpDir('kv-off-');
  let store = await Store.open(dir, testOpts());
  let co = await store.consumerOffsets();
  assert.equal(await co.fetchOffset('g', 'orders', 0), null);
  await co.commitOffset('g', 'orders', 0, 42, 'host-1');
  await co.commitOffset('g', 'orders', 0, 43);
  await co.commitOffsets('g', [{ topic: 'orders', partition: 2, offset: 7 }, { topic: 'audit', partition: 0, offset: 2 ** 40, metadata: 'm' }]);
  await co.commitOffset('other', 'orders', 1, 5);
  const f = await co.fetchOffset('g', 'orders', 0);
  assert.equal(f!.offset, 43);
  assert.equal(f!.metadata, '');
  assert.ok(Math.abs(f!.commitTimestamp - Date.now()) < 60_000);
  assert.equal((await co.fetchOffset('g', 'audit', 0))!.offset, 2 ** 40);
  await co.flush();
  await store.close();
  store = await Store.open(dir, testOpts());
  co = await store.consumerOffsets();
  assert.deepEqual(co.fetchOffsets('g').map((o) => [o.topic, o.partition, o.offset, o.metadata]), [['audit', 0, 2 ** 40, 'm'], ['orders', 0, 43, ''], ['orders', 2, 7, '']]);
  assert.deepEqual(co.listGroups(), ['g', 'other']);
  assert.ok(store.hasTopic(CONSUMER_OFFSETS_TOPIC));
  assert.equal(store.describeTopic(CONSUMER_OFFSETS_TOPIC).config.cleanupPolicy, 'compact');
  assert.equal(await co.deleteGroup('g'), 3);
  assert.deepEqual(co.listGroups(), ['other']);
  assert.equal(await co.fetchOffset('g', 'orders', 0), null);
  await store.close();
});

test('groups whose names are prefixes of others stay apart; lag uses the log end offset', async () => {
  const dir = tmpDir('kv-off-');
  const store = await Store.open(dir, testOpts());
  const t = await store.createTopic('events', { partitions: 2, config: { flushMs: -1 } });
  await t.partition(0).append(Array.from({ length: 10 }, (_, i) => ({ value: `e${i}` })));
  const co = await store.consumerOffsets();
  for (const g of ['a', 'a\u0001', 'ab', 'a b', 'é']) await co.commitOffset(g, 'events', 0, 4);
  await co.commitOffset('a', 'events', 1, 0);
  await co.commitOffset('a', 'gone', 0, 3);
  assert.deepEqual(co.listGroups(), ['a', 'a\u0001', 'a b', 'ab', 'é']);
  assert.equal(co.fetchOffsets('a').length, 3);
  const d = co.describeGroup('a');
  assert.deepEqual(d.map((r) => [r.topic, r.partition, r.offset, r.logEndOffset, r.lag]), [['events', 0, 4, 10, 6], ['events', 1, 0, 0, 0], ['gone', 0, 3, null, null]]);
  await store.close();
});

test('consumer offsets: bad input is refused with typed errors and nothing is written', async () => {
  const store = await Store.open(tmpDir('kv-off-'), testOpts());
  const co = await store.consumerOffsets();
  const end = co.kv.stats().logEndOffset;
  const bad: [() => Promise<unknown>, string][] = [
    [() => co.commitOffset('', 't', 0, 1), 'ERR_INVALID_ARGUMENT'],
    [() => co.commitOffset('g\0x', 't', 0, 1), 'ERR_INVALID_ARGUMENT'],
    [() => co.commitOffset('x'.repeat(2000), 't', 0, 1), 'ERR_INVALID_ARGUMENT'],
    [() => co.commitOffset('g', 'bad topic', 0, 1), 'ERR_INVALID_ARGUMENT'],
    [() => co.commitOffset('g', 't', -1, 1), 'ERR_INVALID_ARGUMENT'],
    [() => co.commitOffset('g', 't', 1.5, 1), 'ERR_INVALID_ARGUMENT'],
    [() => co.commitOffset('g', 't', 0, -1), 'ERR_INVALID_ARGUMENT'],
    [() => co.commitOffset('g', 't', 0, 2 ** 53), 'ERR_INVALID_ARGUMENT'],
    [() => co.commitOffset('g', 't', 0, 1, 'm'.repeat(MAX_METADATA_BYTES + 1)), 'ERR_INVALID_ARGUMENT'],
    [() => co.commitOffset('g', 't', 0, 1, 5 as never), 'ERR_INVALID_ARGUMENT'],
    [() => co.commitOffsets('g', [{ topic: 't', partition: 0, offset: 1 }, { topic: 't', partition: 1, offset: -3 }]), 'ERR_INVALID_ARGUMENT'],
    [() => co.fetchOffset('g', 't', -2), 'ERR_INVALID_ARGUMENT'],
  ];
  for (const [fn, code] of bad) await assert.rejects(fn(), { code }, String(fn));
  assert.equal(co.kv.stats().logEndOffset, end);
  assert.deepEqual(co.listGroups(), []);
  // The key layout sorts by group, topic, partition.
  assert.deepEqual([...offsetKey('g', 't', 258)], [0x67, 0, 0x74, 0, 0, 0, 1, 2]);
  await store.close();
});

test('CLI: kv put, get, del, scan, list with encodings, formats and exit codes', async () => {
  const dir = path.join(tmpDir('kv-cli-'), 'store');
  assert.equal((await run('kv', 'get', '--dir', dir, '--ns', 'conf', 'x')).code, 3, 'missing store');
  for (const [k, v] of [['color', 'blue'], ['size', 'L'], ['sizes', 'S,M,L'], ['tab\tkey', 'line\nbreak']]) {
    const r = await run('kv', 'put', '--dir', dir, '--ns', 'conf', k!, v!);
    assert.equal(r.code, 0, r.err);
  }
  let r = await run('kv', 'get', '--dir', dir, '--ns', 'conf', 'color');
  assert.deepEqual([r.code, r.out], [0, 'blue\n']);
  r = await run('kv', 'get', '--dir', dir, '--ns', 'conf', 'color', '--format', 'json');
  assert.deepEqual(JSON.parse(r.out), { key: 'color', value: 'blue' });
  r = await run('kv', 'get', '--dir', dir, '--ns', 'conf', '636f6c6f72', '--encoding', 'hex');
  assert.equal(r.out, '626c7565\n');
  r = await run('kv', 'get', '--dir', dir, '--ns', 'conf', 'nope');
  assert.equal(r.code, 3);
  assert.match(r.err, /not in KV namespace/);
  r = await run('kv', 'get', '--dir', dir, '--ns', 'missing', 'x');
  assert.equal(r.code, 3);
  r = await run('kv', 'get', '--dir', dir, '--ns', 'conf', 'zz', '--encoding', 'hex');
  assert.equal(r.code, 1, 'bad hex is a usage error');
  r = await run('kv', 'put', '--dir', dir, '--ns', 'conf', '', 'v');
  assert.equal(r.code, 1, 'empty key');
  r = await run('kv', 'scan', '--dir', dir, '--ns', 'conf');
  assert.equal(r.out, 'color\tblue\nsize\tL\nsizes\tS,M,L\ntab\\tkey\tline\\nbreak\n');
  r = await run('kv', 'scan', '--dir', dir, '--ns', 'conf', '--prefix', 'size', '--reverse', '--format', 'json');
  assert.deepEqual(r.out.trim().split('\n').map((l) => JSON.parse(l)), [{ key: 'sizes', value: 'S,M,L' }, { key: 'size', value: 'L' }]);
  r = await run('kv', 'scan', '--dir', dir, '--ns', 'conf', '--gt', 'color', '--limit', '2', '--keys-only');
  assert.equal(r.out, 'size\nsizes\n');
  r = await run('kv', 'scan', '--dir', dir, '--ns', 'conf', '--limit', 'x');
  assert.equal(r.code, 1);
  r = await run('kv', 'del', '--dir', dir, '--ns', 'conf', 'size');
  assert.equal(r.code, 0, r.err);
  r = await run('kv', 'del', '--dir', dir, '--ns', 'conf', 'size');
  assert.equal(r.code, 3, 'deleting an absent key');
  r = await run('kv', 'list', '--dir', dir);
  assert.equal(r.out, 'conf\t3\n');
  // What the CLI wrote is what the API reads.
  const store = await Store.open(dir, { readOnly: true, retentionCheckMs: -1 });
  const kv = await store.kv('conf');
  assert.equal(new TextDecoder().decode(kv.getSync('tab\tkey')), 'line\nbreak');
  assert.equal(kv.getSync('size'), undefined);
  await store.close();
  // A write command while another process... here: this process holds the lock.
  const w = await Store.open(dir, testOpts());
  r = await run('kv', 'put', '--dir', dir, '--ns', 'conf', 'a', 'b');
  assert.equal(r.code, 4);
  r = await run('kv', 'get', '--dir', dir, '--ns', 'conf', 'color');
  assert.equal(r.code, 0, 'reads work next to a writer');
  await w.close();
});

test('CLI: groups lists committed offsets with log end offset and lag', async () => {
  const dir = tmpDir('kv-cli-');
  let r = await run('groups', '--dir', dir);
  assert.deepEqual([r.code, r.out], [0, ''], 'no offsets yet');
  const store = await Store.open(dir, testOpts());
  const t = await store.createTopic('clicks', { config: { flushMs: -1 } });
  await t.partition(0).append(Array.from({ length: 25 }, (_, i) => ({ value: `c${i}` })));
  const co = await store.consumerOffsets();
  await co.commitOffset('reporting', 'clicks', 0, 20, 'v1');
  await co.commitOffset('billing', 'clicks', 0, 25);
  await co.commitOffset('billing', 'elsewhere', 3, 9);
  await store.close();
  r = await run('groups', '--dir', dir);
  assert.equal(r.code, 0, r.err);
  const lines = r.out.trim().split('\n').map((l) => l.split(/\s{2,}/));
  assert.deepEqual(lines, [
    ['GROUP', 'TOPIC', 'PARTITION', 'OFFSET', 'LOG-END', 'LAG', 'METADATA'],
    ['billing', 'clicks', '0', '25', '25', '0'],
    ['billing', 'elsewhere', '3', '9', '-', '-'],
    ['reporting', 'clicks', '0', '20', '25', '5', 'v1'],
  ]);
  r = await run('groups', '--dir', dir, '--group', 'reporting', '--format', 'json');
  const rows = r.out.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(rows.length, 1);
  assert.equal(rows[0].lag, 5);
  r = await run('groups', '--dir', dir, '--group', 'nobody');
  assert.equal(r.code, 3);
});

test('CLI encodings round trip', () => {
  for (const enc of ['utf8', 'hex', 'base64'] as const) {
    const bytes = enc === 'utf8' ? new TextEncoder().encode('héllo') : new Uint8Array([0, 1, 0xfe, 0xff, 0x80]);
    assert.deepEqual(decodeArg(encodeOut(bytes, enc), enc, 'x'), bytes);
  }
  assert.throws(() => decodeArg('abc', 'hex', 'key'), { code: 'ERR_INVALID_ARGUMENT' });
  assert.throws(() => decodeArg('a$==', 'base64', 'key'), { code: 'ERR_INVALID_ARGUMENT' });
  assert.deepEqual(decodeArg('0x0aff', 'hex', 'key'), new Uint8Array([10, 255]));
  void fs;
});
