// Restore: rebuild a store on a new machine from the object store alone.
//
// Topics, partition counts and configs come from the store catalog
// (<prefix>/topics.json), or, when it is missing, from the partition
// manifests found by listing the archive. Each partition is staged under
// <dir>/.restore/<topic>-<n>/ and moved into place only when complete, so an
// interrupted restore never leaves a half-built partition the store would
// adopt. With download 'all' (default) every archived segment is downloaded
// in ranged chunks and checked as it arrives (object size and CRC-32C
// against the manifest, every batch CRC-checked in wasm), then an empty
// active segment is created at the archive's end, with a recovery point and
// a clean-shutdown marker so the open trusts the verified files. With
// download 'none' only the empty active segment is created: every archived
// offset is then read from the object store.

import * as path from 'node:path';
import type { StoreOptions } from '../store.js';
import { Store } from '../store.js';
import { getKernelsSync } from '../kernels.js';
import { defaultStorage, Storage } from '../storage.js';
import { Crc32c } from '../crc32c.js';
import { CorruptionError, InvalidArgumentError, ObjectStoreError, TopicExistsError, TopicNotFoundError } from '../errors.js';
import { segmentFileName, LOG_SUFFIX } from '../log_segment.js';
import { CLEAN_SHUTDOWN_FILE, RECOVERY_POINT_FILE } from '../partition.js';
import { resolveTopicConfig, TopicConfig, validateTopicName } from '../topic_config.js';
import { ObjectStore } from './object_store.js';
import { TierConfig, resolveTierConfig } from './tier_config.js';
import {
  ArchiveLayout, Catalog, Manifest, MANIFEST_NAME, OBJECT_KINDS, archivedUpTo, crcHex, emptyManifest, manifestBytes,
  parseCatalog, parseManifest, parsePartitionDirName, partitionHash, serializeManifest,
} from './manifest.js';
import { LOCAL_MANIFEST_FILE } from './archiver.js';
import { SegmentChecker, archivedBatchLimit } from './segment_check.js';
import { XxHash64 } from '../xxhash64.js';

export interface RestoreProgress {
  topic: string;
  partition: number;
  /** Bytes downloaded so far, over the whole restore. */
  doneBytes: number;
  /** Bytes the restore downloads in total. */
  totalBytes: number;
}

export interface RestoreOptions {
  /** Restore only these topics (default: every topic in the archive). */
  topics?: string[];
  /** 'all' (default): download and verify every archived segment; 'none': metadata only, archived offsets are read remotely. */
  download?: 'all' | 'none';
  /** Called as bytes arrive. */
  onProgress?: (e: RestoreProgress) => void;
  /** Further options of the store opened (everything but tier and readOnly). */
  storeOptions?: Omit<StoreOptions, 'tier' | 'readOnly'>;
}

/** Bytes per ranged GET while downloading a segment. */
const DOWNLOAD_CHUNK = 8 << 20;
const STAGING_DIR = '.restore';
/** Marker in the staging directory of a topic being recorded and moved into place (<topic>.placing). */
const PLACING_SUFFIX = '.placing';

interface PlannedTopic { name: string; partitions: number; config: Partial<TopicConfig>; manifests: Manifest[] }

/** Reads the catalog, or rebuilds the topic list from the manifests in the archive. */
async function discover(objects: ObjectStore, layout: ArchiveLayout, xxh: XxHash64): Promise<Catalog> {
  const key = layout.catalogKey();
  try {
    return parseCatalog(await objects.read(key), key);
  } catch (err) {
    if (!(err instanceof ObjectStoreError && err.kind === 'NotFound')) throw err;
  }
  const catalog: Catalog = { format: 1, updatedAt: 0, topics: {} };
  const root = layout.rootDir();
  for (const k of await objects.list(root, true)) {
    if (!k.endsWith('/' + MANIFEST_NAME)) continue;
    const parts = k.slice(root.length).split('/');
    if (parts.length !== 3) continue;
    const tp = parsePartitionDirName(parts[1]!);
    if (!tp || partitionHash(xxh, tp.topic, tp.partition) !== parts[0]) continue;
    try { validateTopicName(tp.topic); } catch { continue; }
    const t = catalog.topics[tp.topic];
    catalog.topics[tp.topic] = { partitions: Math.max(t?.partitions ?? 0, tp.partition + 1), config: {} };
  }
  return catalog;
}

