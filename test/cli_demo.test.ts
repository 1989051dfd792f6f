// The `npm start` demo (src/demo.ts): runs end to end on a small record
// count, every section (log, produce path, zero-copy reads, dedup, KV,
// tiering) reports figures that follow from its sizes (duplicates dropped =
// duplicates injected, restored records all equal, ...), is safe to re-run
// (resets only its own topics), leaves data the CLI can read, refuses a
// locked store with exit 4, and runs as a script.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runDemo, LOG_TOPIC, SECTIONS, PRODUCE_TOPIC, DEDUP_TOPIC, PLAIN_TOPIC, KV_NAMESPACE, TIER_TOPIC } from '../src/demo.js';
import { Store } from '../src/store.js';
import { main } from '../src/cli/main.js';

const DEMO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'demo.js');

async function demo(dir: string, records: number): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = [];
  const code = await runDemo({ dir, records, out: (l) => lines.push(l) });
  return { code, lines };
}

/** The number in a printed figure ("12,345"). */
const num = (s: string) => Number(s.replace(/,/g, ''));

/** The section titled `start...` (up to the next blank line). */
function section(text: string, start: string): string {
  const i = text.indexOf(`\n${start}`);
  assert.ok(i >= 0, `section "${start}" missing`);
  const end = text.indexOf('\n\n', i + 1);
  return text.slice(i, end < 0 ? text.length : end);
}

/** One row's value: `  label   value`. */
function rowOf(sec: string, label: string): string {
  const line = sec.split('\n').find((l) => l.startsWith(`  ${label} `) && l.slice(2 + label.length).match(/^ +\S/));
  assert.ok(line, `row "${label}" missing in:\n${sec}`);
  return line.slice(2 + label.length).trim();
}

/**
 * Checks every section after the log one ran and reported what it did, with
 * figures that follow from the record count (the demo's sizes are
 * deterministic: 10% duplicate keys, KV deletes of 10%, one forgotten key).
 */
