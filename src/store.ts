// A store: a directory of topics, each with partitions in <dir>/<topic>-<n>/.
// Configuration lives in <dir>/sediment.json (written atomically). One writer
// per directory, enforced by <dir>/.lock; any number of read-only opens.

import * as path from 'node:path';
import { Kernels, getKernelsSync } from './kernels.js';
import { Storage, defaultStorage } from './storage.js';
import { Partition, RemoteLogReader } from './partition.js';
import { RecoveryResult } from './log_segment.js';
import { DedupFilter, DedupStats, UnavailableDedupFilter, installDedup } from './dedup.js';
import { TopicConfig, resolveTopicConfig, validateTopicName } from './topic_config.js';
import { ClosedError, InvalidArgumentError, ReadOnlyError, StoreLockedError, TopicExistsError, TopicNotFoundError } from './errors.js';
import type { TierConfig } from './tier/tier_config.js';
import type { TieredStorage } from './tier/tiered_storage.js';
import type { RestoreOptions } from './tier/restore.js';
import { KvStore, KvOptions } from './kv/kv_store.js';
import { ConsumerOffsets, CONSUMER_OFFSETS_NAMESPACE, CONSUMER_OFFSETS_TOPIC } from './kv/consumer_offsets.js';

export const METADATA_FILE = 'sediment.json';
export const LOCK_FILE = '.lock';
/** Suffix of the file that serialises takeovers of a stale lock. */
export const LOCK_TAKEOVER_SUFFIX = '.takeover';
export const METADATA_FORMAT = 1;
export const MAX_PARTITIONS = 10_000;

export interface StoreOptions {
  /** Open without the writer lock; nothing is written, recovery happens in memory only. */
  readOnly?: boolean;
  /** Create the directory when missing (default true unless readOnly). */
  create?: boolean;
  /** Defaults for topics created without a config. */
  defaultTopicConfig?: Partial<TopicConfig>;
  /** Retention check period in ms (default 60 s; -1: only enforceRetention() calls). */
  retentionCheckMs?: number;
  storage?: Storage;
  kernels?: Kernels;
  /** Called for each segment recovery scan on open (progress for long recoveries). */
  onRecovery?: (e: { partition: string; segment: number; result: RecoveryResult }) => void;
  /** Tiered storage: archive closed segments to an object store through OpenDAL (docs/tiering.md). */
  tier?: TierConfig;
}

interface TopicMeta { partitions: number; config: Partial<TopicConfig> }
interface Metadata { format: number; topics: Record<string, TopicMeta> }

export interface TopicDescription {
  name: string;
  partitions: number;
  config: TopicConfig;
}

export class Topic {
  readonly name: string;
  readonly config: TopicConfig;
  readonly partitions: Partition[];
  constructor(name: string, config: TopicConfig, partitions: Partition[]) {
    this.name = name;
    this.config = config;
    this.partitions = partitions;
  }
  partition(id: number): Partition {
    const p = this.partitions[id];
    if (!p) throw new InvalidArgumentError(`topic '${this.name}' has no partition ${id} (it has ${this.partitions.length})`);
    return p;
  }
}

export class Store {
  readonly dir: string;
  readonly readOnly: boolean;
  readonly k: Kernels;
  readonly storage: Storage;
  private readonly opts: StoreOptions;
  private meta: Metadata;
  private readonly topics = new Map<string, Topic>();
  private retentionTimer: ReturnType<typeof setInterval> | null = null;
  private closed = false;
  private lockHeld = false;
  /** Hooks other subsystems (tiering, KV, dedup) install on every partition opened. */
  private readonly partitionHooks: ((p: Partition) => void | Promise<void>)[] = [];
  /** Tiered storage attached by StoreOptions.tier (status, archiveNow, presign), or null. */
  tier: TieredStorage | null = null;
  /** Open KV namespaces by topic (see kv()). */
  private readonly kvs = new Map<string, Promise<KvStore>>();

  private constructor(dir: string, opts: StoreOptions, k: Kernels, storage: Storage) {
    this.dir = dir;
    this.opts = opts;
    this.readOnly = opts.readOnly ?? false;
    this.k = k;
    this.storage = storage;
    this.meta = { format: METADATA_FORMAT, topics: {} };
  }

  /**
   * Rebuilds a store in dir from an object store archive alone (docs/tiering.md):
   * topics, configs and partitions from the archive, segments downloaded and
   * verified (or only the metadata, with download: 'none'); returns the store
   * open with that tier attached.
   */
  static async restore(dir: string, tier: TierConfig, opts: RestoreOptions = {}): Promise<Store> {
    return (await import('./tier/restore.js')).restoreStore(dir, tier, opts);
  }

