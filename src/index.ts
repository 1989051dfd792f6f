// sediment: public API (Node and Deno). Browser-safe pieces: 'sediment/kernels'.
export * from './errors.js';
export * from './record.js';
export { Kernels, WasmBuffer, getKernels, getKernelsSync, compileKernels } from './kernels.js';
export { Crc32c } from './crc32c.js';
export { XxHash64 } from './xxhash64.js';
export { DedupWindow, WINDOW_MAX_COUNT } from './dedup_window.js';
export { DedupFilter, UnavailableDedupFilter, DedupUnavailableError, installDedup, DEDUP_CHUNK_RECORDS, DEDUP_CHUNK_BYTES, DEDUP_STATS_FILE } from './dedup.js';
export type { DedupStats, DedupFilterOptions, DedupLogSource, DedupStatsStore } from './dedup.js';
export * from './record_batch.js';
export * from './index_search.js';
export { Store, Topic } from './store.js';
export type { StoreOptions, TopicDescription } from './store.js';
export { Partition } from './partition.js';
export { MAX_APPEND_BATCHES_BYTES } from './batch_ingest.js';
export type { AppendResult, BatchesAppendResult, ReadFrom, ReadOptions, ViewReadOptions, AppendFilter, RemoteLogReader, PartitionStats } from './partition.js';
export { LogSegment, segmentFileName, parseSegmentFileName } from './log_segment.js';
export { OffsetIndex } from './offset_index.js';
export { TimeIndex } from './time_index.js';
export { DEFAULT_TOPIC_CONFIG, resolveTopicConfig, validateTopicName } from './topic_config.js';
export type { TopicConfig, DedupConfig } from './topic_config.js';
export { NodeStorage, defaultStorage } from './storage.js';
export type { Storage, FileHandle } from './storage.js';
export * from './kv/index.js';
// Tiered storage (docs/tiering.md): types only here, so importing sediment does
// not load OpenDAL's native module; Store.open({ tier }) loads it when used.
export type { TierConfig } from './tier/tier_config.js';
export type { TieredStorage, TierStatus, PresignedPartition } from './tier/tiered_storage.js';
export type { PartitionTierStatus, ArchiverState } from './tier/archiver.js';
export type { RestoreOptions, RestoreProgress } from './tier/restore.js';
export type { Manifest, ManifestSegment, ManifestObject, Catalog } from './tier/manifest.js';