function checkSections(text: string, records: number, dir: string): void {
  assert.deepEqual(SECTIONS.map((s) => s.title.split(' ')[0]), ['Partitioned', 'Produce', 'Zero-copy', 'Dedup', 'KV', 'Tiered']);
  const rate = /[\d,]+ records\/s, [\d.]+ MB\/s/;

  const produce = section(text, 'Produce path');
  // With fewer than 8 MiB of log, segment 0 holds every record of the log section.
  assert.match(rowOf(produce, 'source'), new RegExp(`segment 0: [\\d.]+ MB, ${records.toLocaleString('en-US')} records`));
  assert.match(rowOf(produce, 'appendBatchesSync'), new RegExp(`^${records.toLocaleString('en-US')} records in `));
  assert.match(rowOf(produce, 'appendBatchesSync'), rate);
  const same = /nothing re-encoded \(([\d,]+) bytes written = bytes received\)/.exec(produce);
  assert.ok(same && num(same[1]!) > records * 100, produce);
  assert.match(rowOf(produce, 'read back, verified'), new RegExp(`^${records.toLocaleString('en-US')} records equal to the source`));

  const views = section(text, 'Zero-copy reads');
  for (const label of ['read()', 'readViews()', 'readViews(reuseBuffers)']) assert.match(rowOf(views, label), rate, label);
  assert.match(views, /readViews [\d.]+x read\(\), with reuseBuffers [\d.]+x/);

  const dedup = section(text, 'Dedup');
  const m = Math.max(1000, Math.min(records, 100_000));
  const sent = /^([\d,]+) records with ([\d,]+) duplicate keys \(([\d,]+) within one append, ([\d,]+) across appends\)/.exec(rowOf(dedup, 'appended'));
  assert.ok(sent, dedup);
  const dups = num(sent[2]!);
  assert.equal(num(sent[1]!), m);
  assert.equal(dups, m / 10, '10% duplicates injected');
  assert.equal(num(sent[3]!) + num(sent[4]!), dups);
  assert.ok(num(sent[3]!) > 0 && num(sent[4]!) > 0, 'duplicates both within and across appends');
  const dropped = /^([\d,]+) duplicates; kept ([\d,]+) at contiguous offsets 0\.\.([\d,]+)$/.exec(rowOf(dedup, 'dropped'));
  assert.ok(dropped, dedup);
  assert.equal(num(dropped[1]!), dups, 'dedup dropped exactly the injected duplicates');
  assert.equal(num(dropped[2]!), m - dups);
  assert.equal(num(dropped[3]!), m - dups - 1);
  const stats = /^checked ([\d,]+), dropped ([\d,]+), window ([\d,]+) of ([\d,]+)/.exec(rowOf(dedup, 'stats'));
  assert.ok(stats, dedup);
  assert.deepEqual([num(stats[1]!), num(stats[2]!), num(stats[3]!)], [m, dups, m - dups]);
  assert.match(rowOf(dedup, 'dedup on'), /^[\d,]+ records\/s/);
  assert.match(rowOf(dedup, 'dedup off'), /^[\d,]+ records\/s/);
  assert.match(rowOf(dedup, 'close + reopen'), new RegExp(`window rebuilt from the log \\(${(m - dups).toLocaleString('en-US')} records read, ${(m - dups).toLocaleString('en-US')} entries\\)`));
  assert.match(rowOf(dedup, 'after reopen'), new RegExp(`dropped: 1, new key kept at offset ${(m - dups).toLocaleString('en-US')}$`));

  const kv = section(text, 'KV store');
  const k = Math.max(1000, Math.min(records, 100_000));
  assert.match(rowOf(kv, 'put'), new RegExp(`^${k.toLocaleString('en-US')} keys .* [\\d,]+ puts/s`));
  assert.match(rowOf(kv, 'get (random, verified)'), new RegExp(`^${k.toLocaleString('en-US')} gets in .* [\\d,]+ gets/s`));
  assert.match(rowOf(kv, 'getMany'), /[\d,]+ keys\/s/);
  assert.match(rowOf(kv, 'range scan'), new RegExp(`: ${(k / 10).toLocaleString('en-US')} entries in key order`));
  assert.match(rowOf(kv, 'prefix scan'), /: [\d,]+ keys in /);
  assert.match(rowOf(kv, 'delete + forget'), /forgot user:\d+ \(hidden, kept for audit: 1\)/);
  assert.match(rowOf(kv, 'consumer offsets'), new RegExp(`committed ${LOG_TOPIC}/0 at ${Math.floor(records / 2).toLocaleString('en-US')} in `));
  const del = Math.min(1000, Math.floor(k / 10));
  assert.match(rowOf(kv, 'close + reopen'), new RegExp(`kv\\('${KV_NAMESPACE}'\\) open .*; ${(k - del - 1).toLocaleString('en-US')} keys$`));

  const tier = section(text, 'Tiered storage');
  const t = Math.max(1000, Math.min(records, 100_000));
  const up = /^(\d+) segments \(log \+ indexes \+ manifest: (\d+) requests\), [\d.]+ MB in .*: [\d.]+ MB\/s$/.exec(rowOf(tier, 'archive closed segments'));
  assert.ok(up && Number(up[1]) >= 2, tier);
  const evicted = /^(\d+) segments evicted .*local log now starts at offset ([\d,]+), .*logStartOffset still 0$/.exec(rowOf(tier, 'evict local copies'));
  assert.ok(evicted, tier);
  assert.equal(evicted[1], up[1], 'every archived segment was evicted');
  assert.ok(num(evicted[2]!) > 0 && num(evicted[2]!) < t);
  assert.match(rowOf(tier, 'read from offset 0'), new RegExp(`^${t.toLocaleString('en-US')} records \\(${evicted[2]} from the object store, the rest local\\), verified: [\\d,]+ records/s$`));
  assert.match(rowOf(tier, 'Store.restore'), new RegExp(`from the object store alone in .*: all ${t.toLocaleString('en-US')} records equal$`));
  assert.ok(fs.existsSync(path.join(dir, 'tier-bucket', 'demo')), 'the archive is under <dir>/tier-bucket/demo');

  // Each new section leaves something to explore with the CLI.
  for (const c of [
    `npx sediment dump ${path.join(dir, `${PRODUCE_TOPIC}-0`, '00000000000000000000.log')} --records`,
    `npx sediment topics describe --dir ${dir} --topic ${DEDUP_TOPIC}`,
    `npx sediment kv scan --dir ${dir} --ns ${KV_NAMESPACE}`,
    `npx sediment groups --dir ${dir}`,
    `npx sediment tier status --dir ${path.join(dir, 'tier-store')} --service fs`,
  ]) assert.ok(text.includes(c), c);
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
    checkSections(text, 3000, dir);

    const second = await demo(dir, 2000);
    assert.equal(second.code, 0);
    checkSections(second.lines.join('\n'), 2000, dir);
    const store = await Store.open(dir, { readOnly: true });
    try {
      assert.equal(store.partition(LOG_TOPIC, 0).logEndOffset, 2000, 'the demo topic was reset, not appended to');
      assert.equal(store.partition('keep-me', 0).logEndOffset, 1);
      assert.equal(store.partition(PRODUCE_TOPIC, 0).logEndOffset, 2000, 'the produce topic was reset');
      assert.equal(store.partition(DEDUP_TOPIC, 0).logEndOffset, 1800 + 1, 'the dedup topic was reset (kept records + one after reopen)');
      assert.equal(store.partition(PLAIN_TOPIC, 0).logEndOffset, 2000);
      assert.equal((await store.kv(KV_NAMESPACE)).count(), 2000 - 200 - 1, 'the KV namespace was reset');
      assert.equal((await store.consumerOffsets()).fetchOffsets('demo-group')[0]?.offset, 1000);
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

test('demo runs as a script (node dist/src/demo.js)', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-demo-'));
  try {
    const r = spawnSync(process.execPath, [DEMO, '--records', '1500'], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^sediment demo: store at .*\/data /);
    assert.ok(fs.existsSync(path.join(dir, 'data', `${LOG_TOPIC}-0`, '00000000000000000000.log')));
    assert.match(r.stdout, /Store.restore +data\/tier-restored from the object store alone .*: all 1,500 records equal/);
    const restored = await Store.open(path.join(dir, 'data', 'tier-restored'), { readOnly: true });
    try {
      assert.equal(restored.partition(TIER_TOPIC, 0).logEndOffset, 1500);
    } finally {
      await restored.close();
    }
    const bad = spawnSync(process.execPath, [DEMO, '--frobnicate'], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /usage: node dist\/src\/demo\.js/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
