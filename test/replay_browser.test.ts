// sediment/replay in a real browser: Debian's Chromium, headless, driven by
// playwright-core. Archives come from the test fixture (a Store's segments
// laid out per docs/archive-format.md) and from the tiering uploader itself
// (an OpenDAL fs root served by `sediment serve`, and s3rver reached through
// presigned URLs, cross-origin, with the bucket's CORS rules). What the
// browser reads is compared with what Node reads; the page is driven like a
// person would and a screenshot is saved to test-output/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { chromium, BrowserContext, Page } from 'playwright-core';
import { startServer, RunningServer } from '../src/cli/serve_commands.js';
import { Store } from '../src/store.js';
import { replay } from '../src/replay/index.js';
import { buildArchive, makeRecords, plain, BuiltArchive, PlainRecord, PLAIN_SOURCE } from './helpers/archive_fixture.js';
import { s3TierConfig } from './helpers/s3rver.js';
import { TierConfig } from '../src/tier/tier_config.js';
import { FAST, smallTopic, appendAll, readPlain } from './helpers/tier_util.js';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const outDir = path.join(root, 'test-output');
export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** The CORS rules a bucket needs for browser replay (docs/replay.md), in S3's XML. */
export const S3_CORS_XML = `<CORSConfiguration><CORSRule>
  <AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod><AllowedMethod>HEAD</AllowedMethod>
  <AllowedHeader>Range</AllowedHeader>
  <ExposeHeader>Content-Range</ExposeHeader><ExposeHeader>Accept-Ranges</ExposeHeader>
  <ExposeHeader>Content-Length</ExposeHeader><ExposeHeader>ETag</ExposeHeader>
  <MaxAgeSeconds>600</MaxAgeSeconds>
</CORSRule></CORSConfiguration>`;

interface S3rverInstance { run(): Promise<{ port: number }>; close(): Promise<void> }

let tmp: string;
let serveDir: string;
let a: BuiltArchive;
let expected: PlainRecord[];
let srv: RunningServer;
let ctx: BrowserContext;
let page: Page;
let s3: S3rverInstance;
let s3Endpoint: string;
let tierStore: Store;
let tierExpected: PlainRecord[];
let tierManifestRel: string;
let s3Store: Store;
let s3Expected: PlainRecord[];

/** Writes records through a tiered Store and archives every closed segment. */
async function tiered(dir: string, tier: TierConfig, n: number, seed: number): Promise<{ store: Store; expected: PlainRecord[] }> {
  const store = await Store.open(dir, { retentionCheckMs: -1, tier });
  await store.createTopic('ev', { config: smallTopic({ segmentBytes: 16 * 1024 }) });
  const p = store.partition('ev', 0);
  await appendAll(p, makeRecords(n, seed), 9);
  await p.flush();
  await store.tier!.archiveNow();
  // Only closed segments are archived: the archive ends where the active segment starts.
  const end = p.segments[p.segments.length - 1]!.baseOffset;
  const all = await readPlain(p, { offset: 0 });
  return { store, expected: all.filter((r) => r.offset < end) };
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-replay-browser-'));
  serveDir = path.join(tmp, 'served');
  a = await buildArchive({ root: serveDir, records: makeRecords(2500, 31), segmentBytes: 40 * 1024, prefix: 'fixture' });
  expected = a.records.map(plain);
  // The tiering uploader writing to an OpenDAL fs root inside the served directory.
  const t = await tiered(path.join(tmp, 'store-fs'), { service: 'fs', options: { root: serveDir }, prefix: 'tier', ...FAST }, 900, 32);
  tierStore = t.store;
  tierExpected = t.expected;
  tierManifestRel = tierStore.tier!.layout.manifestKey('ev', 0);
  srv = await startServer({ dir: serveDir, port: 0 });
  // s3rver with a CORS rule on one bucket and none on the other.
  const S3rver = require('s3rver') as new (o: Record<string, unknown>) => S3rverInstance;
  s3 = new S3rver({
    address: '127.0.0.1', port: 0, silent: true, directory: path.join(tmp, 's3'),
    configureBuckets: [{ name: 'replay', configs: [S3_CORS_XML] }, { name: 'nocors', configs: [] }],
  });
  s3Endpoint = `http://127.0.0.1:${(await s3.run()).port}`;
  const s3tier = s3TierConfig(s3Endpoint, 'replay', 'bucket-prefix', { ...FAST, requestTimeoutMs: 10_000 });
  s3tier.options = { ...s3tier.options, disable_config_load: 'true', disable_ec2_metadata: 'true' };
  const s = await tiered(path.join(tmp, 'store-s3'), s3tier, 700, 33);
  s3Store = s.store;
  s3Expected = s.expected;
  fs.mkdirSync(outDir, { recursive: true });
  ctx = await chromium.launchPersistentContext(fs.mkdtempSync(path.join(tmp, 'profile-')), {
    executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1400, height: 1000 },
  });
  page = ctx.pages()[0] ?? await ctx.newPage();
  page.on('pageerror', (e) => { throw new Error(`page error: ${e.message}`); });
});

