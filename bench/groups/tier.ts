// Tiered storage (issue 6): uploading a closed segment and reading an
// archived segment back, against plain OpenDAL calls moving the same bytes
// through the same service.

import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { Operator } from 'opendal';
import { BenchGroup, BenchCase, CaseRun, Contender, gbPerSec } from '../harness.js';
import { Store, Partition, getKernelsSync, Crc32c } from '../../src/index.js';
import type { LogSegment } from '../../src/log_segment.js';
import type { TierConfig } from '../../src/tier/tier_config.js';
import { resolveTierConfig } from '../../src/tier/tier_config.js';
import { crcHex, serializeManifest } from '../../src/tier/manifest.js';
import { spawnS3rver } from '../../test/helpers/s3rver.js';

const SEGMENT = 16 << 20;
const VALUE = 1000;
const BATCH = 100;

interface Backend {
  label: string;
  /** Starts the service; returns the tier config reaching it and a stop function. */
  start(): Promise<{ tier: TierConfig; stop(): Promise<void> }>;
}

const s3: Backend = {
  label: 's3 (s3rver on 127.0.0.1, separate process)',
  async start() {
    const srv = await spawnS3rver();
    return { tier: srv.tier('bench'), stop: () => srv.close() };
  },
};

const fsBackend: Backend = {
  label: 'fs (local directory)',
  async start() {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-bench-bucket-'));
    return { tier: { service: 'fs', options: { root }, prefix: 'bench' }, stop: async () => fs.rmSync(root, { recursive: true, force: true }) };
  },
};

/** A store whose topic holds `closed` closed SEGMENT-byte segments (1 KiB records) and an empty active one. */
async function buildStore(tier: TierConfig, closed = 2): Promise<{ store: Store; p: Partition; dir: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-bench-tier-'));
  const store = await Store.open(dir, { retentionCheckMs: -1, tier: { ...tier, autoArchive: false, checkIntervalMs: -1 } });
  await store.createTopic('ev', { config: { segmentBytes: SEGMENT, flushMs: -1, retentionMs: -1 } });
  const p = store.partition('ev', 0);
  const value = new Uint8Array(VALUE);
  for (let i = 0; i < VALUE; i++) value[i] = (i * 131) & 0xff;
  let n = 0;
  while (p.segments.length < closed + 1) {
    const batch = [];
    for (let j = 0; j < BATCH; j++, n++) batch.push({ key: `key-${n}`, value, timestamp: 1_800_000_000_000 + n });
    p.appendSync(batch);
  }
  p.roll();
  await p.flush();
  return { store, p, dir };
}

/**
 * The least an archiver that meets the issue does, for the bound contenders:
 * read each file (2 MiB reads, all at once, off the event loop), write the
 * objects with plain Operator.write, then write a manifest of the same size
 * as sediment's (temp object and rename where the service renames, as a
 * manifest must never be seen half-written; one PUT on object stores). No
 * check, no verification, no retry.
 */
class UploadBound {
  private readonly canRename: boolean;
  constructor(private readonly op: Operator, private readonly manifest: Buffer) {
    this.canRename = op.capability().rename;
  }

  static async readInto(file: string, buf: Buffer): Promise<void> {
    const h = await fsp.open(file, 'r');
    try {
      const reads = [];
      for (let o = 0; o < buf.length; o += 2 << 20) reads.push(h.read(buf, o, Math.min(2 << 20, buf.length - o), o));
      for (const r of await Promise.all(reads)) if (r.bytesRead <= 0) throw new Error(`${file}: short read`);
    } finally {
      await h.close();
    }
  }

  async segment(files: string[], bufs: Buffer[], keys: string[]): Promise<void> {
    await Promise.all(files.map((f, j) => UploadBound.readInto(f, bufs[j]!)));
    await Promise.all(keys.map((k, j) => this.op.write(k, bufs[j]!)));
  }

