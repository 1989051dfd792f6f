// The `sediment` log commands end to end: topics, produce (stdin streams),
// consume (json/text, by offset and timestamp, --follow), dump of each file
// type, verify on clean and damaged stores, and the exit codes scripts rely
// on (1 usage, 2 corruption, 3 not found, 4 locked). Most runs call main()
// in-process; a few spawn bin/sediment.js to check the real binary.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { main } from '../src/cli/main.js';
import { lineBatches, parseTopicConfig } from '../src/cli/log_commands.js';
import { Store } from '../src/store.js';
import { StoredRecord, RecordInput } from '../src/record.js';
import { TopicConfig } from '../src/topic_config.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = path.join(ROOT, 'bin', 'sediment.js');

class Sink {
  chunks: Buffer[] = [];
  write(s: string | Uint8Array): boolean {
    this.chunks.push(typeof s === 'string' ? Buffer.from(s) : Buffer.from(s));
    return true;
  }
  get bytes(): Buffer { return Buffer.concat(this.chunks); }
  get text(): string { return this.bytes.toString('utf8'); }
}

interface Run { code: number; out: string; err: string; outBytes: Buffer }

async function run(args: string[], stdin: string | Buffer | Buffer[] = [], isTTY = false): Promise<Run> {
  const stdout = new Sink();
  const stderr = new Sink();
  const chunks = Array.isArray(stdin) ? stdin : [typeof stdin === 'string' ? Buffer.from(stdin) : stdin];
  const code = await main(['node', 'sediment', ...args], { stdout, stderr, stdin: Readable.from(chunks), isTTY });
  return { code, out: stdout.text, err: stderr.text, outBytes: stdout.bytes };
}

function tmp(): string { return fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-cli-')); }

interface JsonRecord { offset: number; timestamp: number; key: string | null; value: string | null; headers: [string, string | null][] }

function jsonLines<T = JsonRecord>(s: string): T[] {
  return s.split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l) as T);
}

const b64 = (b: Uint8Array | null) => (b === null ? null : Buffer.from(b).toString('base64'));

/** What the API reads, in the JSON shape consume prints. */
async function apiRecords(dir: string, topic: string, partition = 0, from = 0): Promise<JsonRecord[]> {
  const store = await Store.open(dir, { readOnly: true });
  try {
    const out: JsonRecord[] = [];
    for await (const r of store.partition(topic, partition).read({ offset: from })) out.push(toJson(r));
    return out;
  } finally {
    await store.close();
  }
}

function toJson(r: StoredRecord): JsonRecord {
  return { offset: r.offset, timestamp: r.timestamp, key: b64(r.key), value: b64(r.value), headers: r.headers.map((h) => [h.key, b64(h.value)]) };
}

/** A store built through the API: `batches` appends of `perBatch` records with timestamps 1000 * (offset + 1). */
async function buildStore(dir: string, topic: string, batches: number, perBatch: number, config: Partial<TopicConfig> = {}): Promise<void> {
  const store = await Store.open(dir, { retentionCheckMs: -1 });
  try {
    await store.createTopic(topic, { config: { segmentBytes: 1024, indexIntervalBytes: 0, ...config } });
    const p = store.partition(topic, 0);
    let o = 0;
    for (let b = 0; b < batches; b++) {
      const recs: RecordInput[] = [];
      for (let i = 0; i < perBatch; i++, o++) {
        recs.push({ key: o % 3 === 0 ? null : `k${o}`, value: `value-${o}-${'x'.repeat(o % 40)}`, timestamp: 1000 * (o + 1), headers: o % 2 ? [['h', `${o}`], ['n', null]] : [] });
      }
      await p.append(recs);
    }
  } finally {
    await store.close();
  }
}

function segmentFiles(dir: string, suffix: string): string[] {
  return fs.readdirSync(dir).filter((n) => n.endsWith(suffix)).sort().map((n) => path.join(dir, n));
}

interface DumpBatch { type: string; position: number; baseOffset: number; lastOffset: number; count: number; size: number; maxTimestamp: number; crcValid: boolean; valid: boolean; records?: JsonRecord[] }

