// sediment/replay: read archived partitions (docs/archive-format.md) over
// HTTP from browsers, Deno and Node. Nothing in this module's import graph
// uses Node built-ins (test/replay_import_graph.test.ts checks it).
//
//   import { replay } from 'sediment/replay';
//   for await (const rec of replay('https://bucket.example/prefix/1a2b3c4d/events-0/manifest.json',
//                                  { from: { timestamp: Date.parse('2025-11-20') } })) { ... }
//
// Usage, options, errors and the CORS headers a bucket must expose: docs/replay.md.

export { replay, openArchive, Archive, Replay,
  DEFAULT_CHUNK_BYTES, DEFAULT_FIRST_CHUNK_BYTES, DEFAULT_PREFETCH, DEFAULT_MAX_BATCH_BYTES, DEFAULT_MAX_INFLATED_BYTES } from './replay.js';
export type { ArchiveSource, ArchiveUrls, ArchiveOptions, ReplayFrom, ReplayReadOptions, ReplayOptions, ReplayStats } from './replay.js';
export { parseManifest, objectKey, manifestEndOffset, segmentIndexFor, MANIFEST_FORMAT, DEFAULT_MAX_MANIFEST_BYTES,
  DEFAULT_MAX_SEGMENTS, DEFAULT_MAX_INDEX_BYTES, MAX_LOG_OBJECT_BYTES, OBJECT_KINDS } from './manifest_reader.js';
export type { ArchiveManifest, ArchiveSegment, ArchiveObject, ManifestLimits, ObjectKind } from './manifest_reader.js';
export { RemoteObject, parseContentRange, DEFAULT_TIMEOUT_MS, DEFAULT_REQUEST_TIMEOUT_MS, DEFAULT_MAX_WHOLE_BODY_BYTES,
  DEFAULT_RETRIES } from './http_range.js';
export type { FetchLike, HttpOptions, HttpStats } from './http_range.js';
export { ManifestError, HttpError, ObjectNotFoundError, AccessDeniedError, NetworkError, TimeoutError, AbortedError,
  BadResponseError, RangeNotSupportedError, ObjectChangedError } from './errors.js';
export { SedimentError, CorruptionError, RecordTooLargeError, OffsetOutOfRangeError, InvalidArgumentError,
  UnsupportedCodecError, WasmMemoryError } from '../errors.js';
export type { StoredRecord, RecordHeader } from '../record.js';
export { decodeUtf8 } from '../record.js';
export { getKernels } from '../kernels.js';
