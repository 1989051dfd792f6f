// `sediment serve`: Range semantics, CORS, path safety, the partition listing,
// and the command itself (spawned, read its URL, stopped with SIGTERM).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startServer, RunningServer, parseRange, safeJoin, CORS_HEADERS } from '../src/cli/serve_commands.js';
import { buildArchive, makeRecords, BuiltArchive } from './helpers/archive_fixture.js';
import { replay } from '../src/replay/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
let tmp: string;
let a: BuiltArchive;
let srv: RunningServer;

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-serve-'));
  a = await buildArchive({ root: path.join(tmp, 'archive'), records: makeRecords(300, 4), segmentBytes: 8 * 1024, prefix: 'pfx' });
  fs.mkdirSync(path.join(tmp, 'archive', 'broken-0'));
  fs.writeFileSync(path.join(tmp, 'archive', 'broken-0', 'manifest.json'), '{"format": 9}');
  fs.writeFileSync(path.join(tmp, 'secret.txt'), 'outside the archive');
  fs.symlinkSync(path.join(tmp, 'secret.txt'), path.join(tmp, 'archive', 'link.txt'));
  srv = await startServer({ dir: path.join(tmp, 'archive'), port: 0 });
});

after(async () => {
  await srv?.close();
  for (const d of [tmp, a?.storeDir]) if (d) fs.rmSync(d, { recursive: true, force: true });
});

/** A request with the raw path as given (fetch would normalise `..`). */
function raw(pathname: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: srv.port, path: pathname, method, headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts) }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('parseRange: single ranges, suffixes, open ends, clamping, unsatisfiable, ignored forms', () => {
  assert.deepEqual(parseRange('bytes=0-9', 100), { start: 0, end: 9 });
  assert.deepEqual(parseRange('bytes=90-', 100), { start: 90, end: 99 });
  assert.deepEqual(parseRange('bytes=-10', 100), { start: 90, end: 99 });
  assert.deepEqual(parseRange('bytes=-1000', 100), { start: 0, end: 99 });
  assert.deepEqual(parseRange('bytes=50-5000', 100), { start: 50, end: 99 });
  assert.equal(parseRange('bytes=100-', 100), 'unsatisfiable');
  assert.equal(parseRange('bytes=-0', 100), 'unsatisfiable');
  assert.equal(parseRange('bytes=0-0,5-9', 100), null);
  assert.equal(parseRange('bytes=9-1', 100), null);
  assert.equal(parseRange('items=0-9', 100), null);
  assert.equal(parseRange(undefined, 100), null);
});

test('safeJoin refuses paths that leave the root', () => {
  const r = '/srv/archive';
  assert.equal(safeJoin(r, '/a/b.log'), path.join(r, 'a', 'b.log'));
  assert.equal(safeJoin(r, '/a%20b'), path.join(r, 'a b'));
  for (const bad of ['/../etc/passwd', '/a/../../x', '/%2e%2e/x', '/a%2f..%2f..%2fx', '/a%5c..%5cx', '/a%00b', '/%E0%A4%A', '/./x']) {
    assert.equal(safeJoin(r, bad), null, bad);
  }
});

test('archive files: 206 with Content-Range, 200 without Range, 416 past the end, HEAD, CORS headers', async () => {
  const key = `/archive/${a.manifestRel.replace('manifest.json', a.manifest.segments[0]!.objects.log.key)}`;
  const file = fs.readFileSync(path.join(a.partitionDir, a.manifest.segments[0]!.objects.log.key));
  const r1 = await fetch(`${srv.url.slice(0, -1)}${key}`, { headers: { Range: 'bytes=10-19', Origin: 'http://elsewhere.test' } });
  assert.equal(r1.status, 206);
  assert.equal(r1.headers.get('content-range'), `bytes 10-19/${file.length}`);
  assert.equal(r1.headers.get('content-length'), '10');
  assert.equal(r1.headers.get('accept-ranges'), 'bytes');
  assert.ok(r1.headers.get('etag'));
  assert.equal(r1.headers.get('access-control-allow-origin'), '*');
  assert.match(r1.headers.get('access-control-expose-headers')!, /Content-Range/);
  assert.deepEqual(new Uint8Array(await r1.arrayBuffer()), new Uint8Array(file.subarray(10, 20)));
  const r2 = await fetch(`${srv.url.slice(0, -1)}${key}`);
  assert.equal(r2.status, 200);
  assert.equal((await r2.arrayBuffer()).byteLength, file.length);
  const r3 = await fetch(`${srv.url.slice(0, -1)}${key}`, { headers: { Range: `bytes=${file.length}-` } });
  assert.equal(r3.status, 416);
  assert.equal(r3.headers.get('content-range'), `bytes */${file.length}`);
  await r3.arrayBuffer();
  const r4 = await raw(key, {}, 'HEAD');
  assert.equal(r4.status, 200);
  assert.equal(r4.headers['content-length'], String(file.length));
  assert.equal(r4.body.length, 0);
  const pre = await raw(key, { Origin: 'http://elsewhere.test', 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'range' }, 'OPTIONS');
  assert.equal(pre.status, 204);
  assert.match(String(pre.headers['access-control-allow-headers']), /Range/);
  assert.equal((await raw(key, {}, 'POST')).status, 405);
  assert.deepEqual(Object.keys(CORS_HEADERS).sort(), ['Access-Control-Allow-Headers', 'Access-Control-Allow-Methods', 'Access-Control-Allow-Origin', 'Access-Control-Expose-Headers', 'Access-Control-Max-Age']);
});