  /** Opens (or creates) a store directory. */
  static async open(dir: string, opts: StoreOptions = {}): Promise<Store> {
    if (typeof dir !== 'string' || dir.length === 0) throw new InvalidArgumentError('store directory must be a non-empty string');
    const storage = opts.storage ?? defaultStorage;
    const k = opts.kernels ?? getKernelsSync();
    const store = new Store(path.resolve(dir), opts, k, storage);
    await store.init();
    return store;
  }

  private async init(): Promise<void> {
    const st = this.storage;
    if (!st.isDirectory(this.dir)) {
      if (this.readOnly || this.opts.create === false) throw new InvalidArgumentError(`store directory ${this.dir} does not exist`);
      st.mkdirp(this.dir);
    }
    if (!this.readOnly) this.acquireLock();
    try {
      const raw = st.readFile(path.join(this.dir, METADATA_FILE));
      if (raw) {
        let parsed: Metadata;
        try { parsed = JSON.parse(new TextDecoder().decode(raw)) as Metadata; } catch (e) {
          throw new InvalidArgumentError(`store metadata ${path.join(this.dir, METADATA_FILE)} is not valid JSON: ${(e as Error).message}`);
        }
        if (parsed === null || typeof parsed !== 'object' || parsed.format !== METADATA_FORMAT || typeof parsed.topics !== 'object' || parsed.topics === null) {
          throw new InvalidArgumentError(`store metadata format ${parsed?.format} is not supported (expected ${METADATA_FORMAT})`);
        }
        // A hand-edited (or damaged) file must not name a path or an absurd partition count.
        for (const [name, t] of Object.entries(parsed.topics)) {
          try { validateTopicName(name); } catch (e) {
            throw new InvalidArgumentError(`store metadata ${path.join(this.dir, METADATA_FILE)}: ${(e as Error).message}`);
          }
          if (t === null || typeof t !== 'object' || !Number.isInteger(t.partitions) || t.partitions < 1 || t.partitions > MAX_PARTITIONS) {
            throw new InvalidArgumentError(`store metadata ${path.join(this.dir, METADATA_FILE)}: topic '${name}' needs a partition count in [1, ${MAX_PARTITIONS}]`);
          }
          if (t.config === null || typeof t.config !== 'object') t.config = {};
        }
        this.meta = parsed;
      }
      // Partition directories without metadata (e.g. copied from a Kafka broker) join with the default config.
      let adopted = false;
      for (const name of st.list(this.dir)) {
        const m = /^(.+)-(\d+)$/.exec(name);
        if (!m || !st.isDirectory(path.join(this.dir, name))) continue;
        const topic = m[1]!;
        const id = Number(m[2]);
        // Only canonical numbers (t-01 is not partition 1's directory) below the partition limit.
        if (String(id) !== m[2] || id >= MAX_PARTITIONS) continue;
        try { validateTopicName(topic); } catch { continue; }
        const t = this.meta.topics[topic];
        if (!t) { this.meta.topics[topic] = { partitions: id + 1, config: {} }; adopted = true; }
        else if (t.partitions <= id) { t.partitions = id + 1; adopted = true; }
      }
      if (adopted && !this.readOnly) await this.saveMetadata();
      for (const [name, t] of Object.entries(this.meta.topics)) await this.openTopic(name, t);
      if (this.opts.tier) this.tier = await (await import('./tier/tiered_storage.js')).TieredStorage.attach(this, this.opts.tier);
      const every = this.opts.retentionCheckMs ?? 60_000;
      if (!this.readOnly && every > 0) {
        this.retentionTimer = setInterval(() => this.enforceRetention(), every);
        this.retentionTimer.unref?.();
      }
    } catch (err) {
      await this.tier?.close().catch(() => undefined);
      await this.closePartitions().catch(() => undefined);
      this.releaseLock();
      throw err;
    }
  }

