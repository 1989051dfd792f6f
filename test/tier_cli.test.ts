// `sediment tier status|upload|restore` end to end through main(): an fs
// bucket and a real S3 server (s3rver) as the object store, config from a
// JSON file or from --service/--option, progress bars on a terminal only,
// exit codes (usage, lock, unreachable store), and the records restored by
// the CLI equal to the ones written.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { main } from '../src/cli/main.js';
import { Store } from '../src/store.js';
import { startS3rver, S3Server } from './helpers/s3rver.js';
import { tmp, cleanup, smallTopic, recentRecords, appendAll, readPlain, FAST, PlainRecord } from './helpers/tier_util.js';
import type { TierConfig } from '../src/tier/tier_config.js';

class Sink {
  text = '';
  write(s: string | Uint8Array): boolean { this.text += typeof s === 'string' ? s : Buffer.from(s).toString(); return true; }
}

async function run(args: string[], isTTY = false): Promise<{ code: number; out: string; err: string }> {
  const stdout = new Sink();
  const stderr = new Sink();
  const code = await main(['node', 'sediment', ...args], { stdout, stderr, stdin: Readable.from([]), isTTY });
  return { code, out: stdout.text, err: stderr.text };
}

let s3: S3Server;
before(async () => { s3 = await startS3rver('cli-bucket'); });
after(async () => { await s3.close(); cleanup(); });

/** A store with two topics written without tiering (the CLI uploads them). */
async function makeStore(): Promise<{ dir: string; expected: Record<string, PlainRecord[]> }> {
  const dir = tmp();
  const store = await Store.open(dir, { retentionCheckMs: -1 });
  const expected: Record<string, PlainRecord[]> = {};
  try {
    await store.createTopic('ev', { partitions: 2, config: smallTopic() });
    await store.createTopic('logs', { config: smallTopic() });
    await appendAll(store.partition('ev', 0), recentRecords(300, 1));
    await appendAll(store.partition('ev', 1), recentRecords(120, 2));
    await appendAll(store.partition('logs', 0), recentRecords(200, 3));
    await store.flush();
    for (const [t, id] of [['ev', 0], ['ev', 1], ['logs', 0]] as const) expected[`${t}-${id}`] = await readPlain(store.partition(t, id));
  } finally {
    await store.close();
  }
  return { dir, expected };
}

function writeTierFile(cfg: TierConfig): string {
  const file = path.join(tmp(), 'tier.json');
  fs.writeFileSync(file, JSON.stringify(cfg));
  return file;
}