  async writeManifest(key: string): Promise<void> {
    if (!this.canRename) {
      await this.op.write(key, this.manifest);
      return;
    }
    await this.op.write(`${key}.tmp`, this.manifest);
    await this.op.rename(`${key}.tmp`, key);
  }
}

type Built = Awaited<ReturnType<typeof buildStore>>;

/**
 * A case's setup: the backend started, a store with `closed` closed
 * segments built on it, then make() builds the contenders. The teardown (or
 * a failure anywhere in the setup) closes and removes both.
 */
async function tieredSetup(b: Backend, closed: number, make: (built: Built, tier: TierConfig) => Promise<Contender[]>): Promise<CaseRun> {
  const svc = await b.start();
  let built: Built | null = null;
  try {
    built = await buildStore(svc.tier, closed);
    const done = built;
    const contenders = await make(done, svc.tier);
    return {
      contenders,
      async teardown() {
        await done.store.close();
        fs.rmSync(done.dir, { recursive: true, force: true });
        await svc.stop();
      },
    };
  } catch (err) {
    if (built) { await built.store.close().catch(() => undefined); fs.rmSync(built.dir, { recursive: true, force: true }); }
    await svc.stop();
    throw err;
  }
}

function plainOperator(tier: TierConfig): Operator {
  const cfg = resolveTierConfig(tier);
  return new Operator(cfg.service, cfg.options);
}

function uploadCase(b: Backend): BenchCase {
  const sed = 'sediment archiver upload';
  const peer = 'OpenDAL write (bytes in memory)';
  const peerFile = 'OpenDAL write (read files, then write)';
  const bound = 'bound: read the files, write the objects, then a manifest';
  return {
    name: `upload a closed 16 MiB segment (.log + .index + .timeindex), ${b.label}`,
    metric: gbPerSec(SEGMENT),
    bars: [{ label: 'tiered upload ≥ 0.9× plain OpenDAL write of the same bytes', sediment: sed, peers: [peer], minRatio: 0.9 }],
    async setup(): Promise<CaseRun> {
      return tieredSetup(b, 2, async (built, tier) => {
        const { store, p } = built;
        const seg: LogSegment = p.segments[0]!;
        const archiver = store.tier!.archiver('ev', 0);
        const op = plainOperator(tier);
        const files = [seg.logPath, seg.index.path, seg.timeIndex.path].map((f) => fs.readFileSync(f));
        const keys = ['plain/seg.log', 'plain/seg.index', 'plain/seg.timeindex'];
        const crc = new Crc32c(getKernelsSync());
        const objectDir = store.tier!.layout.partitionDir('ev', 0);
        const logCrc = crcHex(crc.of(files[0]!));
        await archiver.uploadSegment(seg); // a manifest listing the segment: the bound writes one of the same size
        const least = new UploadBound(op, serializeManifest(archiver.currentManifest()));
        const boundBufs = files.map((f) => Buffer.alloc(f.length));
        const segFiles = [seg.logPath, seg.index.path, seg.timeIndex.path];
        return [
          {
            name: sed,
            role: 'sediment',
            note: 'reads the segment file once into a reused buffer and PUTs it whole, ' +
              'checks the log in wasm (CRC-32C of the object, batch framing) while the three objects upload at the same time, stats each object, writes the manifest',
            async: true,
            async run(n: number) {
              let e;
              for (let i = 0; i < n; i++) e = await archiver.uploadSegment(seg);
              return e;
            },
            async output() {
              const e = await archiver.uploadSegment(seg);
              const back = await op.read(objectDir + e.objects.log.key);
              return { size: back.length, crc: crcHex(crc.of(back)), manifestCrc: e.objects.log.crc32c === logCrc };
            },
          },
          {
            name: peerFile,
            role: 'peer',
            note: 'reads the three files (fs.readFileSync), then three concurrent Operator.write calls; no check, no verification, no manifest',
            async: true,
            async run(n: number) {
              for (let i = 0; i < n; i++) {
                const bytes = [seg.logPath, seg.index.path, seg.timeIndex.path].map((f) => fs.readFileSync(f));
                await Promise.all(keys.map((k, j) => op.write(k, bytes[j]!)));
              }
              return n;
            },
          },
          {
            name: peer,
            role: 'peer',
            note: 'three concurrent Operator.write calls of the same bytes, already in memory; no check, no verification, no manifest',
            async: true,
            async run(n: number) {
              for (let i = 0; i < n; i++) await Promise.all(keys.map((k, j) => op.write(k, files[j]!)));
              return n;
            },
            async output() {
              await Promise.all(keys.map((k, j) => op.write(k, files[j]!)));
              const back = await op.read(keys[0]!);
              return { size: back.length, crc: crcHex(crc.of(back)), manifestCrc: true };
            },
          },
          {
            name: bound,
            role: 'peer',
            note: 'the least any archiver that lists objects in a manifest written after them must do (no check, no verification): ' +
              'the three files read with 2 MiB reads all at once on the threadpool, three concurrent Operator.write calls, then the manifest (temp object + rename where the service renames)',
            async: true,
            async run(n: number) {
              for (let i = 0; i < n; i++) {
                await least.segment(segFiles, boundBufs, keys);
                await least.writeManifest('plain/manifest.json');
              }
              return n;
            },
            async output() {
              await this.run(1);
              const back = await op.read(keys[0]!);
              return { size: back.length, crc: crcHex(crc.of(back)), manifestCrc: true };
            },
          },
        ];
      });
    },
  };
}

