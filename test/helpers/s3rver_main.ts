// Child-process entry of spawnS3rver(): node s3rver_main.js <dataDir> <bucket>.
// Prints "listening <port>" once the server accepts connections; exits on SIGTERM.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
type S3rverCtor = new (o: Record<string, unknown>) => { run(): Promise<{ port: number }>; close(): Promise<void> };
const S3rver = require('s3rver') as S3rverCtor;
const [dataDir, bucket] = process.argv.slice(2);
const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: dataDir, configureBuckets: [{ name: bucket, configs: [] }] });
const addr = await server.run();
process.stdout.write(`listening ${addr.port}\n`);
process.on('SIGTERM', () => process.exit(0));
void server;
