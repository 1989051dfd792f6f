// Tiered storage of one Store: the OpenDAL operator, one PartitionArchiver
// per partition (installed through store.onPartition), the shared chunk
// cache of remote reads, the store catalog, status and presigned URLs.
// Created by Store.open when StoreOptions.tier is set (store.tier).

import type { Store } from '../store.js';
import type { Partition } from '../partition.js';
import { Crc32c } from '../crc32c.js';
import { InvalidArgumentError, ObjectStoreError } from '../errors.js';
import { ObjectStore } from './object_store.js';
import { ChunkCache, ChunkCacheStats } from './chunk_cache.js';
import { TierConfig, ResolvedTierConfig, resolveTierConfig, describeTierConfig } from './tier_config.js';
import { ArchiveLayout, Catalog, CATALOG_FORMAT, parseCatalog, serializeCatalog, Manifest, MANIFEST_NAME, OBJECT_KINDS } from './manifest.js';
import { PartitionArchiver, PartitionTierStatus, Limiter, UploadProgress } from './archiver.js';
import type { RemoteReadStats } from './remote_reader.js';
import type { PresignedRequest } from 'opendal';

export interface TierStatus {
  service: string;
  prefix: string;
  options: Record<string, string>;
  partitions: PartitionTierStatus[];
  cache: ChunkCacheStats;
  requests: ObjectStore['counters'];
  /** Remote reads of the selected partitions, summed (streams opened, streams continued by ranged reads, ...). */
  reads: RemoteReadStats;
}

/** Presigned GET requests for one partition's archive (browser replay). */
export interface PresignedPartition {
  topic: string;
  partition: number;
  expiresSec: number;
  manifest: PresignedRequest;
  /** The manifest the URLs were made for. */
  manifestContent: Manifest;
  /** Presigned request per object key (relative to the manifest, as in manifestContent). */
  objects: Record<string, PresignedRequest>;
}

export class TieredStorage {
  readonly config: ResolvedTierConfig;
  readonly objects: ObjectStore;
  readonly layout: ArchiveLayout;
  readonly cache: ChunkCache;
  private readonly store: Store;
  private readonly crc: Crc32c;
  private readonly limiter: Limiter;
  private readonly archivers = new Map<Partition, PartitionArchiver>();
  private timer: ReturnType<typeof setInterval> | null = null;
  private closed = false;
  private catalog: Catalog | null = null;
  private catalogDirty = false;
  private catalogLoaded = false;
  private catalogWrite: Promise<void> | null = null;

  private constructor(store: Store, config: ResolvedTierConfig, objects?: ObjectStore) {
    this.store = store;
    this.config = config;
    this.objects = objects ?? new ObjectStore(config);
    this.layout = new ArchiveLayout(store.k, config.prefix);
    this.cache = new ChunkCache(config.cacheBytes);
    this.crc = new Crc32c(store.k);
    this.limiter = new Limiter(config.uploadConcurrency);
  }

  /** Attaches tiered storage to an open store: an archiver on every partition, now and later. */
  static async attach(store: Store, config: TierConfig): Promise<TieredStorage> {
    const t = new TieredStorage(store, resolveTierConfig(config));
    await store.onPartition((p) => t.addPartition(p));
    if (!store.readOnly && t.config.checkIntervalMs > 0) {
      t.timer = setInterval(() => { for (const a of t.archivers.values()) a.kick(0); }, t.config.checkIntervalMs);
      t.timer.unref?.();
    }
    // A read-only store never uploads: load the manifests now so remote reads work (best effort).
    if (store.readOnly) await t.refresh().catch(() => undefined);
    for (const a of t.archivers.values()) a.kick(0);
    // Without background archiving, still load the manifests (remote reads need them); best effort.
    if (!store.readOnly && !t.config.autoArchive) for (const a of t.archivers.values()) a.refresh().catch(() => undefined);
    return t;
  }

  private addPartition(p: Partition): void {
    if (this.closed || this.archivers.has(p)) return;
    const a = new PartitionArchiver(p, {
      k: this.store.k, crc: this.crc, storage: this.store.storage, store: this.objects, cache: this.cache, layout: this.layout,
      config: this.config, limiter: this.limiter, readOnly: this.store.readOnly, beforeUpload: () => this.saveCatalog(),
    });
    this.archivers.set(p, a);
    this.noteTopic(p);
    a.kick(0);
  }

  private noteTopic(p: Partition): void {
    this.catalog ??= { format: CATALOG_FORMAT, updatedAt: 0, topics: {} };
    const t = this.catalog.topics[p.topic];
    const config = { ...p.config } as Record<string, unknown>;
    if (config.dedup === undefined) delete config.dedup;
    if (!t || t.partitions < p.id + 1 || JSON.stringify(t.config) !== JSON.stringify(config)) {
      this.catalog.topics[p.topic] = { partitions: Math.max(t?.partitions ?? 0, p.id + 1), config };
      this.catalogDirty = true;
    }
  }