/** Closed segments uploaded in one pass by uploadPassCase (a backlog after an outage, or a first archive). */
const PASS_SEGMENTS = 4;

function uploadPassCase(b: Backend): BenchCase {
  const sed = 'sediment archiver upload (pipelined)';
  const seq = 'OpenDAL write, one segment at a time';
  const two = 'OpenDAL write, as many segments at a time as sediment';
  const all = 'OpenDAL write, every object at once';
  const bound = 'bound: read the files, write the objects, then one manifest';
  return {
    name: `upload ${PASS_SEGMENTS} closed 16 MiB segments in one pass, ${b.label}`,
    metric: gbPerSec(SEGMENT * PASS_SEGMENTS),
    bars: [{
      label: 'tiered upload of several segments ≥ 0.9× plain OpenDAL writes of the same objects, sequential or concurrent (the faster)',
      sediment: sed, peers: [seq, two, all], minRatio: 0.9,
    }],
    async setup(): Promise<CaseRun> {
      return tieredSetup(b, PASS_SEGMENTS, async (built, tier) => {
        const { store, p } = built;
        const segs = p.segments.slice(0, PASS_SEGMENTS);
        const archiver = store.tier!.archiver('ev', 0);
        const lanes = archiver.pipelineWindow;
        const op = plainOperator(tier);
        const bytes = segs.map((seg) => [seg.logPath, seg.index.path, seg.timeIndex.path].map((f) => fs.readFileSync(f)));
        const keys = segs.map((_, i) => [`plain/${i}.log`, `plain/${i}.index`, `plain/${i}.timeindex`]);
        const writeSegment = (i: number) => Promise.all(keys[i]!.map((k, j) => op.write(k, bytes[i]![j]!)));
        const crc = new Crc32c(getKernelsSync());
        const objectDir = store.tier!.layout.partitionDir('ev', 0);
        await archiver.uploadSegments(segs); // a manifest listing them: the bound writes one of the same size
        const least = new UploadBound(op, serializeManifest(archiver.currentManifest()));
        const segFiles = segs.map((seg) => [seg.logPath, seg.index.path, seg.timeIndex.path]);
        const boundBufs = bytes.map((b) => b.map((x) => Buffer.alloc(x.length)));
        const peerOutput = async () => (await Promise.all(keys.map((k) => op.read(k[0]!)))).map((b) => ({ size: b.length, crc: crcHex(crc.of(b)), listed: true }));
        return [
          {
            name: sed,
            role: 'sediment',
            note: `PartitionArchiver.uploadSegments of ${PASS_SEGMENTS} segments: ${lanes} segments sending at once (the next one read, checked and sent while the previous one completes and is verified), ` +
              'each as in the single-segment case (read once, checked in wasm, three objects at the same time, each stat-verified); ' +
              'the manifest rewritten once per group of segments verified while the previous manifest write was in flight',
            async: true,
            async run(n: number) {
              let got = 0;
              for (let i = 0; i < n; i++) got += (await archiver.uploadSegments(segs)).length;
              return got;
            },
            async output() {
              const es = await archiver.uploadSegments(segs);
              const back = await Promise.all(es.map((e) => op.read(objectDir + e.objects.log.key)));
              return back.map((b, i) => ({ size: b.length, crc: crcHex(crc.of(b)), listed: es[i]!.objects.log.crc32c === crcHex(crc.of(bytes[i]![0]!)) }));
            },
          },
          {
            name: seq,
            role: 'peer',
            note: 'per segment, its three objects with concurrent Operator.write calls (bytes already in memory), then the next segment; no check, no verification, no manifest',
            async: true,
            async run(n: number) {
              for (let r = 0; r < n; r++) for (let i = 0; i < PASS_SEGMENTS; i++) await writeSegment(i);
              return n;
            },
            async output() {
              for (let i = 0; i < PASS_SEGMENTS; i++) await writeSegment(i);
              return peerOutput();
            },
          },
          {
            name: two,
            role: 'peer',
            note: `the same writes with ${lanes} segments in flight, as many as sediment sends at once on this service (a segment starts when one of those in flight is done)`,
            async: true,
            async run(n: number) {
              for (let r = 0; r < n; r++) {
                let next = 0;
                const lane = async () => { while (next < PASS_SEGMENTS) await writeSegment(next++); };
                await Promise.all(Array.from({ length: lanes }, lane));
              }
              return n;
            },
            async output() {
              await this.run(1);
              return peerOutput();
            },
          },
          {
            name: all,
            role: 'peer',
            note: `all ${3 * PASS_SEGMENTS} Operator.write calls at once (Promise.all)`,
            async: true,
            async run(n: number) {
              for (let r = 0; r < n; r++) await Promise.all(keys.map((_, i) => writeSegment(i)));
              return n;
            },
            async output() {
              await this.run(1);
              return peerOutput();
            },
          },
          {
            name: bound,
            role: 'peer',
            note: `the least any archiver that lists objects in a manifest written after them must do (no check, no verification): ${lanes} segments at a time as sediment, ` +
              'each with its three files read (2 MiB reads, all at once, on the threadpool) and written with concurrent Operator.write calls; one manifest write at the end',
            async: true,
            async run(n: number) {
              for (let r = 0; r < n; r++) {
                let next = 0;
                const lane = async () => { while (next < PASS_SEGMENTS) { const i = next++; await least.segment(segFiles[i]!, boundBufs[i]!, keys[i]!); } };
                await Promise.all(Array.from({ length: lanes }, lane));
                await least.writeManifest('plain/manifest.json');
              }
              return n;
            },
            async output() {
              await this.run(1);
              return peerOutput();
            },
          },
        ];
      });
    },
  };
}

