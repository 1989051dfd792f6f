// Public API of the KV store (docs/kv.md).
export { KvStore, KV_TOPIC_PREFIX, DEFAULT_KV_BATCH_BYTES, DEFAULT_KV_CACHE_BYTES, DEFAULT_KV_SEGMENT_BYTES, DEFAULT_KV_CHECKPOINT_BYTES,
  DEFAULT_KV_MIN_DIRTY_RATIO, validateKvName } from './kv_store.js';
export type { KvOptions, KvOp, KvEntry, RangeOptions, UpdateResult, KvStats, KvLoadReport } from './kv_store.js';
export type { CompactionStats } from './kv_compactor.js';
export { MAX_KEY_BYTES, MAX_VALUE_BYTES } from './kv_keys.js';
export type { KvBytes } from './kv_keys.js';
export { KeyDisabledError, KeyNotFoundError } from './kv_errors.js';
export { ConsumerOffsets, CONSUMER_OFFSETS_TOPIC, MAX_GROUP_BYTES, MAX_METADATA_BYTES } from './consumer_offsets.js';
export type { CommittedOffset, OffsetLag, OffsetCommit } from './consumer_offsets.js';
