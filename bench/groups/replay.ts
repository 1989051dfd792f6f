// Browser replay (issue 7): sediment/replay reading a whole archived
// partition over HTTP, against a plain fetch of the same .log bytes, in
// headless Chromium and in Node. The archive is written by the tiering
// uploader to an OpenDAL fs root and served by `sediment serve`'s server in a
// worker thread (so the server's work never shares the measuring event loop).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium, BrowserContext, Page } from 'playwright-core';
import { BenchGroup, BenchCase, Contender, gbPerSec } from '../harness.js';
import { Store } from '../../src/store.js';
import { RecordInput } from '../../src/record.js';
import { replay } from '../../src/replay/index.js';
import { randomBytes } from '../lib/data.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const RECORDS = 32 * 1024;
const VALUE_BYTES = 1000;
const SEGMENT_BYTES = 8 << 20;

interface Archive { dir: string; manifestUrl: string; logUrls: string[]; logBytes: number; records: number; serve: Worker; baseUrl: string }

/** Writes records through a tiered Store (fs root), archives them, serves the root from a worker thread. */
async function makeArchive(): Promise<Archive> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-bench-replay-'));
  const bucket = path.join(dir, 'bucket');
  fs.mkdirSync(bucket);
  const store = await Store.open(path.join(dir, 'store'), {
    retentionCheckMs: -1,
    tier: { service: 'fs', options: { root: bucket }, prefix: 'bench', autoArchive: false, checkIntervalMs: -1 },
  });
  let manifestKey: string;
  try {
    await store.createTopic('events', { config: { segmentBytes: SEGMENT_BYTES, flushMs: -1, retentionMs: -1 } });
    const p = store.partition('events', 0);
    const payload = randomBytes(VALUE_BYTES * 64, 7);
    const t0 = 1_763_600_000_000;
    for (let i = 0; i < RECORDS; i += 100) {
      const batch: RecordInput[] = [];
      for (let j = i; j < i + 100; j++) {
        const at = (j % 64) * VALUE_BYTES;
        batch.push({ key: `user-${j % 1000}`, value: payload.subarray(at, at + VALUE_BYTES), headers: { source: 'bench' }, timestamp: t0 + j });
      }
      await p.append(batch);
    }
    p.roll();
    await p.flush();
    await store.tier!.archiveNow();
    manifestKey = store.tier!.layout.manifestKey('events', 0);
  } finally {
    await store.close();
  }
  // The server runs in a worker thread: its own event loop (its work never
  // shares the measuring one), and it cannot outlive the bench process.
  const serverModule = pathToFileURL(path.join(root, 'dist', 'src', 'cli', 'serve_commands.js')).href;
  const serve = new Worker(`
    const { parentPort, workerData } = require('node:worker_threads');
    import(workerData.module).then((m) => m.startServer({ dir: workerData.dir, port: 0 }))
      .then((srv) => parentPort.postMessage({ url: srv.url }), (err) => parentPort.postMessage({ error: String(err && err.stack || err) }));
  `, { eval: true, workerData: { module: serverModule, dir: bucket } });
  try {
    const baseUrl = await new Promise<string>((resolve, reject) => {
      serve.once('message', (msg: { url?: string; error?: string }) => (msg.url ? resolve(msg.url) : reject(new Error(`server failed: ${msg.error}`))));
      serve.once('error', reject);
      serve.once('exit', (code) => reject(new Error(`server worker exited ${code}`)));
    });
    const manifestUrl = `${baseUrl}archive/${manifestKey}`;
    const m = await (await fetch(manifestUrl)).json() as { segments: { nextOffset: number; baseOffset: number; objects: { log: { key: string; size: number } } }[] };
    const logUrls = m.segments.map((s) => new URL(s.objects.log.key, manifestUrl).href);
    const logBytes = m.segments.reduce((n, s) => n + s.objects.log.size, 0);
    const records = m.segments.reduce((n, s) => n + s.nextOffset - s.baseOffset, 0);
    return { dir, manifestUrl, logUrls, logBytes, records, serve, baseUrl };
  } catch (err) {
    await serve.terminate();
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

async function dispose(a: Archive): Promise<void> {
  await a.serve.terminate();
  fs.rmSync(a.dir, { recursive: true, force: true });
}

/** What both contenders report for one operation: log bytes and records seen. */
interface Out { bytes: number; records: number }

const PAGE_SCRIPT = (manifestUrl: string, logUrls: string[], records: number) => `(async () => {
  const m = await import('/dist/src/replay/index.js');
  window.__bench = {
    async replay(n) {
      let bytes = 0, records = 0;
      for (let i = 0; i < n; i++) {
        const r = m.replay(${JSON.stringify(manifestUrl)});
        for await (const chunk of r.chunks()) records += chunk.length;
        bytes += r.stats.bytesScanned;
      }
      return { bytes: bytes / n, records: records / n };
    },
    async fetch(n) {
      let bytes = 0;
      for (let i = 0; i < n; i++) {
        for (const u of ${JSON.stringify(logUrls)}) bytes += (await (await fetch(u)).arrayBuffer()).byteLength;
      }
      return { bytes: bytes / n, records: ${records} };
    },
    async fetchParallel(n) {
      let bytes = 0;
      for (let i = 0; i < n; i++) {
        const sizes = await Promise.all(${JSON.stringify(logUrls)}.map(async (u) => (await (await fetch(u)).arrayBuffer()).byteLength));
        for (const b of sizes) bytes += b;
      }
      return { bytes: bytes / n, records: ${records} };
    },
  };
})()`;

function chromiumCase(): BenchCase {
  let a: Archive;
  return {
    name: `Chromium: whole archive, ${RECORDS} records of ${VALUE_BYTES} B (${(RECORDS * (VALUE_BYTES + 40) / 2 ** 20).toFixed(0)} MiB of log)`,
    metric: gbPerSec(1), // replaced in setup once the archive's size is known
    bars: [{
      // Checked against the faster of the two plain fetches.
      label: 'replay in Chromium ≥ 0.5× a plain fetch of the same bytes',
      sediment: 'sediment/replay (Chromium)', peers: ['plain fetch (Chromium)', 'plain fetch, parallel (Chromium)'], minRatio: 0.5,
    }],
    async setup() {
      a = await makeArchive();
      this.metric = gbPerSec(a.logBytes);
      let ctx: BrowserContext | null = null;
      let page: Page;
      try {
        const userDir = fs.mkdtempSync(path.join(a.dir, 'chromium-'));
        ctx = await chromium.launchPersistentContext(userDir, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
        page = ctx.pages()[0] ?? await ctx.newPage();
        await page.goto(`${a.baseUrl}api/partitions`);
        await page.evaluate(PAGE_SCRIPT(a.manifestUrl, a.logUrls, a.records));
      } catch (err) {
        await ctx?.close().catch(() => undefined);
        await dispose(a);
        throw err;
      }
      const browser = ctx;
      const contenders: Contender[] = [
        {
          name: 'sediment/replay (Chromium)', role: 'sediment', async: true,
          note: 'manifest + Range reads (4 MiB, 2 prefetched) of every segment, CRC-32C of every batch and record decode in wasm, records yielded as arrays',
          run: (n) => page.evaluate((k) => (window as unknown as { __bench: { replay(n: number): Promise<Out> } }).__bench.replay(k), n),
          output: () => page.evaluate(() => (window as unknown as { __bench: { replay(n: number): Promise<Out> } }).__bench.replay(1)),
        },
        {
          name: 'plain fetch (Chromium)', role: 'peer', async: true,
          note: 'fetch() + arrayBuffer() of each .log object, one after the other: the bytes only, no checks, no decode',
          run: (n) => page.evaluate((k) => (window as unknown as { __bench: { fetch(n: number): Promise<Out> } }).__bench.fetch(k), n),
          output: () => page.evaluate(() => (window as unknown as { __bench: { fetch(n: number): Promise<Out> } }).__bench.fetch(1)),
        },
        {
          name: 'plain fetch, parallel (Chromium)', role: 'peer', async: true,
          note: 'fetch() + arrayBuffer() of every .log object at once (Promise.all): the fastest plain transfer',
          run: (n) => page.evaluate((k) => (window as unknown as { __bench: { fetchParallel(n: number): Promise<Out> } }).__bench.fetchParallel(k), n),
          output: () => page.evaluate(() => (window as unknown as { __bench: { fetchParallel(n: number): Promise<Out> } }).__bench.fetchParallel(1)),
        },
      ];
      return { contenders, teardown: async () => { await browser.close(); await dispose(a); } };
    },
  };
}

function nodeCase(): BenchCase {
  let a: Archive;
  return {
    name: `Node: whole archive, ${RECORDS} records of ${VALUE_BYTES} B`,
    metric: gbPerSec(1),
    async setup() {
      a = await makeArchive();
      this.metric = gbPerSec(a.logBytes);
      const replayOnce = async (): Promise<Out> => {
        const r = replay(a.manifestUrl);
        let records = 0;
        for await (const chunk of r.chunks()) records += chunk.length;
        return { bytes: r.stats.bytesScanned, records };
      };
      const fetchOnce = async (): Promise<Out> => {
        let bytes = 0;
        for (const u of a.logUrls) bytes += (await (await fetch(u)).arrayBuffer()).byteLength;
        return { bytes, records: a.records };
      };
      const fetchParallel = async (): Promise<Out> => {
        const sizes = await Promise.all(a.logUrls.map(async (u) => (await (await fetch(u)).arrayBuffer()).byteLength));
        return { bytes: sizes.reduce((x, y) => x + y, 0), records: a.records };
      };
      const contenders: Contender[] = [
        {
          name: 'sediment/replay (Node)', role: 'sediment', async: true,
          note: 'the same replay as in Chromium, on Node\'s fetch (undici)',
          async run(n) { let b = 0; for (let i = 0; i < n; i++) b += (await replayOnce()).bytes; return b; },
          output: replayOnce,
        },
        {
          name: 'plain fetch (Node)', role: 'peer', async: true,
          note: 'fetch() + arrayBuffer() of each .log object, one after the other',
          async run(n) { let b = 0; for (let i = 0; i < n; i++) b += (await fetchOnce()).bytes; return b; },
          output: fetchOnce,
        },
        {
          name: 'plain fetch, parallel (Node)', role: 'peer', async: true,
          note: 'fetch() + arrayBuffer() of every .log object at once (Promise.all)',
          async run(n) { let b = 0; for (let i = 0; i < n; i++) b += (await fetchParallel()).bytes; return b; },
          output: fetchParallel,
        },
      ];
      return { contenders, teardown: () => dispose(a) };
    },
  };
}

export const replayGroup: BenchGroup = {
  name: 'replay',
  title: 'Replay of archived segments over HTTP (Chromium, Node)',
  description:
    'Reads a whole archived partition (written by the tiering uploader to an OpenDAL fs root, 8 MiB segments, 1000-byte values) ' +
    'from `sediment serve`\'s server on 127.0.0.1, running in a worker thread. sediment/replay fetches the manifest, then byte ranges of ' +
    'each .log (4 MiB, two prefetched), CRC-checks every batch and decodes every record in wasm into objects with copied key, value ' +
    'and header bytes. The peers are plain `fetch()` + `arrayBuffer()` of the same .log objects, one after the other and all at ' +
    'once: the transfer alone, so the ratio is the share of the link speed replay keeps (replay keeps up to three ranges in flight, ' +
    'which is why it can beat the sequential fetch). The server sends `Cache-Control: no-store`, so Chromium writes nothing to its cache. The figure is GB/s of log bytes; one operation is the whole archive. ' +
    'Chromium is Debian\'s, headless, on the same 2 cores as the server.',
  cases: () => [chromiumCase(), nodeCase()],
};