describe('sediment topics', () => {
  let dir: string;
  before(() => { dir = tmp(); });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('create, list and describe (text and json)', async () => {
    const c = await run(['topics', 'create', '--dir', dir, '--topic', 'orders', '--partitions', '3', '--config', 'segmentBytes=4096', 'retention.ms=-1', '--config', 'cleanup.policy=delete']);
    assert.equal(c.code, 0, c.err);
    assert.equal(c.out, 'created topic orders with 3 partitions\n');
    const l = await run(['topics', 'list', '--dir', dir]);
    assert.equal(l.out, 'orders\n');
    assert.deepEqual(JSON.parse((await run(['topics', 'list', '--dir', dir, '--format', 'json'])).out), ['orders']);
    const d = await run(['topics', 'describe', '--dir', dir, '--topic', 'orders', '--format', 'json']);
    assert.equal(d.code, 0, d.err);
    const desc = JSON.parse(d.out) as { name: string; partitions: { partition: number; logStartOffset: number; logEndOffset: number; highWatermark: number; segments: number; bytes: number }[]; config: TopicConfig };
    assert.equal(desc.name, 'orders');
    assert.deepEqual(desc.partitions.map((p) => p.partition), [0, 1, 2]);
    for (const p of desc.partitions) assert.deepEqual([p.logStartOffset, p.logEndOffset, p.highWatermark, p.segments, p.bytes], [0, 0, 0, 1, 0]);
    assert.equal(desc.config.segmentBytes, 4096);
    assert.equal(desc.config.retentionMs, -1);
    const t = await run(['topics', 'describe', '--dir', dir, '--topic', 'orders']);
    assert.match(t.out, /^topic: orders\npartitions: 3\n/);
    assert.match(t.out, /segmentBytes: 4096/);
    assert.match(t.out, /\npartition +logStartOffset +logEndOffset +highWatermark +segments +bytes\n0 +0 +0 +0 +1 +0\n1 +0 +0 +0 +1 +0\n2 +0 +0 +0 +1 +0\n$/);
  });

  test('describe reflects produced data', async () => {
    const p = await run(['produce', '--dir', dir, '--topic', 'orders', '--partition', '1'], 'a\nb\nc\n');
    assert.equal(p.code, 0, p.err);
    const desc = JSON.parse((await run(['topics', 'describe', '--dir', dir, '--topic', 'orders', '--format', 'json'])).out) as { partitions: { logEndOffset: number; highWatermark: number; bytes: number }[] };
    assert.equal(desc.partitions[1]!.logEndOffset, 3);
    assert.equal(desc.partitions[1]!.highWatermark, 3);
    assert.equal(desc.partitions[1]!.bytes, fs.statSync(path.join(dir, 'orders-1', '00000000000000000000.log')).size);
    assert.equal(desc.partitions[0]!.logEndOffset, 0);
  });

  test('bad input is a usage error (1) and changes nothing', async () => {
    for (const args of [
      ['--config', 'segmentBytez=1'],
      ['--config', 'segmentBytes=big'],
      ['--config', 'segmentBytes'],
      ['--config', 'segmentBytes=10'], // below the minimum
      ['--partitions', '0'],
      ['--partitions', 'two'],
    ]) {
      const r = await run(['topics', 'create', '--dir', dir, '--topic', 'bad', ...args]);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.err}`);
      assert.match(r.err, /^sediment: /);
    }
    assert.equal((await run(['topics', 'create', '--dir', dir, '--topic', 'no/slash'])).code, 1);
    assert.equal((await run(['topics', 'create', '--dir', dir])).code, 1); // missing --topic
    assert.equal((await run(['topics', 'frobnicate', '--dir', dir])).code, 1);
    assert.equal((await run(['topics', 'list', '--dir', dir])).out, 'orders\n');
  });

  test('existing topic: 5, or 0 with --if-not-exists', async () => {
    const r = await run(['topics', 'create', '--dir', dir, '--topic', 'orders']);
    assert.equal(r.code, 5);
    assert.match(r.err, /already exists/);
    const r2 = await run(['topics', 'create', '--dir', dir, '--topic', 'orders', '--if-not-exists']);
    assert.equal(r2.code, 0);
    assert.equal(r2.out, 'topic orders exists\n');
  });

  test('delete removes the topic and its directories', async () => {
    assert.equal((await run(['topics', 'create', '--dir', dir, '--topic', 'gone', '--partitions', '2'])).code, 0);
    assert.ok(fs.existsSync(path.join(dir, 'gone-1')));
    const r = await run(['topics', 'delete', '--dir', dir, '--topic', 'gone']);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, 'deleted topic gone\n');
    assert.equal(fs.existsSync(path.join(dir, 'gone-0')), false);
    assert.equal((await run(['topics', 'describe', '--dir', dir, '--topic', 'gone'])).code, 3);
  });

  test('--config parsing: Kafka names, integers, dedup as JSON', () => {
    assert.deepEqual(parseTopicConfig(['segment.bytes=2048', 'maxMessageBytes=1024', 'cleanup.policy=compact', 'dedup={"by":"key","window":{"count":10}}']),
      { segmentBytes: 2048, maxMessageBytes: 1024, cleanupPolicy: 'compact', dedup: { by: 'key', window: { count: 10 } } });
    assert.throws(() => parseTopicConfig(['dedup={oops']), /must be JSON/);
    assert.throws(() => parseTopicConfig(['flush.ms=1.5']), /must be an integer/);
  });
});

describe('sediment produce and consume', () => {
  let dir: string;
  before(() => { dir = tmp(); });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('stdin lines -> records; consume --format json equals what the API reads (null vs empty key, headers)', async () => {
    assert.equal((await run(['topics', 'create', '--dir', dir, '--topic', 'kv'])).code, 0);
    // Split across chunks mid-line and mid-CRLF; a separator inside the value stays there.
    const input = [Buffer.from('k1\tv1\n\temp'), Buffer.from('ty-key\nk3\t\nk4\tva'), Buffer.from('lue\twith tab\r'), Buffer.from('\nk5\tlast')];
    const p = await run(['produce', '--dir', dir, '--topic', 'kv', '--key-separator', '\t', '--header', 'trace=abc', '--header', 'flag'], input);
    assert.equal(p.code, 0, p.err);
    assert.equal(p.out, 'produced 5 records to kv-0 at offsets 0..4\n');
    const p2 = await run(['produce', '--dir', dir, '--topic', 'kv'], 'no key\n\n');
    assert.equal(p2.out, 'produced 2 records to kv-0 at offsets 5..6\n');
    const p3 = await run(['produce', '--dir', dir, '--topic', 'kv', '--key', 'fixed'], 'x\n');
    assert.equal(p3.out, 'produced 1 record to kv-0 at offsets 7..7\n');

    const c = await run(['consume', '--dir', dir, '--topic', 'kv', '--partition', '0', '--format', 'json']);
    assert.equal(c.code, 0, c.err);
    const got = jsonLines(c.out);
    assert.deepEqual(got, await apiRecords(dir, 'kv'));
    const s = (x: string) => Buffer.from(x).toString('base64');
    const hdrs: [string, string | null][] = [['trace', s('abc')], ['flag', null]];
    assert.deepEqual(got.map((r) => [r.key, r.value, r.headers]), [
      [s('k1'), s('v1'), hdrs],
      ['', s('empty-key'), hdrs],
      [s('k3'), '', hdrs],
      [s('k4'), s('value\twith tab'), hdrs],
      [s('k5'), s('last'), hdrs],
      [null, s('no key'), []],
      [null, '', []],
      [s('fixed'), s('x'), []],
    ]);
    assert.deepEqual(got.map((r) => r.offset), [0, 1, 2, 3, 4, 5, 6, 7]);
  });

  test('consume text, --key-separator, --offset, --max, latest', async () => {
    const t = await run(['consume', '--dir', dir, '--topic', 'kv', '--max', '3']);
    assert.equal(t.out, 'v1\nempty-key\n\n');
    const k = await run(['consume', '--dir', dir, '--topic', 'kv', '--offset', '4', '--key-separator', '=']);
    assert.equal(k.out, 'k5=last\n=no key\n=\nfixed=x\n');
    assert.equal((await run(['consume', '--dir', dir, '--topic', 'kv', '--offset', 'latest'])).out, '');
    assert.equal((await run(['consume', '--dir', dir, '--topic', 'kv', '--offset', '8'])).code, 0);
    const oor = await run(['consume', '--dir', dir, '--topic', 'kv', '--offset', '9']);
    assert.equal(oor.code, 1);
    assert.match(oor.err, /outside the log \[0, 8\]/);
    assert.equal((await run(['consume', '--dir', dir, '--topic', 'kv', '--offset', '1', '--timestamp', '5'])).code, 1);
    assert.equal((await run(['consume', '--dir', dir, '--topic', 'kv', '--format', 'xml'])).code, 1);
  });

  test('produce batches large inputs and keeps bytes exact (binary, CRLF stripped only at line end)', async () => {
    assert.equal((await run(['topics', 'create', '--dir', dir, '--topic', 'big'])).code, 0);
    const lines: Buffer[] = [];
    const noLf = (b: number) => (b === 10 ? 11 : b);
    for (let i = 0; i < 2500; i++) lines.push(Buffer.from([0xff, 0x00, 0x0d, noLf(i & 0xff), noLf((i >> 8) & 0xff), 0x80]));
    const input = Buffer.concat(lines.flatMap((l) => [l, Buffer.from('\n')]));
    // Feed it in awkward 7-byte chunks.
    const chunks: Buffer[] = [];
    for (let i = 0; i < input.length; i += 7) chunks.push(input.subarray(i, i + 7));
    const p = await run(['produce', '--dir', dir, '--topic', 'big'], chunks);
    assert.equal(p.out, 'produced 2500 records to big-0 at offsets 0..2499\n');
    const c = jsonLines((await run(['consume', '--dir', dir, '--topic', 'big', '--format', 'json'])).out);
    assert.equal(c.length, 2500);
    c.forEach((r, i) => assert.deepEqual(Buffer.from(r.value!, 'base64'), lines[i]));
    // Text output is the raw bytes, one record per line.
    const text = await run(['consume', '--dir', dir, '--topic', 'big', '--max', '2']);
    assert.deepEqual(text.outBytes, Buffer.concat([lines[0]!, Buffer.from('\n'), lines[1]!, Buffer.from('\n')]));
  });

  test('a line without the key separator stops produce (1) after writing the lines before it', async () => {
    assert.equal((await run(['topics', 'create', '--dir', dir, '--topic', 'sep'])).code, 0);
    const r = await run(['produce', '--dir', dir, '--topic', 'sep', '--key-separator', ':'], 'a:1\nb:2\nbad line\nc:3\n');
    assert.equal(r.code, 1);
    assert.match(r.err, /input line 3 has no key separator ":"; 2 records were written at offsets 0\.\.1/);
    assert.deepEqual((await apiRecords(dir, 'sep')).map((x) => Buffer.from(x.value!, 'base64').toString()), ['1', '2']);
    assert.equal((await run(['produce', '--dir', dir, '--topic', 'sep', '--key', 'k', '--key-separator', ':'], 'a:1\n')).code, 1);
  });

  test('property: any lines (no LF, no trailing CR) round trip through produce and consume', async () => {
    let n = 0;
    await fc.assert(fc.asyncProperty(
      fc.array(fc.uint8Array({ maxLength: 40 }).map((b) => b.filter((x) => x !== 10)).filter((b) => b.length === 0 || b[b.length - 1] !== 13), { minLength: 1, maxLength: 30 }),
      async (lines) => {
        const topic = `prop${n++}`;
        assert.equal((await run(['topics', 'create', '--dir', dir, '--topic', topic])).code, 0);
        const input = Buffer.concat(lines.flatMap((l) => [Buffer.from(l), Buffer.from('\n')]));
        const p = await run(['produce', '--dir', dir, '--topic', topic], input);
        assert.equal(p.out, `produced ${lines.length} record${lines.length === 1 ? '' : 's'} to ${topic}-0 at offsets 0..${lines.length - 1}\n`);
        const got = jsonLines((await run(['consume', '--dir', dir, '--topic', topic, '--format', 'json'])).out);
        assert.deepEqual(got.map((r) => Buffer.from(r.value!, 'base64')), lines.map((l) => Buffer.from(l)));
        assert.ok(got.every((r) => r.key === null && r.headers.length === 0));
      }), { numRuns: 15 });
  });

  test('lineBatches: last line without LF, CRLF, empty lines, limit', async () => {
    const all = async (chunks: string[], max = 100) => {
      const out: string[] = [];
      for await (const b of lineBatches(Readable.from(chunks.map((c) => Buffer.from(c))), max)) out.push(...b.map((x) => x.toString()));
      return out;
    };
    assert.deepEqual(await all(['a\r\n\nb', 'c\r', '\n', 'd']), ['a', '', 'bc', 'd']);
    assert.deepEqual(await all(['\n\n']), ['', '']);
    assert.deepEqual(await all([]), []);
    assert.deepEqual(await all(['x\r']), ['x']);
    await assert.rejects(all(['0123456789'.repeat(3)], 10), /longer than 10 bytes/);
    await assert.rejects(all(['0123456789'.repeat(3) + '\n'], 10), /input line 1 is longer/);
  });
});

describe('sediment consume by timestamp and --follow', () => {
  let dir: string;
  before(async () => {
    dir = tmp();
    await buildStore(dir, 'ts', 12, 5); // offsets 0..59, timestamps 1000..60000, several segments
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('--timestamp starts at the first record at or after it', async () => {
    const store = await Store.open(dir, { readOnly: true });
    const p = store.partition('ts', 0);
    assert.ok(p.segments.length > 2, 'the store spans several segments');
    for (const ts of [0, 1000, 1001, 4500, 25000, 59999, 60000]) {
      const r = await run(['consume', '--dir', dir, '--topic', 'ts', '--timestamp', String(ts), '--format', 'json', '--max', '3']);
      assert.equal(r.code, 0, r.err);
      const got = jsonLines(r.out);
      const want = await p.offsetForTimestamp(ts);
      assert.equal(got[0]?.offset, want, `ts ${ts}`);
      assert.equal(want, Math.max(0, Math.ceil(ts / 1000) - 1));
      assert.ok(got[0]!.timestamp >= ts);
      assert.deepEqual(got, (await apiRecords(dir, 'ts', 0, want)).slice(0, 3));
    }
    await store.close();
    const past = await run(['consume', '--dir', dir, '--topic', 'ts', '--timestamp', '60001']);
    assert.equal(past.code, 0);
    assert.equal(past.out, '');
  });

  test('--follow sees records a writer appends after it started', async () => {
    const writer = await Store.open(dir, { retentionCheckMs: -1 });
    try {
      const p = writer.partition('ts', 0);
      const pending = run(['consume', '--dir', dir, '--topic', 'ts', '--offset', '58', '--follow', '--poll-ms', '10', '--max', '5', '--format', 'json']);
      await new Promise((r) => setTimeout(r, 50));
      await p.append([{ value: 'late-1', timestamp: 61000 }]);
      await new Promise((r) => setTimeout(r, 50));
      await p.append([{ value: 'late-2', timestamp: 62000 }, { value: 'late-3', timestamp: 63000 }]);
      const r = await pending;
      assert.equal(r.code, 0, r.err);
      const got = jsonLines(r.out);
      assert.deepEqual(got.map((x) => x.offset), [58, 59, 60, 61, 62]);
      assert.deepEqual(got.slice(2).map((x) => Buffer.from(x.value!, 'base64').toString()), ['late-1', 'late-2', 'late-3']);
      // --timeout-ms ends a follow that sees nothing new.
      const idle = await run(['consume', '--dir', dir, '--topic', 'ts', '--offset', '62', '--follow', '--poll-ms', '10', '--timeout-ms', '60']);
      assert.equal(idle.code, 0);
      assert.equal(idle.out, 'late-3\n');
    } finally {
      await writer.close();
    }
  });
});

describe('sediment dump', () => {
  let dir: string;
  let pdir: string;
  before(async () => {
    dir = tmp();
    await buildStore(dir, 'd', 20, 4);
    pdir = path.join(dir, 'd-0');
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  async function dumpLog(file: string, records = false): Promise<DumpBatch[]> {
    const r = await run(['dump', file, '--format', 'json', ...(records ? ['--records'] : [])]);
    assert.equal(r.code, 0, r.err);
    return jsonLines<DumpBatch>(r.out);
  }

  test('.log: every batch, contiguous, valid, records equal the API', async () => {
    const logs = segmentFiles(pdir, '.log');
    assert.ok(logs.length >= 3);
    const all: JsonRecord[] = [];
    let expectBase = 0;
    for (const f of logs) {
      const batches = await dumpLog(f, true);
      let pos = 0;
      for (const b of batches) {
        assert.equal(b.type, 'batch');
        assert.equal(b.position, pos);
        assert.equal(b.baseOffset, expectBase);
        assert.equal(b.count, 4);
        assert.equal(b.lastOffset, b.baseOffset + 3);
        assert.equal(b.maxTimestamp, 1000 * (b.lastOffset + 1));
        assert.ok(b.crcValid && b.valid);
        assert.equal(b.records!.length, 4);
        all.push(...b.records!);
        pos += b.size;
        expectBase = b.lastOffset + 1;
      }
      assert.equal(pos, fs.statSync(f).size);
    }
    assert.equal(expectBase, 80);
    assert.deepEqual(all, await apiRecords(dir, 'd'));
    const text = await run(['dump', logs[0]!, '--records']);
    assert.match(text.out, /^Dumping .*00000000000000000000\.log \(log segment, base offset 0, \d+ bytes\)\n/);
    assert.match(text.out, /\nposition: 0 baseOffset: 0 lastOffset: 3 count: 4 firstTimestamp: 1000 maxTimestamp: 4000 timestampType: CreateTime size: \d+ magic: 2 attributes: 0x0000 codec: none .* crc: 0x[0-9a-f]{8} crcValid: true\n/);
    assert.match(text.out, /\n\| offset: 1 timestamp: 2000 keySize: 2 valueSize: 9 key: "k1" value: "value-1-x" headers: "h"="1","n"=null\n/);
    assert.match(text.out, /\n\d+ batches, \d+ records, (\d+) of \1 bytes framed, 0 invalid\n$/);
  });

  test('.index and .timeindex: entries agree with the log', async () => {
    let indexEntries = 0;
    let timeEntries = 0;
    for (const f of segmentFiles(pdir, '.log')) {
      const batches = await dumpLog(f);
      const byPos = new Map(batches.map((b) => [b.position, b]));
      const idx = await run(['dump', f.replace(/\.log$/, '.index'), '--format', 'json']);
      assert.equal(idx.code, 0, idx.err);
      for (const e of jsonLines<{ type: string; offset: number; position: number }>(idx.out)) {
        const b = byPos.get(e.position);
        assert.ok(b, `entry at position ${e.position} names a batch start`);
        assert.equal(e.offset, b.lastOffset);
        indexEntries++;
      }
      const tidx = await run(['dump', f.replace(/\.log$/, '.timeindex'), '--format', 'json']);
      assert.equal(tidx.code, 0, tidx.err);
      const te = jsonLines<{ timestamp: number; offset: number }>(tidx.out);
      timeEntries += te.length;
      for (const e of te) assert.equal(e.timestamp, 1000 * (e.offset + 1)); // timestamps grow with offsets here
      const text = await run(['dump', f.replace(/\.log$/, '.index')]);
      assert.match(text.out, /\(offset index, base offset \d+, \d+ entries\)\n(offset: \d+ position: \d+\n)*$/);
      const ttext = await run(['dump', f.replace(/\.log$/, '.timeindex')]);
      assert.match(ttext.out, /\(time index, base offset \d+, \d+ entries\)\n(timestamp: \d+ offset: \d+\n)*$/);
    }
    assert.ok(indexEntries > 0, 'indexIntervalBytes 0 gives offset index entries');
    assert.ok(timeEntries > 0);
  });

  test('invalid data: exit 2 naming the position; missing file 3; unknown type 1', async () => {
    const work = tmp();
    try {
      const src = segmentFiles(pdir, '.log')[0]!;
      const batches = await dumpLog(src);
      const second = batches[1]!;
      // A flipped byte inside the second batch's records: CRC mismatch, the dump goes on.
      const bad = path.join(work, '00000000000000000000.log');
      const bytes = fs.readFileSync(src);
      bytes[second.position + second.size - 3]! ^= 0x40;
      fs.writeFileSync(bad, bytes);
      const r = await run(['dump', bad, '--format', 'json']);
      assert.equal(r.code, 2);
      const got = jsonLines<DumpBatch>(r.out);
      assert.equal(got.length, batches.length);
      assert.deepEqual(got.map((b) => b.crcValid), batches.map((_, i) => i !== 1));
      assert.match(r.err, new RegExp(`corrupt data in .*00000000000000000000\\.log at byte ${second.position} \\(offset ${second.baseOffset}\\): CRC-32C mismatch`));
      // A torn tail: the last batch cut short.
      fs.writeFileSync(bad, fs.readFileSync(src).subarray(0, fs.statSync(src).size - 5));
      const torn = await run(['dump', bad]);
      assert.equal(torn.code, 2);
      const last = batches[batches.length - 1]!;
      assert.match(torn.out, new RegExp(`INVALID at position ${last.position}: incomplete batch`));
      // Garbage where a batch should start.
      fs.writeFileSync(bad, Buffer.concat([fs.readFileSync(src).subarray(0, second.position), Buffer.alloc(100, 0xee)]));
      const junk = await run(['dump', bad]);
      assert.equal(junk.code, 2);
      assert.match(junk.err, new RegExp(`at byte ${second.position}: batch length out of bounds`));
      // An index whose length is not a whole number of entries, and one whose entries go backwards.
      const idx = path.join(work, '00000000000000000000.index');
      fs.writeFileSync(idx, Buffer.from([0, 0, 0, 5, 0, 0, 0, 100, 0, 0, 0, 3, 0, 0, 0, 200, 1, 2]));
      const ir = await run(['dump', idx]);
      assert.equal(ir.code, 2);
      assert.match(ir.out, /offset: 5 position: 100\noffset: 3 position: 200 INVALID: entry \(offset 3, position 200\) does not increase/);
      assert.match(ir.out, /INVALID at position 16: 2 trailing bytes/);
      const missing = await run(['dump', path.join(work, 'nope.log')]);
      assert.equal(missing.code, 3);
      fs.writeFileSync(path.join(work, 'x.snapshot'), 'x');
      assert.equal((await run(['dump', path.join(work, 'x.snapshot')])).code, 1);
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  });
});

describe('sediment verify', () => {
  test('clean store: 0 and a summary; a flipped byte in a closed segment: 2 naming file and position', async () => {
    const dir = tmp();
    try {
      await buildStore(dir, 'v', 30, 3);
      assert.equal((await run(['topics', 'create', '--dir', dir, '--topic', 'other', '--partitions', '2'])).code, 0);
      const ok = await run(['verify', '--dir', dir]);
      assert.equal(ok.code, 0, ok.out);
      assert.match(ok.out, /^verify: OK: 0 warnings; checked 2 topics, 3 partitions, \d+ segments, 30 batches, 90 records, [\d.]+ MB in [\d.]+ s\n$/);
      assert.equal(ok.err, '', 'no progress output when stderr is not a terminal');
      const tty = await run(['verify', '--dir', dir], [], true);
      assert.equal(tty.code, 0);
      assert.match(tty.err, /\rverify \[#{24}\] 100% [\d.]+ \/ [\d.]+ MB\x1b\[K\n$/);

      const pdir = path.join(dir, 'v-0');
      const logs = segmentFiles(pdir, '.log');
      const target = logs[1]!; // closed: not the active segment
      const batches = jsonLines<DumpBatch>((await run(['dump', target, '--format', 'json'])).out);
      const b = batches[batches.length - 1]!;
      const bytes = fs.readFileSync(target);
      bytes[b.position + 40]! ^= 0x01; // inside the CRC-covered header (timestamps)
      fs.writeFileSync(target, bytes);
      const bad = await run(['verify', '--dir', dir]);
      assert.equal(bad.code, 2);
      assert.ok(bad.out.includes(`corrupt: ${target} position ${b.position} offset ${b.baseOffset}: CRC-32C mismatch`), bad.out);
      assert.match(bad.out, /\nverify: CORRUPT: \d+ corrupt, 0 warnings; checked/);
      // The API agrees: reading through the damaged batch fails with the same position.
      await assert.rejects(apiRecords(dir, 'v'), (e: Error) => e.message.includes(`${target} at byte ${b.position}`));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('index entries inconsistent with the log: 2 naming the index file', async () => {
    const dir = tmp();
    try {
      await buildStore(dir, 'v', 10, 3);
      const idx = segmentFiles(path.join(dir, 'v-0'), '.index').find((f) => fs.statSync(f).size >= 8)!;
      const bytes = fs.readFileSync(idx);
      const good = Buffer.from(bytes);
      bytes.writeUInt32BE(bytes.readUInt32BE(4) + 1, 4); // position no longer a batch start
      fs.writeFileSync(idx, bytes);
      const r = await run(['verify', '--dir', dir]);
      assert.equal(r.code, 2);
      assert.ok(r.out.includes(`corrupt: ${idx} position 0 offset`), r.out);
      assert.match(r.out, /does not point at a batch start/);
      good.writeUInt32BE(good.readUInt32BE(0) + 1, 0); // right position, wrong offset
      fs.writeFileSync(idx, good);
      const r2 = await run(['verify', '--dir', dir]);
      assert.equal(r2.code, 2);
      assert.match(r2.out, /names offset \d+ but the batch at position \d+ ends at offset \d+/);
      // Time index: a timestamp the log does not have.
      fs.writeFileSync(idx, bytes.subarray(0, 0)); // an empty offset index is valid (reads scan)
      const tidx = idx.replace(/\.index$/, '.timeindex');
      const t = fs.readFileSync(tidx);
      t.writeUInt32BE(t.readUInt32BE(4) + 7, 4);
      fs.writeFileSync(tidx, t);
      const r3 = await run(['verify', '--dir', dir]);
      assert.equal(r3.code, 2);
      assert.ok(r3.out.includes(`corrupt: ${tidx} position 0`), r3.out);
      assert.match(r3.out, /says the largest timestamp up to offset \d+ is \d+, the log says \d+/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a torn tail is a warning (0) after a crash, corruption (2) after a clean shutdown', async () => {
    const dir = tmp();
    try {
      await buildStore(dir, 'v', 6, 3);
      const pdir = path.join(dir, 'v-0');
      const active = segmentFiles(pdir, '.log').pop()!;
      const size = fs.statSync(active).size;
      fs.appendFileSync(active, fs.readFileSync(active).subarray(0, 30)); // half a batch
      const clean = await run(['verify', '--dir', dir]);
      assert.equal(clean.code, 2);
      assert.ok(clean.out.includes(`corrupt: ${active} position ${size}`), clean.out);
      fs.rmSync(path.join(pdir, '.clean-shutdown'));
      const crashed = await run(['verify', '--dir', dir]);
      assert.equal(crashed.code, 0, crashed.out);
      assert.ok(crashed.out.includes(`warning: ${active} position ${size}`), crashed.out);
      assert.match(crashed.out, /torn write.*unflushed data past the recovery point/);
      assert.match(crashed.out, /verify: OK: 1 warning;/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('missing partition directory and missing store', async () => {
    const dir = tmp();
    try {
      assert.equal((await run(['topics', 'create', '--dir', dir, '--topic', 'm', '--partitions', '2'])).code, 0);
      fs.rmSync(path.join(dir, 'm-1'), { recursive: true });
      const r = await run(['verify', '--dir', dir]);
      assert.equal(r.code, 2);
      assert.match(r.out, /m-1: partition directory of topic 'm' \(2 partitions\) is missing/);
      assert.equal((await run(['verify', '--dir', path.join(dir, 'nope')])).code, 3);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('exit codes', () => {
  let dir: string;
  before(async () => {
    dir = tmp();
    assert.equal((await run(['topics', 'create', '--dir', dir, '--topic', 'e', '--partitions', '2'])).code, 0);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('not found: 3 (topic, partition, store directory)', async () => {
    for (const args of [
      ['consume', '--dir', dir, '--topic', 'nope'],
      ['consume', '--dir', dir, '--topic', 'e', '--partition', '2'],
      ['produce', '--dir', dir, '--topic', 'nope'],
      ['produce', '--dir', dir, '--topic', 'e', '--partition', '5'],
      ['topics', 'describe', '--dir', dir, '--topic', 'nope'],
      ['topics', 'delete', '--dir', dir, '--topic', 'nope'],
      ['topics', 'list', '--dir', path.join(dir, 'missing')],
      ['produce', '--dir', path.join(dir, 'missing'), '--topic', 'e'],
    ]) {
      const r = await run(args, 'x\n');
      assert.equal(r.code, 3, `${args.join(' ')}: ${r.err}`);
      assert.match(r.err, /^sediment: .*(does not exist|has no partition)/);
    }
    assert.equal(fs.existsSync(path.join(dir, 'missing')), false, 'a failed produce does not create the store');
  });

  test('locked store: write commands 4, read commands still work', async () => {
    const writer = await Store.open(dir, { retentionCheckMs: -1 });
    try {
      await writer.partition('e', 0).append([{ value: 'held' }]);
      for (const args of [
        ['produce', '--dir', dir, '--topic', 'e'],
        ['topics', 'create', '--dir', dir, '--topic', 'f'],
        ['topics', 'delete', '--dir', dir, '--topic', 'e'],
      ]) {
        const r = await run(args, 'x\n');
        assert.equal(r.code, 4, `${args.join(' ')}: ${r.err}`);
        assert.match(r.err, /is locked by another writer/);
      }
      const c = await run(['consume', '--dir', dir, '--topic', 'e']);
      assert.equal(c.code, 0, c.err);
      assert.equal(c.out, 'held\n');
      assert.equal((await run(['topics', 'list', '--dir', dir])).out, 'e\n');
      assert.equal((await run(['verify', '--dir', dir])).code, 0);
    } finally {
      await writer.close();
    }
  });

  test('--help documents exit codes and returns 0', async () => {
    for (const cmd of [['produce'], ['consume'], ['dump'], ['verify'], ['topics', 'create']]) {
      const r = await run([...cmd, '--help']);
      assert.equal(r.code, 0);
      assert.match(r.out, /Exit codes:\n {2}0 {2}success\n {2}1 {2}usage/);
    }
  });
});

describe('bin/sediment.js (spawned)', () => {
  let dir: string;
  before(() => { dir = tmp(); });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const sh = (args: string[], input?: string) => spawnSync(process.execPath, [BIN, ...args], { input, encoding: 'utf8', timeout: 30_000 });

  test('the binary runs commands and its exit codes propagate', async () => {
    const c = sh(['topics', 'create', '--dir', dir, '--topic', 'spawned']);
    assert.equal(c.status, 0, c.stderr);
    const p = sh(['produce', '--dir', dir, '--topic', 'spawned'], 'one\ntwo\n');
    assert.equal(p.status, 0, p.stderr);
    assert.equal(p.stdout, 'produced 2 records to spawned-0 at offsets 0..1\n');
    const r = sh(['consume', '--dir', dir, '--topic', 'spawned']);
    assert.equal(r.stdout, 'one\ntwo\n');
    assert.equal(sh(['topics', 'describe', '--dir', dir, '--topic', 'nope']).status, 3);
    assert.equal(sh(['consume', '--dir', dir, '--topic', 'spawned', '--bogus']).status, 1);
    // This process holds the lock: the child sees a live writer.
    const writer = await Store.open(dir, { retentionCheckMs: -1 });
    try {
      const locked = sh(['produce', '--dir', dir, '--topic', 'spawned'], 'x\n');
      assert.equal(locked.status, 4);
      assert.match(locked.stderr, new RegExp(`locked by another writer \\(pid ${process.pid}\\)`));
    } finally {
      await writer.close();
    }
    const seg = path.join(dir, 'spawned-0', '00000000000000000000.log');
    const bytes = fs.readFileSync(seg);
    bytes[30]! ^= 0xff;
    fs.writeFileSync(seg, bytes);
    const v = sh(['verify', '--dir', dir]);
    assert.equal(v.status, 2);
    assert.ok(v.stdout.includes(`corrupt: ${seg} position 0`), v.stdout);
  });
});
