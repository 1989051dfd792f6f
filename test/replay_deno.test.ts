// sediment/replay under Deno: the binary from the `deno` npm package runs
// test/helpers/deno_replay.js (dist/ imported directly: no npm, no config,
// offline) against an archive served by `sediment serve`'s server, and what
// it reads must equal what Node reads.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { startServer, RunningServer } from '../src/cli/serve_commands.js';
import { buildArchive, makeRecords, plain, BuiltArchive, PlainRecord } from './helpers/archive_fixture.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
let tmp: string;
let a: BuiltArchive;
let expected: PlainRecord[];
let srv: RunningServer;

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-replay-deno-'));
  a = await buildArchive({ root: path.join(tmp, 'served'), records: makeRecords(1500, 41), segmentBytes: 32 * 1024 });
  expected = a.records.map(plain);
  // A corrupted copy of the archive next to it.
  fs.cpSync(path.join(tmp, 'served', a.manifestRel.split('/')[0]!), path.join(tmp, 'served', 'corrupt'), { recursive: true });
  const seg = a.manifest.segments[1]!;
  const f = path.join(tmp, 'served', 'corrupt', a.manifestRel.split('/')[1]!, seg.objects.log.key);
  const bytes = fs.readFileSync(f);
  bytes[100]! ^= 1;
  fs.writeFileSync(f, bytes);
  srv = await startServer({ dir: path.join(tmp, 'served'), port: 0 });
});

after(async () => {
  await srv?.close();
  for (const d of [tmp, a?.storeDir]) if (d) fs.rmSync(d, { recursive: true, force: true });
});

function denoBinary(): string {
  const pkgDir = path.dirname(createRequire(path.join(root, 'package.json')).resolve('deno/package.json'));
  for (const c of [path.join(pkgDir, 'deno'), path.join(root, 'node_modules', '.bin', 'deno')]) if (fs.existsSync(c)) return c;
  throw new Error(`no deno binary in ${pkgDir}`);
}

interface DenoOut { runtime: string; results: { records: PlainRecord[]; err: { name: string; code?: string; message: string } | null; roundTrips: number }[] }

function runDeno(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const denoDir = fs.mkdtempSync(path.join(tmp, 'deno-dir-'));
  return new Promise((resolve, reject) => {
    const port = new URL(srv.url).port;
    const child = spawn(denoBinary(), ['run', '--no-config', '--no-lock', '--no-npm', '--cached-only', `--allow-read=${root}`,
      `--allow-net=127.0.0.1:${port}`, path.join(root, 'test', 'helpers', 'deno_replay.js'), ...args], {
      cwd: root, env: { ...process.env, DENO_DIR: denoDir, DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => { stdout += c.toString(); });
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 150_000);
    child.on('error', reject);
    child.on('exit', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

test('Deno replays the archive exactly as Node reads it', { timeout: 180_000 }, async () => {
  const url = `${srv.url}archive/${a.manifestRel}`;
  const t = expected[900]!.timestamp;
  const queries = [
    { opts: {} },
    { opts: { from: { offset: 613 }, chunkBytes: 65536, firstChunkBytes: 4096, prefetch: 1 } },
    { opts: { from: { timestamp: t }, maxRecords: 50 } },
    { opts: { from: { offset: 99999 } } },
    { url: `${srv.url}archive/corrupt/${a.manifestRel.split('/').slice(1).join('/')}`, opts: {} },
  ];
  const r = await runDeno([url, JSON.stringify(queries)]);
  assert.equal(r.code, 0, `deno exited ${r.code}:\n${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  const out = JSON.parse(lines[lines.length - 1]!) as DenoOut;
  assert.match(out.runtime, /^deno \d/);
  const [whole, mid, byTime, outside, corrupt] = out.results;
  assert.equal(whole!.err, null);
  assert.deepEqual(whole!.records, expected);
  assert.equal(whole!.roundTrips, 2);
  assert.deepEqual(mid!.records, expected.slice(613));
  const first = expected.findIndex((x) => x.timestamp >= t);
  assert.deepEqual(byTime!.records, expected.slice(first, first + 50));
  assert.equal(outside!.err?.code, 'ERR_OFFSET_OUT_OF_RANGE');
  assert.equal(corrupt!.err?.code, 'ERR_CORRUPTION');
  assert.deepEqual(corrupt!.records, expected.slice(0, corrupt!.records.length));
});