test('path traversal and symlinks out of the archive are refused', async () => {
  for (const p of ['/archive/../secret.txt', '/archive/%2e%2e/secret.txt', '/archive/..%2fsecret.txt', '/web/../package.json', '/dist/src/../../package.json']) {
    const r = await raw(p);
    assert.ok(r.status === 400 || r.status === 404, `${p}: ${r.status}`);
    assert.ok(!r.body.toString().includes('outside the archive') && !r.body.toString().includes('"name"'), p);
  }
  assert.equal((await raw('/archive/link.txt')).status, 404);
});

test('the page, its modules and the partition listing are served', async () => {
  const home = await raw('/');
  assert.equal(home.status, 302);
  assert.equal(home.headers.location, '/web/');
  const page = await raw('/web/');
  assert.equal(page.status, 200);
  assert.match(String(page.headers['content-type']), /text\/html/);
  assert.match(page.body.toString(), /sediment replay/);
  const mod = await raw('/dist/src/replay/index.js');
  assert.equal(mod.status, 200);
  assert.match(String(mod.headers['content-type']), /javascript/);
  assert.equal((await raw('/dist/test/replay_node.test.js')).status, 404, 'only dist/src is served');
  const list = await (await fetch(`${srv.url}api/partitions`)).json() as { partitions: { manifest: string; topic?: string; segments?: number; logEndOffset?: number; error?: string }[] };
  const good = list.partitions.find((p) => p.topic === 'events')!;
  assert.equal(good.manifest, `/archive/${a.manifestRel}`);
  assert.equal(good.segments, a.manifest.segments.length);
  assert.equal(good.logEndOffset, 300);
  const broken = list.partitions.find((p) => p.manifest.includes('broken-0'))!;
  assert.match(broken.error!, /format/);
});

function runCli(args: string[]): { child: ReturnType<typeof spawn>; out: Promise<string>; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [path.join(root, 'bin', 'sediment.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  const out = new Promise<string>((resolve) => {
    child.stdout!.on('data', (c: Buffer) => { text += c.toString(); if (/archive: http/.test(text)) resolve(text); });
    child.on('exit', () => resolve(text));
  });
  child.stderr!.on('data', (c: Buffer) => { text += c.toString(); });
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, out, exit };
}

test('`sediment serve --dir D --port 0` prints its URLs, serves, and stops on SIGTERM', { timeout: 60_000 }, async () => {
  const { child, out, exit } = runCli(['serve', '--dir', path.join(tmp, 'archive'), '--port', '0', '--quiet']);
  try {
    const text = await out;
    const m = /page:\s+(http:\/\/127\.0\.0\.1:\d+\/)web\//.exec(text);
    assert.ok(m, text);
    assert.match(text, /2 archived partitions/);
    const res = await fetch(`${m[1]}api/partitions`);
    assert.equal(res.status, 200);
    await res.arrayBuffer();
  } finally {
    child.kill('SIGTERM');
  }
  assert.equal(await exit, 0);
  const bad = runCli(['serve', '--dir', path.join(tmp, 'does-not-exist')]);
  assert.equal(await bad.exit, 1);
  assert.match(await bad.out, /does not exist/);
});

test('a new user\'s path with the CLI only: create, produce, tier upload, serve, replay', { timeout: 120_000 }, async () => {
  const dir = path.join(tmp, 'newuser');
  const cli = (args: string[], input?: string): string => {
    const r = spawnSync(process.execPath, [path.join(root, 'bin', 'sediment.js'), ...args], { input, encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, `sediment ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  cli(['topics', 'create', '--dir', path.join(dir, 'store'), '--topic', 'events', '--config', 'segmentBytes=16384']);
  const lines = Array.from({ length: 3000 }, (_, i) => `user-${i % 7}\t{"n":${i}}`);
  cli(['produce', '--dir', path.join(dir, 'store'), '--topic', 'events', '--key-separator', '\t', '--header', 'source=cli'], lines.join('\n') + '\n');
  assert.match(cli(['tier', 'upload', '--dir', path.join(dir, 'store'), '--service', 'fs', '--option', `root=${path.join(dir, 'bucket')}`, '--roll']), /uploaded \d+ segment/);
  const { child, out, exit } = runCli(['serve', '--dir', path.join(dir, 'bucket'), '--port', '0', '--quiet']);
  try {
    const text = await out;
    const base = /archive: (http:\/\/127\.0\.0\.1:\d+)\/archive\//.exec(text)![1]!;
    const list = await (await fetch(`${base}/api/partitions`)).json() as { partitions: { manifest: string; logEndOffset: number }[] };
    assert.equal(list.partitions.length, 1);
    assert.equal(list.partitions[0]!.logEndOffset, 3000);
    const dec = new TextDecoder();
    const got: string[] = [];
    for await (const r of replay(`${base}${list.partitions[0]!.manifest}`, { from: { offset: 1000 } })) {
      assert.equal(dec.decode(r.headers[0]!.value!), 'cli');
      got.push(`${dec.decode(r.key!)}\t${dec.decode(r.value!)}`);
    }
    assert.deepEqual(got, lines.slice(1000));
  } finally {
    child.kill('SIGTERM');
  }
  assert.equal(await exit, 0);
});