  private acquireLock(): void {
    const lock = path.join(this.dir, LOCK_FILE);
    const takeover = `${lock}${LOCK_TAKEOVER_SUFFIX}`;
    const me = new TextEncoder().encode(String(process.pid));
    const holder = (p: string): { live: number | null; raw: string | null } => {
      const raw = this.storage.readFile(p);
      if (!raw) return { live: null, raw: null };
      const text = new TextDecoder().decode(raw);
      const pid = Number(text.trim());
      const live = Number.isInteger(pid) && pid > 0 && (pid === process.pid || isAlive(pid)) ? pid : null;
      return { live, raw: text };
    };
    for (let attempt = 0; attempt < 3; attempt++) {
      if (this.storage.createExclusive(lock, me)) { this.lockHeld = true; return; }
      const seen = holder(lock);
      if (seen.live !== null) throw new StoreLockedError(this.dir, seen.live);
      if (seen.raw === null) continue; // released meanwhile: try again
      // The holder is gone (crashed). Taking over must not race another
      // process doing the same (it could remove the lock the other just
      // took): takeovers are serialised by a second exclusive file, and the
      // stale lock is removed only if it still holds what was seen.
      if (!this.storage.createExclusive(takeover, me)) {
        const taker = holder(takeover);
        if (taker.live !== null) throw new StoreLockedError(this.dir, taker.live);
        this.storage.remove(takeover); // left by a process that died mid-takeover
        continue;
      }
      try {
        const now = holder(lock);
        if (now.live !== null) throw new StoreLockedError(this.dir, now.live);
        if (now.raw === seen.raw) this.storage.remove(lock);
        if (this.storage.createExclusive(lock, me)) { this.lockHeld = true; return; }
      } finally {
        this.storage.remove(takeover);
      }
    }
    throw new StoreLockedError(this.dir);
  }

  private releaseLock(): void {
    if (this.lockHeld) {
      this.storage.remove(path.join(this.dir, LOCK_FILE));
      this.lockHeld = false;
    }
  }

  private async saveMetadata(): Promise<void> {
    const data = new TextEncoder().encode(JSON.stringify(this.meta, null, 2) + '\n');
    await this.storage.writeFileAtomic(path.join(this.dir, METADATA_FILE), data);
  }

  private async openTopic(name: string, t: TopicMeta): Promise<Topic> {
    const config = resolveTopicConfig({ ...(this.opts.defaultTopicConfig ?? {}), ...t.config });
    const partitions: Partition[] = [];
    for (let id = 0; id < t.partitions; id++) {
      const dir = path.join(this.dir, `${name}-${id}`);
      if (this.readOnly && !this.storage.isDirectory(dir)) throw new InvalidArgumentError(`partition directory ${dir} is missing`);
      const p = await Partition.open({ k: this.k, storage: this.storage, dir, topic: name, id, config, readOnly: this.readOnly, onRecovery: this.opts.onRecovery });
      partitions.push(p);
      // Dedup topics: the window is rebuilt from the log tail before any append (docs/dedup.md).
      if (config.dedup && !this.readOnly) await installDedup(p, this.k, {}, { storage: this.storage, dir: p.dir, writable: true });
      for (const hook of this.partitionHooks) await hook(p);
    }
    const topic = new Topic(name, config, partitions);
    this.topics.set(name, topic);
    return topic;
  }

  private check(): void {
    if (this.closed) throw new ClosedError(`store ${this.dir}`);
  }

  /**
   * Creates a topic with `partitions` partitions (default 1).
   * opts.beforeOpen (internal: Store.restore) runs once the topic is
   * recorded and before its partitions open; restore moves their directories
   * into place there, so a directory in place is never adopted with the
   * default config.
   */
  async createTopic(name: string, opts: { partitions?: number; config?: Partial<TopicConfig>; beforeOpen?: () => Promise<void> } = {}): Promise<Topic> {
    this.check();
    if (this.readOnly) throw new ReadOnlyError(`store ${this.dir}`);
    validateTopicName(name);
    if (this.topics.has(name)) throw new TopicExistsError(name);
    const n = opts.partitions ?? 1;
    if (!Number.isInteger(n) || n < 1 || n > MAX_PARTITIONS) throw new InvalidArgumentError(`partitions must be an integer in [1, ${MAX_PARTITIONS}], got ${n}`);
    const config = opts.config ?? {};
    resolveTopicConfig({ ...(this.opts.defaultTopicConfig ?? {}), ...config });
    this.meta.topics[name] = { partitions: n, config };
    await this.saveMetadata();
    await opts.beforeOpen?.();
    return this.openTopic(name, this.meta.topics[name]!);
  }

  /** The topic, or TopicNotFoundError. */
  topic(name: string): Topic {
    this.check();
    const t = this.topics.get(name);
    if (!t) throw new TopicNotFoundError(name);
    return t;
  }

  hasTopic(name: string): boolean { return this.topics.has(name); }

  /** A partition of a topic. */
  partition(topic: string, id = 0): Partition { return this.topic(topic).partition(id); }

  listTopics(): string[] { return [...this.topics.keys()].sort(); }

  describeTopic(name: string): TopicDescription {
    const t = this.topic(name);
    return { name, partitions: t.partitions.length, config: t.config };
  }