after(async () => {
  await ctx?.close();
  await srv?.close();
  await tierStore?.close();
  await s3Store?.close();
  await s3?.close();
  for (const d of [tmp, a?.storeDir]) if (d) fs.rmSync(d, { recursive: true, force: true });
});

interface PageResult { records: PlainRecord[]; err: { name: string; code?: string; message: string } | null; stats: Record<string, number | boolean> }

/** Runs sediment/replay inside the page (imported from the served dist/), returning plain records. */
async function replayInPage(source: unknown, opts: Record<string, unknown> = {}): Promise<PageResult> {
  return page.evaluate(`(async () => {
    const m = await import('/dist/src/replay/index.js');
    const plain = ${PLAIN_SOURCE};
    const records = [];
    let err = null;
    const r = m.replay(${JSON.stringify(source)}, ${JSON.stringify(opts)});
    try { for await (const x of r) records.push(plain(x)); }
    catch (e) { err = { name: e.name, code: e.code, message: e.message }; }
    return { records, err, stats: r.stats };
  })()`) as Promise<PageResult>;
}

async function openPage(hash = ''): Promise<void> {
  // A fresh document every time (a hash change alone would not reload the page).
  await page.goto('about:blank');
  await page.goto(`${srv.url}web/${hash}`);
  await page.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: 30_000 });
}

async function runAndWait(): Promise<string> {
  await page.click('#run');
  await page.waitForFunction(() => ['done', 'error', 'stopped'].includes(document.body.dataset.state ?? ''), null, { timeout: 60_000 });
  return page.evaluate(() => document.body.dataset.state ?? '');
}

test('the page: pick a partition, replay from an offset, see records and throughput', { timeout: 120_000 }, async () => {
  await openPage();
  const options = await page.$$eval('#partition option', (os) => os.map((o) => ({ value: (o as HTMLOptionElement).value, text: o.textContent ?? '' })));
  assert.equal(options.length, 2, JSON.stringify(options));
  const fixture = options.find((o) => o.value.endsWith(a.manifestRel))!;
  assert.match(fixture.text, /events-0: 2,500 offsets/);
  await page.selectOption('#partition', fixture.value);
  await page.waitForFunction(() => !document.getElementById('summary')!.hidden);
  assert.match(await page.textContent('#summary') ?? '', /events \/ partition 0/);
  await page.fill('#offset', '1234');
  await page.fill('#show', '50');
  assert.equal(await runAndWait(), 'done');
  const rows = await page.$$eval('#records tbody tr', (trs) => trs.map((tr) => Array.from(tr.children, (td) => td.textContent ?? '')));
  assert.equal(rows.length, 50);
  const enc = new TextDecoder();
  for (let i = 0; i < rows.length; i++) {
    const want = a.records[1234 + i]!;
    assert.equal(rows[i]![0], String(want.offset));
    assert.equal(rows[i]![1], new Date(want.timestamp).toISOString().replace('T', ' ').replace('Z', ''));
    assert.equal(rows[i]![2], want.key === null ? 'null' : want.key.length === 0 ? '(empty)' : enc.decode(want.key));
  }
  const status = await page.textContent('#status') ?? '';
  assert.match(status, /Replayed 1,266 records/);
  assert.equal(await page.textContent('#s-records'), '1,266');
  assert.ok(Number((await page.textContent('#s-rate'))!.replace(/,/g, '')) > 0, 'a throughput is shown');
  assert.equal(await page.textContent('#s-rt'), '3');
  await page.screenshot({ path: path.join(outDir, 'replay-page.png'), fullPage: false });
  // The URL keeps the state: reloading it runs the same query.
  assert.match(page.url(), /offset=1234/);
});

test('the page: replay from a time, and typed errors shown to the user', { timeout: 120_000 }, async () => {
  const t = expected[1700]!.timestamp;
  const want = expected.findIndex((r) => r.timestamp >= t);
  await openPage(`#manifest=${encodeURIComponent(`${srv.url}archive/${a.manifestRel}`)}&time=${new Date(t).toISOString()}&show=5`);
  assert.equal(await runAndWait(), 'done');
  assert.equal(await page.textContent('#records tbody tr td'), String(want));
  await page.screenshot({ path: path.join(outDir, 'replay-page-time.png') });
  await page.fill('#manifest', `${srv.url}archive/nothing/here/manifest.json`);
  assert.equal(await runAndWait(), 'error');
  assert.match(await page.textContent('#error') ?? '', /ObjectNotFoundError \[ERR_NOT_FOUND\]/);
  // Past the end of the archive: an OffsetOutOfRangeError, not a crash.
  await page.fill('#manifest', `${srv.url}archive/${a.manifestRel}`);
  await page.check('input[name=from][value=offset]');
  await page.fill('#offset', '999999');
  assert.equal(await runAndWait(), 'error');
  assert.match(await page.textContent('#error') ?? '', /ERR_OFFSET_OUT_OF_RANGE/);
  await page.screenshot({ path: path.join(outDir, 'replay-page-error.png') });
});

