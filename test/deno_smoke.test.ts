// Runs test/fixtures/deno_smoke.js under the Deno binary from the installed
// `deno` npm package: the browser-safe modules in dist/ must load and give
// the same bytes as under Node (embedded base64 module, async compile, no
// Node APIs). Deno runs offline: no config, no lock file, no npm, cached only.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getKernelsSync } from '../src/kernels.js';
import { normalizeRecord } from '../src/record.js';
import { RecordBatchEncoder, stampBaseOffset } from '../src/record_batch.js';
import { crc32cRef } from './fixtures/reference.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

function denoBinary(): string {
  const exe = process.platform === 'win32' ? 'deno.exe' : 'deno';
  const pkgDir = dirname(createRequire(join(root, 'package.json')).resolve('deno/package.json'));
  for (const candidate of [join(pkgDir, exe), join(root, 'node_modules', '.bin', exe)]) {
    if (existsSync(candidate)) return candidate;
  }
  throw new Error(`no deno binary in ${pkgDir} or node_modules/.bin`);
}

interface SmokeOutput {
  runtime: string;
  crc: number;
  xxh: string;
  size: number;
  stop: number;
  batchCrc: number;
  records: { offset: number; timestamp: number; key: string | null; value: string | null; headers: [string, string | null][] }[];
}

test('the kernels load and agree with Node under Deno', { timeout: 180_000 }, () => {
  const fixture = join(root, 'test', 'fixtures', 'deno_smoke.js');
  assert.ok(existsSync(join(root, 'dist', 'src', 'kernels.js')), 'dist/ is built');
  const denoDir = mkdtempSync(join(tmpdir(), 'sediment-deno-'));
  let r;
  try {
    r = spawnSync(denoBinary(),
      ['run', '--no-config', '--no-lock', '--no-npm', '--cached-only', `--allow-read=${root}`, fixture], {
        cwd: root,
        encoding: 'utf8',
        timeout: 150_000,
        env: { ...process.env, DENO_DIR: denoDir, DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' },
      });
  } finally {
    rmSync(denoDir, { recursive: true, force: true });
  }
  assert.equal(r.error, undefined, `spawn failed: ${r.error}`);
  assert.equal(r.status, 0, `deno exited ${r.status} (${r.signal}):\n${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  const got = JSON.parse(lines[lines.length - 1]!) as SmokeOutput;

  assert.equal(got.runtime, 'deno');
  assert.equal(got.crc, 0xe3069283);
  assert.equal(got.xxh, '44bc2cf5ad770999');
  assert.equal(got.stop, 0, 'scan reached the end');
  assert.deepEqual(got.records, [
    { offset: 42, timestamp: 1_700_000_000_000, key: null, value: 'hello', headers: [] },
    { offset: 43, timestamp: 1_700_000_000_007, key: 'k', value: 'deno', headers: [['h', 'x']] },
  ]);

  // The same batch encoded under Node: same size, same CRC (so same bytes
  // in the CRC-covered range), and that CRC is right.
  const k = getKernelsSync();
  const inputs = [
    { key: null, value: 'hello', timestamp: 1_700_000_000_000 },
    { key: 'k', value: 'deno', timestamp: 1_700_000_000_007, headers: [['h', 'x']] },
  ];
  const out = k.newBuffer(256);
  try {
    const size = new RecordBatchEncoder(k).encode(inputs.map((x, i) => normalizeRecord(x, i, 0)), out);
    stampBaseOffset(k, out.ptr, 42);
    const bytes = k.u8.slice(out.ptr, out.ptr + size);
    assert.equal(got.size, size);
    assert.equal(got.batchCrc, new DataView(bytes.buffer).getUint32(17));
    assert.equal(got.batchCrc, crc32cRef(bytes.subarray(21)));
  } finally {
    out.free();
  }
});