  /**
   * Dedup counters and window fill of one partition (docs/dedup.md), or null
   * when the topic has no dedup config. On a read-only store the window is
   * built from the log on first call (counters then cover that process only).
   */
  async dedupStats(topic: string, id = 0): Promise<DedupStats | null> {
    const p = this.partition(topic, id);
    if (!p.config.dedup) return null;
    if (p.appendFilter instanceof UnavailableDedupFilter) throw p.appendFilter.error;
    const f = p.appendFilter instanceof DedupFilter ? p.appendFilter
      : await installDedup(p, this.k, {}, { storage: this.storage, dir: p.dir, writable: !this.readOnly });
    if (p.appendFilter instanceof UnavailableDedupFilter) throw p.appendFilter.error;
    return f ? f.stats() : null;
  }

  /** Deletes a topic and its data. */
  async deleteTopic(name: string): Promise<void> {
    this.check();
    if (this.readOnly) throw new ReadOnlyError(`store ${this.dir}`);
    const t = this.topic(name);
    // A KV namespace open on the topic is closed first: it would serve stale reads and stay the instance store.kv() returns.
    const kv = this.kvs.get(name);
    if (kv) {
      this.kvs.delete(name);
      const open = await kv.catch(() => null);
      if (open) await open.close();
    }
    for (const p of t.partitions) await p.close();
    this.topics.delete(name);
    delete this.meta.topics[name];
    await this.saveMetadata();
    for (const p of t.partitions) this.storage.removeDir(p.dir);
  }

  /** Registers a hook run on every partition already open and every one opened later. */
  async onPartition(hook: (p: Partition) => void | Promise<void>): Promise<void> {
    this.partitionHooks.push(hook);
    for (const t of this.topics.values()) for (const p of t.partitions) await hook(p);
  }

  /**
   * Opens KV namespace `name` (topic `__kv.<name>`, created when missing;
   * see docs/kv.md). Every call for a name returns the same instance; the
   * options of the first call apply. Closed with the store.
   */
  kv(name: string, opts: KvOptions = {}): Promise<KvStore> {
    this.check();
    return this.openKv(`__kv.${name}`, () => KvStore.open(this, name, opts));
  }

  /** The consumer offsets of this store: a KV namespace on topic `__consumer_offsets`. */
  async consumerOffsets(opts: KvOptions = {}): Promise<ConsumerOffsets> {
    this.check();
    const kv = await this.openKv(CONSUMER_OFFSETS_TOPIC, () => KvStore.open(this, CONSUMER_OFFSETS_NAMESPACE, opts, CONSUMER_OFFSETS_TOPIC));
    return new ConsumerOffsets(this, kv);
  }

  private openKv(topic: string, open: () => Promise<KvStore>): Promise<KvStore> {
    const have = this.kvs.get(topic);
    // A namespace the caller closed itself is opened again.
    if (have) {
      return have.then(async (kv) => {
        if (!kv.isClosed && !kv.isClosing) return kv;
        // One being closed is opened again once its close (flush, checkpoint) is done.
        await kv.close().catch(() => undefined);
        if (this.kvs.get(topic) === have) this.kvs.delete(topic);
        return this.openKv(topic, open);
      });
    }
    const p = open();
    this.kvs.set(topic, p);
    p.catch(() => { if (this.kvs.get(topic) === p) this.kvs.delete(topic); });
    return p;
  }

  private async closeKvs(): Promise<void> {
    const all = [...this.kvs.values()];
    this.kvs.clear();
    const errors: unknown[] = [];
    for (const p of all) {
      try { await (await p).close(); } catch (e) { errors.push(e); }
    }
    if (errors.length > 0) throw errors[0];
  }

  /** Sets the remote reader of one partition (tiered storage). */
  setRemote(topic: string, id: number, remote: RemoteLogReader | null): void {
    this.partition(topic, id).remote = remote;
  }

  /** Applies retention to every partition; returns segments deleted. */
  enforceRetention(now = Date.now()): number {
    if (this.closed || this.readOnly) return 0;
    let n = 0;
    for (const t of this.topics.values()) for (const p of t.partitions) n += p.enforceRetention(now);
    return n;
  }

  /** Flushes every partition. */
  async flush(): Promise<void> {
    this.check();
    const all: Promise<void>[] = [];
    for (const t of this.topics.values()) for (const p of t.partitions) all.push(p.flush());
    await Promise.all(all);
  }

  private async closePartitions(): Promise<void> {
    const errors: unknown[] = [];
    for (const t of this.topics.values()) {
      for (const p of t.partitions) {
        try { await p.close(); } catch (e) { errors.push(e); }
      }
    }
    if (errors.length > 0) throw errors[0];
  }

  /** Flushes and closes everything, leaving clean-shutdown markers; releases the lock. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.retentionTimer) clearInterval(this.retentionTimer);
    try {
      let kvError: unknown = null;
      await this.closeKvs().catch((e) => { kvError = e; });
      await this.tier?.close();
      await this.closePartitions();
      if (kvError) throw kvError;
    } finally {
      this.releaseLock();
    }
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
