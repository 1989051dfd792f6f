// sediment for browsers (the "browser" condition of the package's "."
// export): everything that runs without Node built-ins. The log, KV and
// tiering engines need a file system and live in './index.js' (Node, Deno);
// in a browser you read archived partitions with replay (also available as
// 'sediment/replay'). test/replay_import_graph.test.ts checks that nothing
// reachable from here imports a Node built-in.
export * from './errors.js';
export * from './record.js';
export { Kernels, WasmBuffer, getKernels, getKernelsSync, compileKernels } from './kernels.js';
export { Crc32c } from './crc32c.js';
export { XxHash64 } from './xxhash64.js';
export { DedupWindow, WINDOW_MAX_COUNT } from './dedup_window.js';
export * from './record_batch.js';
export * from './index_search.js';
export * from './replay/index.js';
