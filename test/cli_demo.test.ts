// The `npm start` demo (src/demo.ts): runs end to end on a small record
// count, is safe to re-run (resets only its own topic), leaves data the CLI
// can read, refuses a locked store with exit 4, and runs as a script.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runDemo, LOG_TOPIC, SECTIONS } from '../src/demo.js';
import { Store } from '../src/store.js';
import { main } from '../src/cli/main.js';

const DEMO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'demo.js');

async function demo(dir: string, records: number): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = [];
  const code = await runDemo({ dir, records, out: (l) => lines.push(l) });
  return { code, lines };
}

test('demo runs, is re-runnable, keeps other topics, and its data passes verify', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-demo-'));
  try {
    assert.ok(SECTIONS.length >= 1);
    const other = await Store.open(dir, { retentionCheckMs: -1 });
    await other.createTopic('keep-me');
    await other.partition('keep-me', 0).append([{ value: 'still here' }]);
    await other.close();

    const first = await demo(dir, 3000);
    assert.equal(first.code, 0);
    const text = first.lines.join('\n');
    for (const label of ['append', 'flush (fdatasync)', 'read back, verified', 'seek by offset', 'seek by timestamp', 'close + reopen']) {
      assert.match(text, new RegExp(`\\n  ${label.replace(/[()+]/g, '\\$&')} +\\S`), label);
    }
    assert.match(text, /3,000 records \(100 B values, 1000 per append\)/);
    assert.match(text, /[\d,]+ records\/s, [\d.]+ MB\/s of log/);
    assert.match(text, /[\d,]+ lookups\/s/);
    assert.ok(text.includes(`npx sediment topics describe --dir ${dir} --topic ${LOG_TOPIC}`));

    const second = await demo(dir, 2000);
    assert.equal(second.code, 0);
    const store = await Store.open(dir, { readOnly: true });
    try {
      assert.equal(store.partition(LOG_TOPIC, 0).logEndOffset, 2000, 'the demo topic was reset, not appended to');
      assert.equal(store.partition('keep-me', 0).logEndOffset, 1);
    } finally {
      await store.close();
    }
    const sink = { s: '', write(x: string | Uint8Array) { this.s += String(x); return true; } };
    assert.equal(await main(['node', 'sediment', 'verify', '--dir', dir], { stdout: sink, stderr: sink, isTTY: false }), 0, sink.s);

    const writer = await Store.open(dir, { retentionCheckMs: -1 });
    try {
      const locked = await demo(dir, 100);
      assert.equal(locked.code, 4);
      assert.match(locked.lines.join('\n'), /locked by another writer/);
    } finally {
      await writer.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('demo runs as a script (node dist/src/demo.js)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-demo-'));
  try {
    const r = spawnSync(process.execPath, [DEMO, '--records', '1500'], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^sediment demo: store at .*\/data /);
    assert.ok(fs.existsSync(path.join(dir, 'data', `${LOG_TOPIC}-0`, '00000000000000000000.log')));
    const bad = spawnSync(process.execPath, [DEMO, '--frobnicate'], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /usage: node dist\/src\/demo\.js/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