test('tier upload, status and restore through s3 with a config file', async () => {
  const { dir, expected } = await makeStore();
  const tierFile = writeTierFile(s3.tier('cli', FAST));

  const st0 = await run(['tier', 'status', '--dir', dir, '--tier', tierFile, '--json']);
  assert.equal(st0.code, 0, st0.err);
  const before = JSON.parse(st0.out) as { reachable: boolean; partitions: { topic: string; archivedSegments: number; pendingSegments: number }[] };
  assert.equal(before.reachable, true);
  assert.equal(before.partitions.length, 3);
  assert.ok(before.partitions.every((p) => p.archivedSegments === 0));
  assert.ok(before.partitions.find((p) => p.topic === 'ev')!.pendingSegments > 0);
  assert.ok(!st0.out.includes('S3RVER"'), 'secrets are masked in status output');

  const up = await run(['tier', 'upload', '--dir', dir, '--tier', tierFile, '--roll'], true);
  assert.equal(up.code, 0, up.err);
  assert.match(up.out, /^uploaded \d+ segment\(s\)/);
  assert.match(up.err, /upload \[#+\] 100%/, 'a progress bar on a terminal');

  const st1 = await run(['tier', 'status', '--dir', dir, '--tier', tierFile]);
  assert.equal(st1.code, 0, st1.err);
  assert.match(st1.out, /ev-0 .* 0\.\.299 /);
  assert.match(st1.out, /logs-0 .* 0\.\.199 /);

  const target = tmp();
  const rs = await run(['tier', 'restore', '--dir', target, '--tier', tierFile], true);
  assert.equal(rs.code, 0, rs.err);
  assert.match(rs.out, /restored 2 topic\(s\) \(ev, logs\)/);
  assert.match(rs.err, /restore \[#+\] 100%/);
  const r = await Store.open(target, { readOnly: true });
  try {
    for (const [t, id] of [['ev', 0], ['ev', 1], ['logs', 0]] as const) {
      assert.deepEqual(await readPlain(r.partition(t, id), { offset: 0 }), expected[`${t}-${id}`], `${t}-${id}`);
    }
  } finally {
    await r.close();
  }
});

test('tier commands with --service/--option on an fs bucket; restore of one topic, metadata only; no progress off a terminal', async () => {
  const { dir, expected } = await makeStore();
  const root = tmp('sediment-cli-bucket-');
  const flags = ['--service', 'fs', '--option', `root=${root}`, '--prefix', 'p'];
  const up = await run(['tier', 'upload', '--dir', dir, ...flags, '--topic', 'logs', '--roll']);
  assert.equal(up.code, 0, up.err);
  assert.equal(up.err, '', 'no progress output off a terminal');
  assert.ok(fs.existsSync(path.join(root, 'p', 'topics.json')));
  const target = tmp();
  const rs = await run(['tier', 'restore', '--dir', target, ...flags, '--topic', 'logs', '--metadata-only']);
  assert.equal(rs.code, 0, rs.err);
  assert.match(rs.out, /logs-0: offsets 0\.\.199, next offset 200/);
  const r = await Store.open(target, { retentionCheckMs: -1, tier: { service: 'fs', options: { root }, prefix: 'p', ...FAST } });
  try {
    assert.deepEqual(r.listTopics(), ['logs']);
    assert.equal(r.partition('logs', 0).segments.length, 1, 'nothing downloaded');
    assert.deepEqual(await readPlain(r.partition('logs', 0), { offset: 0 }), expected['logs-0']);
  } finally {
    await r.close();
  }
});

test('tier commands: usage errors, a locked store and an unreachable object store', async () => {
  const { dir } = await makeStore();
  const noStore = await run(['tier', 'status', '--dir', dir]);
  assert.equal(noStore.code, 1);
  assert.match(noStore.err, /--tier <file.json> or --service/);
  const badJson = path.join(tmp(), 'bad.json');
  fs.writeFileSync(badJson, '{ not json');
  assert.equal((await run(['tier', 'status', '--dir', dir, '--tier', badJson])).code, 1);
  assert.equal((await run(['tier', 'status', '--dir', dir, '--service', 'fs', '--option', 'noequals'])).code, 1);
  assert.equal((await run(['tier', 'upload', '--dir', dir, '--tier', writeTierFile({ service: 'fs', bogus: 1 } as unknown as TierConfig)])).code, 1);

  // Another writer holds the store: upload exits 4, status (read-only) still works.
  const tierFile = writeTierFile(s3.tier('cli-lock', FAST));
  const holder = await Store.open(dir, { retentionCheckMs: -1 });
  try {
    assert.equal((await run(['tier', 'upload', '--dir', dir, '--tier', tierFile])).code, 4);
    assert.equal((await run(['tier', 'status', '--dir', dir, '--tier', tierFile])).code, 0);
  } finally {
    await holder.close();
  }

  // Nothing listens on this port: upload fails with exit 5 and a clear message; status reports it.
  const dead = writeTierFile({ ...s3.tier('x', { ...FAST, retryTotalMs: 200 }), options: { ...s3.tier().options!, endpoint: 'http://127.0.0.1:9' } });
  const up = await run(['tier', 'upload', '--dir', dir, '--tier', dead, '--roll']);
  assert.equal(up.code, 5);
  assert.match(up.err, /object store unavailable/);
  const st = await run(['tier', 'status', '--dir', dir, '--tier', dead]);
  assert.equal(st.code, 5);
  assert.match(st.out, /unreachable/);
});