test('in Chromium, sediment/replay reads what Node reads (offsets, times, small ranges, limits)', { timeout: 120_000 }, async () => {
  await openPage();
  const url = `${srv.url}archive/${a.manifestRel}`;
  const whole = await replayInPage(url);
  assert.equal(whole.err, null);
  assert.deepEqual(whole.records, expected);
  assert.equal(whole.stats.roundTripsToFirstRecord, 2);
  const nodeRecords: PlainRecord[] = [];
  for await (const r of replay(url, { from: { offset: 777 } })) nodeRecords.push(plain(r));
  const mid = await replayInPage(url, { from: { offset: 777 }, chunkBytes: 65536, firstChunkBytes: 4096, prefetch: 3 });
  assert.deepEqual(mid.records, nodeRecords);
  assert.deepEqual(mid.records, expected.slice(777));
  const t = expected[2000]!.timestamp;
  const byTime = await replayInPage(url, { from: { timestamp: t }, maxRecords: 100 });
  const first = expected.findIndex((r) => r.timestamp >= t);
  assert.deepEqual(byTime.records, expected.slice(first, first + 100));
  const err = await replayInPage(url, { from: { offset: 5000 } });
  assert.equal(err.err?.code, 'ERR_OFFSET_OUT_OF_RANGE');
});

test('in Chromium: an archive written by the tiering uploader to an OpenDAL fs root', { timeout: 120_000 }, async () => {
  await openPage();
  const got = await replayInPage(`${srv.url}archive/${tierManifestRel}`);
  assert.equal(got.err, null);
  assert.ok(tierExpected.length > 500, `${tierExpected.length} archived records`);
  assert.deepEqual(got.records, tierExpected);
});

test('in Chromium: s3rver through presigned URLs, cross-origin, allowed by the bucket CORS rule', { timeout: 120_000 }, async () => {
  await openPage();
  const t = s3Store.tier!;
  const dir = t.layout.partitionDir('ev', 0);
  const manifestKey = t.layout.manifestKey('ev', 0);
  const m = JSON.parse(new TextDecoder().decode(await t.objects.read(manifestKey))) as { segments: { objects: Record<string, { key: string }> }[] };
  const objects: Record<string, string> = {};
  for (const s of m.segments) for (const o of Object.values(s.objects)) objects[o.key] = (await t.objects.presignRead(dir + o.key, 600)).url;
  const source = { manifest: (await t.objects.presignRead(manifestKey, 600)).url, objects };
  assert.ok(!source.manifest.startsWith(srv.url), 'another origin than the page');
  const inPage = await replayInPage(source);
  assert.equal(inPage.err, null, JSON.stringify(inPage.err));
  assert.deepEqual(inPage.records, s3Expected);
  // The page takes the same presigned URLs pasted as JSON.
  await page.fill('#manifest', JSON.stringify(source));
  await page.fill('#offset', '0');
  assert.equal(await runAndWait(), 'done');
  assert.equal(await page.textContent('#s-records'), s3Expected.length.toLocaleString('en-US'));
  await page.screenshot({ path: path.join(outDir, 'replay-page-presigned.png') });
  const fromNode: PlainRecord[] = [];
  for await (const r of replay(source, { from: { offset: 100 } })) fromNode.push(plain(r));
  assert.deepEqual((await replayInPage(source, { from: { offset: 100 } })).records, fromNode);
  // A presigned URL for credentials the server does not know is refused, with a typed error.
  // (s3rver does not verify V4 signatures themselves, only the access key.)
  const bad = { ...source, manifest: source.manifest.replace('X-Amz-Credential=S3RVER', 'X-Amz-Credential=NOBODY') };
  assert.notEqual(bad.manifest, source.manifest);
  const denied = await replayInPage(bad);
  assert.equal(denied.err?.code, 'ERR_ACCESS_DENIED', JSON.stringify(denied.err));
  // The same bucket without a CORS rule: the browser blocks the response, replay reports a network error.
  const nocors = `${s3Endpoint}/nocors/manifest.json`;
  const blocked = await replayInPage(nocors, { retries: 0 });
  assert.equal(blocked.err?.code, 'ERR_NETWORK', JSON.stringify(blocked.err));
  assert.match(blocked.err!.message, /CORS/);
});

test('a corrupted archive shows a CorruptionError in the page and in the API', { timeout: 120_000 }, async () => {
  const copy = path.join(serveDir, 'corrupt');
  fs.cpSync(path.join(serveDir, 'fixture'), copy, { recursive: true });
  const rel = a.manifestRel.replace(/^fixture\//, 'corrupt/');
  const seg = a.manifest.segments[2]!;
  const logFile = path.join(serveDir, rel.replace('manifest.json', seg.objects.log.key));
  const bytes = fs.readFileSync(logFile);
  bytes[200]! ^= 0x40;
  fs.writeFileSync(logFile, bytes);
  await openPage();
  const res = await replayInPage(`${srv.url}archive/${rel}`);
  assert.equal(res.err?.code, 'ERR_CORRUPTION');
  assert.deepEqual(res.records, expected.slice(0, res.records.length));
  assert.ok(res.records.length >= seg.baseOffset);
});
