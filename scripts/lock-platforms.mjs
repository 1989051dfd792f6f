// Adds package-lock entries for optional platform packages (other OSes and
// CPUs) that the npm registry reachable from our machines does not serve, so
// that `npm ci` accepts the lock. npm never installs an optional package whose
// os/cpu does not match, so these entries are only read, never fetched.
//
// Why: the registry mirror here carries, for example, only the linux-x64
// build of opendal 0.49.2; `npm install` then silently leaves the other
// platforms out of the lock and `npm ci` rejects it ("Missing: ... from lock
// file"). Run `node scripts/lock-platforms.mjs` after any `npm install`.
import { readFileSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const lockPath = join(dirname(fileURLToPath(import.meta.url)), '..', 'package-lock.json');
const lock = JSON.parse(readFileSync(lockPath, 'utf8'));
const pk = lock.packages;
const PLATFORMS = {
  'darwin-arm64': [['darwin'], ['arm64']], 'darwin-x64': [['darwin'], ['x64']],
  'linux-arm64-glibc': [['linux'], ['arm64']], 'linux-arm64-gnu': [['linux'], ['arm64']], 'linux-arm64-musl': [['linux'], ['arm64']],
  'linux-arm': [['linux'], ['arm']], 'win32-arm64': [['win32'], ['arm64']], 'win32-x64': [['win32'], ['x64']],
  'win32-arm64-msvc': [['win32'], ['arm64']], 'win32-x64-msvc': [['win32'], ['x64']],
};
const suffixes = Object.keys(PLATFORMS).sort((a, b) => b.length - a.length);
const added = [];
for (const meta of Object.values(pk)) {
  for (const [name, spec] of Object.entries(meta.optionalDependencies ?? {})) {
    const key = `node_modules/${name}`;
    if (pk[key]) continue;
    const suffix = suffixes.find((s) => name.endsWith(s));
    if (!suffix) continue;
    const [os, cpu] = PLATFORMS[suffix];
    pk[key] = { version: String(spec).replace(/^[\^~=]/, ''), license: meta.license ?? 'UNKNOWN', optional: true, os, cpu, ...(meta.dev ? { dev: true } : {}) };
    added.push(`${name}@${pk[key].version}`);
  }
}
lock.packages = Object.fromEntries(Object.entries(pk).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : a > b ? 1 : 0)));
writeFileSync(lockPath, JSON.stringify(lock, null, 2) + '\n');
console.log(added.length ? `lock-platforms: added ${added.join(' ')}` : 'lock-platforms: nothing to add');
