// A real S3 HTTP server for tests and benchmarks: s3rver on 127.0.0.1 with
// an OS-assigned port, reached through OpenDAL's s3 service (path-style
// addressing, S3RVER's default credentials). stop() drops every connection
// and closes the listener (an outage); start() brings the server back on the
// same port with the same data. close() stops it and removes its data.
// spawnS3rver() runs the server in a child process instead, so its CPU work
// does not share the event loop of the code under measurement (benchmarks).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import type { Server } from 'node:http';
import type { TierConfig } from '../../src/tier/tier_config.js';

const require = createRequire(import.meta.url);

export interface S3Server {
  readonly port: number;
  readonly endpoint: string;
  readonly bucket: string;
  /** Where the server keeps objects. */
  readonly dataDir: string;
  /** A tier config reaching this server through OpenDAL's s3 service. */
  tier(prefix?: string, extra?: Partial<TierConfig>): TierConfig;
  /** True while the server listens. */
  readonly running: boolean;
  /** Drops every connection and stops listening. */
  stop(): Promise<void>;
  /** Listens again on the same port, with the same data. */
  start(): Promise<void>;
  /** Stops and removes the data directory. */
  close(): Promise<void>;
}

export function s3TierConfig(endpoint: string, bucket: string, prefix = '', extra: Partial<TierConfig> = {}): TierConfig {
  return {
    service: 's3',
    options: {
      bucket,
      endpoint,
      region: 'us-east-1',
      access_key_id: 'S3RVER',
      secret_access_key: 'S3RVER',
      enable_virtual_host_style: 'false',
    },
    prefix,
    ...extra,
  };
}

interface S3rverInstance { run(): Promise<{ port: number }>; close(): Promise<void>; httpServer?: Server }
type S3rverCtor = new (o: Record<string, unknown>) => S3rverInstance;

/** Starts s3rver in this process. */
export async function startS3rver(bucket = 'sediment-test'): Promise<S3Server> {
  const S3rver = require('s3rver') as S3rverCtor;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-s3rver-'));
  let port = 0;
  let inst: S3rverInstance | null = null;
  const open = async () => {
    inst = new S3rver({ address: '127.0.0.1', port, silent: true, directory: dataDir, configureBuckets: [{ name: bucket, configs: [] }] });
    const addr = await inst.run();
    port = addr.port;
  };
  await open();
  const server: S3Server = {
    get port() { return port; },
    get endpoint() { return `http://127.0.0.1:${port}`; },
    bucket,
    dataDir,
    get running() { return inst !== null; },
    tier(prefix = '', extra = {}) { return s3TierConfig(`http://127.0.0.1:${port}`, bucket, prefix, extra); },
    async stop() {
      const i = inst;
      if (!i) return;
      inst = null;
      i.httpServer?.closeAllConnections();
      await i.close();
    },
    async start() {
      if (inst) return;
      await open();
    },
    async close() {
      await server.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return server;
}

/** Starts s3rver in a child process (benchmarks). Resolves once it listens. */
export async function spawnS3rver(bucket = 'sediment-bench'): Promise<S3Server & { child: ChildProcess }> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-s3rver-'));
  const main = fileURLToPath(new URL('./s3rver_main.js', import.meta.url));
  const child = spawn(process.execPath, [main, dataDir, bucket], { stdio: ['ignore', 'pipe', 'inherit'], cwd: process.cwd() });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error('s3rver child did not start within 20 s')), 20_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening (\d+)/.exec(out);
      if (m) { clearTimeout(t); resolve(Number(m[1])); }
    });
    child.once('exit', (code) => { clearTimeout(t); reject(new Error(`s3rver child exited with ${code}`)); });
  });
  let running = true;
  const stop = async () => {
    if (!running) return;
    running = false;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => { child.kill('SIGKILL'); }, 5000);
      child.once('exit', () => { clearTimeout(t); resolve(); });
      child.kill('SIGTERM');
    });
  };
  return {
    child,
    port,
    endpoint: `http://127.0.0.1:${port}`,
    bucket,
    dataDir,
    get running() { return running; },
    tier(prefix = '', extra = {}) { return s3TierConfig(`http://127.0.0.1:${port}`, bucket, prefix, extra); },
    stop,
    async start() { throw new Error('a spawned s3rver cannot be restarted; spawn a new one'); },
    async close() { await stop(); fs.rmSync(dataDir, { recursive: true, force: true }); },
  };
}
