// Runs every compiled test (dist/test/**/*.test.js) with node's test runner.
// Node 20's `--test` takes no globs, and a directory argument would also run
// helpers and fixtures, so the files are listed explicitly.
// Usage: node scripts/test.mjs [substring ...]  (only files whose path contains one)
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join, dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'dist', 'test');
const filters = process.argv.slice(2);

function walk(d, out) {
  if (!existsSync(d)) return out;
  for (const e of readdirSync(d)) {
    const p = join(d, e);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (e.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const files = walk(dir, []).filter((f) => filters.length === 0 || filters.some((s) => relative(root, f).includes(s))).sort();
if (files.length === 0) {
  console.error('test: no test files found under dist/test (did the build run?)');
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...files], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
