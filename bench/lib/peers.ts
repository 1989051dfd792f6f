// Loaders for peer packages without TypeScript declarations (CommonJS,
// loaded through createRequire and typed here by the parts the benchmarks use).

import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export interface Sse4Crc32 {
  /** CRC-32C with SSE4.2 crc32 instructions (table fallback without them). */
  calculate(input: Uint8Array | string, initial?: number): number;
  hardware_support?: boolean;
}

export function loadSse4Crc32(): Sse4Crc32 {
  return require('sse4_crc32') as Sse4Crc32;
}

export interface NodeRsCrc32 {
  crc32c(input: Uint8Array | string, initialState?: number | null): number;
}

export function loadNodeRsCrc32(): NodeRsCrc32 {
  return require('@node-rs/crc32') as NodeRsCrc32;
}

export interface XxHashWasm {
  h64Raw(input: Uint8Array, seed?: bigint): bigint;
}

export async function loadXxHashWasm(): Promise<XxHashWasm> {
  const mod = require('xxhash-wasm') as (() => Promise<XxHashWasm>) | { default: () => Promise<XxHashWasm> };
  const init = typeof mod === 'function' ? mod : mod.default;
  return init();
}

/** The parts of kafkajs's protocol layer used as the framing peer (kafkajs 2.x, src/protocol). */
export interface KafkaJsCodec {
  /** Record v0 encoder: one record as an Encoder. */
  Record(r: { offsetDelta: number; timestampDelta: number; key: Buffer | null; value: Buffer | null; headers?: Record<string, Buffer> }): unknown;
  /** RecordBatch v0 (magic 2) encoder. */
  RecordBatch(opts: {
    records: unknown[]; firstTimestamp: number; maxTimestamp: number; partitionLeaderEpoch: number;
    lastOffsetDelta: number; producerEpoch: number; firstSequence: number;
  }): Promise<{ buffer: Buffer }>;
  /** RecordBatch v0 decoder over a kafkajs Decoder. */
  RecordBatchDecoder(decoder: unknown): Promise<{ records: KafkaJsRecord[] }>;
  /** kafkajs Decoder constructor. */
  Decoder: new (buffer: Buffer) => unknown;
}

export interface KafkaJsRecord {
  offset: string;
  timestamp: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, Buffer | Buffer[]>;
}

export function loadKafkaJsCodec(): KafkaJsCodec {
  const base = 'kafkajs/src/protocol';
  return {
    Record: require(`${base}/recordBatch/record/v0`) as KafkaJsCodec['Record'],
    RecordBatch: (require(`${base}/recordBatch/v0`) as { RecordBatch: KafkaJsCodec['RecordBatch'] }).RecordBatch,
    RecordBatchDecoder: require(`${base}/recordBatch/v0/decoder`) as KafkaJsCodec['RecordBatchDecoder'],
    Decoder: require(`${base}/decoder`) as KafkaJsCodec['Decoder'],
  };
}
