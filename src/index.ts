// sediment: public API (Node and Deno). Browser-safe pieces: 'sediment/kernels'.
export * from './errors.js';
export * from './record.js';
export { Kernels, WasmBuffer, getKernels, getKernelsSync, compileKernels } from './kernels.js';
export { Crc32c } from './crc32c.js';
export { XxHash64 } from './xxhash64.js';
export { DedupWindow, WINDOW_MAX_COUNT } from './dedup_window.js';
export * from './record_batch.js';
export * from './index_search.js';