async function writeWhole(storage: Storage, file: string, data: Uint8Array): Promise<void> {
  const h = storage.open(file, 'write');
  try {
    h.truncate(0);
    if (data.length > 0) h.write(data, 0, data.length, 0);
    await h.datasync();
  } finally {
    h.close();
  }
}

/** Restores topics from an archive into dir; see the file comment. Returns the store, open with the tier attached. */
export async function restoreStore(dir: string, tier: TierConfig, opts: RestoreOptions = {}): Promise<Store> {
  const cfg = resolveTierConfig(tier);
  const download = opts.download ?? 'all';
  if (download !== 'all' && download !== 'none') throw new InvalidArgumentError(`restore download must be 'all' or 'none', got ${JSON.stringify(download)}`);
  const storeOpts = opts.storeOptions ?? {};
  const k = storeOpts.kernels ?? getKernelsSync();
  const storage = storeOpts.storage ?? defaultStorage;
  const objects = new ObjectStore(cfg);
  const layout = new ArchiveLayout(k, cfg.prefix);
  const xxh = new XxHash64(k);
  const crc = new Crc32c(k);
  let store: Store | null = null;
  try {
    // 1. What to restore.
    const catalog = await discover(objects, layout, xxh);
    const names = opts.topics ?? Object.keys(catalog.topics).sort();
    const plan: PlannedTopic[] = [];
    for (const name of names) {
      const t = catalog.topics[name];
      if (!t) throw new TopicNotFoundError(name);
      resolveTopicConfig(t.config);
      const manifests: Manifest[] = [];
      for (let id = 0; id < t.partitions; id++) {
        const key = layout.manifestKey(name, id);
        try {
          manifests.push(parseManifest(await objects.read(key), key, { topic: name, partition: id }));
        } catch (err) {
          if (!(err instanceof ObjectStoreError && err.kind === 'NotFound')) throw err;
          manifests.push(emptyManifest(name, id));
        }
      }
      plan.push({ name, partitions: t.partitions, config: t.config, manifests });
    }
    const totalBytes = download === 'all' ? plan.reduce((n, t) => n + t.manifests.reduce((a, m) => a + manifestBytes(m), 0), 0) : 0;
    let doneBytes = 0;

    // 2. The store, with the tier attached (archivers join each topic as it is created).
    store = await Store.open(dir, { ...storeOpts, tier });
    const staging = path.join(store.dir, STAGING_DIR);
    // A topic whose marker is in the staging directory was being put in place
    // by a restore that was cut off (recorded, its partitions moved in or
    // not): restored anew. Any other existing topic is refused.
    const marker = (name: string) => path.join(staging, `${name}${PLACING_SUFFIX}`);
    for (const t of plan) if (store.hasTopic(t.name) && !storage.exists(marker(t.name))) throw new TopicExistsError(t.name);
    for (const t of plan) if (store.hasTopic(t.name)) await store.deleteTopic(t.name);
    // Leftovers of earlier runs go, except the markers of topics this run leaves alone.
    if (storage.isDirectory(staging)) {
      const keep = new Set(plan.map((t) => path.basename(marker(t.name))));
      for (const name of storage.list(staging)) {
        const p = path.join(staging, name);
        if (name.endsWith(PLACING_SUFFIX) && !keep.has(name)) continue;
        if (storage.isDirectory(p)) storage.removeDir(p); else storage.remove(p);
      }
    }

    // 3. Stage, verify and move each partition into place, then create the topic.
    for (const t of plan) {
      const maxBatchBytes = archivedBatchLimit(resolveTopicConfig(t.config).maxMessageBytes);
      for (const m of t.manifests) {
        const pdir = path.join(staging, `${t.name}-${m.partition}`);
        storage.mkdirp(pdir);
        const objDir = layout.partitionDir(t.name, m.partition);
        if (download === 'all') {
          for (const s of m.segments) {
            // The log, in ranged chunks, checked as it arrives.
            const o = s.objects.log;
            const file = path.join(pdir, o.key);
            const checker = new SegmentChecker(k, crc, { baseOffset: s.baseOffset, nextOffset: s.nextOffset, maxBatchBytes, file: objDir + o.key });
            const h = storage.open(file, 'write');
            try {
              h.truncate(0);
              for (let pos = 0; pos < o.size; pos += DOWNLOAD_CHUNK) {
                const n = Math.min(DOWNLOAD_CHUNK, o.size - pos);
                const chunk = await objects.readRangeOf(objDir + o.key, { offset: pos, size: n }, o.size);
                h.write(chunk, 0, n, pos);
                checker.update(chunk);
                doneBytes += n;
                opts.onProgress?.({ topic: t.name, partition: m.partition, doneBytes, totalBytes });
              }
              const facts = checker.finish();
              if (facts.size !== o.size || crcHex(facts.crc32c) !== o.crc32c) {
                throw new CorruptionError(`archived object has ${facts.size} bytes with CRC-32C ${crcHex(facts.crc32c)}, the manifest says ${o.size} bytes with ${o.crc32c}`, { file: objDir + o.key, position: 0 });
              }
              await h.datasync();
            } finally {
              h.close();
              checker.free();
            }
            for (const kind of OBJECT_KINDS) {
              if (kind === 'log') continue;
              const io = s.objects[kind];
              const bytes = io.size > 0 ? await objects.read(objDir + io.key) : Buffer.alloc(0);
              const c = crcHex(crc.of(bytes));
              if (bytes.length !== io.size || c !== io.crc32c) {
                throw new CorruptionError(`archived object has ${bytes.length} bytes with CRC-32C ${c}, the manifest says ${io.size} bytes with ${io.crc32c}`, { file: objDir + io.key, position: 0 });
              }
              await writeWhole(storage, path.join(pdir, io.key), bytes);
              doneBytes += io.size;
              opts.onProgress?.({ topic: t.name, partition: m.partition, doneBytes, totalBytes });
            }
          }
        }
        // The log continues at the archive's end: an empty active segment there,
        // a recovery point covering the verified segments and a clean-shutdown marker.
        const end = archivedUpTo(m);
        await writeWhole(storage, path.join(pdir, segmentFileName(end, LOG_SUFFIX)), new Uint8Array(0));
        await writeWhole(storage, path.join(pdir, RECOVERY_POINT_FILE), new TextEncoder().encode(JSON.stringify({ offset: end }) + '\n'));
        if (m.version > 0) await writeWhole(storage, path.join(pdir, LOCAL_MANIFEST_FILE), serializeManifest(m));
        await writeWhole(storage, path.join(pdir, CLEAN_SHUTDOWN_FILE), new Uint8Array(0));
        await storage.syncDir(pdir);
      }
      // The topic is recorded (with its archived config) before its partitions
      // move into place: a directory in place without its topic recorded
      // would be adopted on the next open with the default config (e.g. a
      // 7-day retention that remote retention then applies to the archive).
      await writeWhole(storage, marker(t.name), new Uint8Array(0));
      await storage.syncDir(staging);
      await store.createTopic(t.name, {
        partitions: t.partitions,
        config: t.config,
        beforeOpen: async () => {
          for (let id = 0; id < t.partitions; id++) storage.rename(path.join(staging, `${t.name}-${id}`), path.join(store!.dir, `${t.name}-${id}`));
          await storage.syncDir(store!.dir);
        },
      });
      storage.remove(marker(t.name));
    }
    if (storage.list(staging).length === 0) storage.removeDir(staging);
    return store;
  } catch (err) {
    await store?.close().catch(() => undefined);
    throw err;
  } finally {
    layout.free();
    xxh.free();
  }
}