function readCase(b: Backend): BenchCase {
  const sed = 'sediment Partition.read (remote)';
  const views = 'sediment Partition.readViews (remote)';
  const scan = 'sediment remote scan (no decode)';
  const peer = 'OpenDAL read (whole object)';
  return {
    name: `read an archived 16 MiB segment back, cold cache, ${b.label}`,
    metric: gbPerSec(SEGMENT),
    bars: [
      { label: 'remote read of the bytes, CRC-checked, ≥ 0.9× plain OpenDAL read of the same bytes', sediment: scan, peers: [peer], minRatio: 0.9 },
      { label: 'remote read of the records (decoded, through Partition.read) ≥ 0.9× plain OpenDAL read of the same bytes', sediment: sed, peers: [peer], minRatio: 0.9 },
    ],
    async setup(): Promise<CaseRun> {
      return tieredSetup(b, 2, async (built, tierConfig) => {
        const { store, p } = built;
        await store.tier!.archiveNow();
        while (p.segments.length > 1) p.deleteOldestSegment(); // everything below the active segment is now remote
        const tier = store.tier!;
        const archiver = tier.archiver('ev', 0);
        const entry = archiver.currentManifest().segments[0]!;
        const key = tier.layout.partitionDir('ev', 0) + entry.objects.log.key;
        const records = entry.nextOffset - entry.baseOffset;
        const op = plainOperator(tierConfig);
        return [
          {
            name: sed,
            role: 'sediment',
            note: 'every record of the segment through the public per-record iterator: one streamed GET of the .log (pieces of >= 256 KiB handed over as they arrive), copy into wasm, batch CRC-32C checks, one owned view per batch, a record object per record; chunk cache cleared first',
            async: true,
            async run(n: number) {
              let got = 0;
              for (let i = 0; i < n; i++) {
                tier.cache.clear();
                for await (const r of p.read({ offset: entry.baseOffset }, { maxRecords: records })) got += r.value!.length;
              }
              return got;
            },
          },
          {
            name: views,
            role: 'sediment',
            note: 'the same read through Partition.readViews: one owned view per batch, the values read from the views (valueLengthAt), no object per record',
            async: true,
            async run(n: number) {
              let got = 0;
              for (let i = 0; i < n; i++) {
                tier.cache.clear();
                for await (const v of p.readViews({ offset: entry.baseOffset }, { maxRecords: records })) for (let j = 0; j < v.count; j++) got += v.valueLengthAt(j);
              }
              return got;
            },
          },
          {
            name: scan,
            role: 'sediment',
            note: 'the same streamed GET and batch CRC-32C checks, records not decoded (verifyRange)',
            async: true,
            async run(n: number) {
              let got = 0;
              for (let i = 0; i < n; i++) {
                tier.cache.clear();
                got += (await archiver.reader.verifyRange(entry.baseOffset, entry.nextOffset)).bytes;
              }
              return got;
            },
          },
          {
            name: peer,
            role: 'peer',
            note: 'one Operator.read of the whole .log object into a Buffer; no CRC check, no decoding',
            async: true,
            async run(n: number) {
              let got = 0;
              for (let i = 0; i < n; i++) got += (await op.read(key)).length;
              return got;
            },
          },
        ];
      });
    },
  };
}

export const tier: BenchGroup = {
  name: 'tier',
  title: 'Tiered storage: upload and remote read',
  description:
    'A closed 16 MiB segment (16.5k records of 1 KiB) moved through Apache OpenDAL. **Upload**: the archiver path for one segment ' +
    '(read the file, PUT .log/.index/.timeindex, check the log in wasm while it uploads, stat every object, write the manifest) ' +
    'against three plain `Operator.write` calls of the same bytes already in memory, and against a bound: the least any archiver that ' +
    'lists its objects in a manifest written after them must do (read the files, write the objects, then the manifest; no check, no ' +
    'verification). **Remote read**: every record of the archived ' +
    'segment through `Partition.read` (cold chunk cache: every byte fetched again) and the CRC-checked scan alone, against one plain ' +
    '`Operator.read` of the `.log` object. s3 runs against s3rver in a child process on 127.0.0.1, so the figures are bound by that ' +
    'server and by the 2 shared cores, not by a network; every OpenDAL fs write ends with an fsync of its file (on both sides), so fs figures include the disk. Ratios are the point.',
  cases: () => [uploadCase(s3), uploadPassCase(s3), readCase(s3), uploadCase(fsBackend), uploadPassCase(fsBackend), readCase(fsBackend)],
};
