// The sediment WebAssembly module: every export is a kernel over raw
// pointers into this module's memory. The TypeScript side (src/kernels.ts)
// is the only caller; docs/wasm-boundary.md documents the contract.
export { alloc, free } from './heap';
export { crc32c, crc32cTable } from './crc32c';
export {
  batchLayout, batchFinish, batchScan, scanStopReason, scanStopPosition,
  recordsDecode, decodeHeaderCount, recordsCheck,
} from './record_batch';
export { offsetIndexLookup, offsetIndexLookupMany } from './offset_index';
export { timeIndexLookup, timeIndexLookupMany } from './time_index';
export { xxh64Into, xxh64Many, xxh64Fixed } from './xxhash64';
export { windowBytes, windowInit, windowExpire, windowCheckInsert, windowSize, dedupBatch, dedupLayout, dedupSkipped } from './dedup_window';