  /** Writes the store catalog (topics, partition counts, configs) when it changed; merges topics the archive already knows. */
  private saveCatalog(): Promise<void> {
    if (this.store.readOnly || (!this.catalogDirty && this.catalogLoaded)) return Promise.resolve();
    this.catalogWrite ??= (async () => {
      try {
        const key = this.layout.catalogKey();
        if (!this.catalogLoaded) {
          try {
            const remote = parseCatalog(await this.objects.read(key), key);
            const mine = this.catalog?.topics ?? {};
            for (const [name, t] of Object.entries(remote.topics)) {
              const m = mine[name];
              if (!m) { mine[name] = t; this.catalogDirty = true; } else if (m.partitions < t.partitions) m.partitions = t.partitions;
            }
            this.catalog = { format: CATALOG_FORMAT, updatedAt: remote.updatedAt, topics: mine };
          } catch (err) {
            if (!(err instanceof ObjectStoreError && err.kind === 'NotFound')) throw err;
            this.catalogDirty = true;
          }
          this.catalogLoaded = true;
        }
        if (!this.catalogDirty) return;
        const c: Catalog = { ...(this.catalog ?? { format: CATALOG_FORMAT, topics: {} }), updatedAt: Date.now() };
        this.catalogDirty = false;
        try {
          await this.objects.write(key, serializeCatalog(c));
        } catch (err) {
          this.catalogDirty = true;
          throw err;
        }
      } finally {
        this.catalogWrite = null;
      }
    })();
    return this.catalogWrite;
  }

  /** The archiver of a partition. */
  archiver(topic: string, id = 0): PartitionArchiver {
    const p = this.store.partition(topic, id);
    const a = this.archivers.get(p);
    if (!a) throw new InvalidArgumentError(`partition ${topic}-${id} has no archiver`);
    return a;
  }

  private selected(topic?: string): PartitionArchiver[] {
    const out: PartitionArchiver[] = [];
    for (const [p, a] of this.archivers) if (!p.isClosed && (topic === undefined || p.topic === topic)) out.push(a);
    if (topic !== undefined && out.length === 0) this.store.topic(topic); // TopicNotFoundError
    return out;
  }

  /**
   * Archives now: one cycle per partition (upload every closed segment not
   * yet archived, then local eviction and remote retention). With roll,
   * non-empty active segments are rolled first so everything appended so far
   * is archived. Rejects with the first failure (ObjectStoreUnavailableError
   * when the store cannot be reached); other partitions still run.
   */
  async archiveNow(opts: { topic?: string; roll?: boolean; onProgress?: UploadProgress } = {}): Promise<void> {
    if (this.closed) throw new InvalidArgumentError('tiered storage is closed');
    const list = this.selected(opts.topic);
    if (opts.roll) for (const a of list) if (a.enabled && a.p.active.size > 0) a.p.roll();
    const results = await Promise.allSettled(list.map((a) => a.runOnce(opts.onProgress)));
    const failed = results.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
    if (failed) throw failed.reason;
  }

  /** Bytes archiveNow({ roll }) would upload (closed segments pending plus active ones when rolling). */
  pendingBytes(opts: { topic?: string; roll?: boolean } = {}): number {
    let n = 0;
    for (const a of this.selected(opts.topic)) {
      const s = a.status();
      n += s.pendingBytes;
      if (opts.roll && a.enabled) n += a.p.active.size;
    }
    return n;
  }

  /** Loads every partition's manifest from the object store (status of a read-only store). */
  async refresh(topic?: string): Promise<void> {
    const results = await Promise.allSettled(this.selected(topic).map((a) => a.refresh()));
    const failed = results.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
    if (failed) throw failed.reason;
  }

  status(topic?: string): TierStatus {
    return {
      ...describeTierConfig(this.config),
      partitions: this.selected(topic).map((a) => a.status()),
      cache: this.cache.stats(),
      requests: { ...this.objects.counters },
      reads: this.readStats(topic),
    };
  }

  /** Remote read counters of the selected partitions, summed. */
  private readStats(topic?: string): RemoteReadStats {
    const sum: RemoteReadStats = { segmentsOpened: 0, chunksRead: 0, streams: 0, streamFallbacks: 0, segmentsPreopened: 0, batches: 0, records: 0 };
    for (const a of this.selected(topic)) {
      const s = a.reader.stats;
      for (const k of Object.keys(sum) as (keyof RemoteReadStats)[]) sum[k] += s[k];
    }
    return sum;
  }

  /** Presigned GET requests for a partition's manifest and every object it lists (needs a service that presigns, e.g. s3). */
  async presign(topic: string, id = 0, expiresSec = 3600): Promise<PresignedPartition> {
    const a = this.archiver(topic, id);
    const m = await a.refresh();
    const objects: Record<string, PresignedRequest> = {};
    const manifest = await this.objects.presignRead(a.dir + MANIFEST_NAME, expiresSec);
    for (const s of m.segments) {
      for (const kind of OBJECT_KINDS) {
        const key = s.objects[kind].key;
        objects[key] = await this.objects.presignRead(a.dir + key, expiresSec);
      }
    }
    return { topic, partition: id, expiresSec, manifest, manifestContent: m, objects };
  }

  /** Stops every archiver (waiting for running uploads) and detaches from the partitions. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await Promise.all([...this.archivers.values()].map((a) => a.stop()));
    await this.catalogWrite?.catch(() => undefined);
    this.archivers.clear();
    this.cache.clear();
    this.layout.free();
  }
}
