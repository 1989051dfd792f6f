// The browser entry points must not reach a Node built-in: walks the
// compiled import graph of dist/src/replay/index.js (sediment/replay) and
// dist/src/browser.js (the "browser" condition of "."), and fails on any
// specifier that is not a relative file (node:*, fs, bare packages) and on
// Node-only globals in the code reached.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const dist = path.join(root, 'dist', 'src');

/** Module specifiers of a compiled ES module (static, re-exports, side-effect and dynamic imports). */
export function specifiers(code: string): string[] {
  const out: string[] = [];
  const patterns = [
    /\bimport\s+[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]/g,
    /\bexport\s+[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]/g,
    /\bimport\s*['"]([^'"]+)['"]/g,
    /\bimport\s*\(\s*['"`]([^'"`]+)['"`]\s*\)/g,
  ];
  for (const re of patterns) for (const m of code.matchAll(re)) out.push(m[1]!);
  return out;
}

/** Removes comments (line comments only where // is not inside a URL-ish string start). */
function stripComments(js: string): string {
  return js.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/^\s*\/\/.*$/gm, '');
}

/** Strips comments and string contents so globals are looked for in code only. */
function codeOnly(js: string): string {
  return js
    .replace(/\/\*[\s\S]*?\*\//g, ' ')
    .replace(/(^|[^:\\])\/\/.*$/gm, '$1')
    .replace(/`(?:\\[\s\S]|[^`\\])*`/g, '``')
    .replace(/'(?:\\.|[^'\\\n])*'/g, "''")
    .replace(/"(?:\\.|[^"\\\n])*"/g, '""');
}

function walk(entry: string): { files: string[]; problems: string[] } {
  const seen = new Set<string>();
  const problems: string[] = [];
  const stack = [entry];
  while (stack.length > 0) {
    const file = stack.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const code = fs.readFileSync(file, 'utf8');
    for (const spec of specifiers(stripComments(code))) {
      const where = path.relative(root, file);
      if (!spec.startsWith('./') && !spec.startsWith('../')) { problems.push(`${where} imports '${spec}'`); continue; }
      const target = path.resolve(path.dirname(file), spec);
      if (!target.endsWith('.js')) { problems.push(`${where} imports '${spec}' without a .js extension (browsers need it)`); continue; }
      if (!fs.existsSync(target)) { problems.push(`${where} imports missing '${spec}'`); continue; }
      stack.push(target);
    }
    const body = codeOnly(code);
    for (const g of [/\bprocess\s*\./, /\bBuffer\s*\./, /\brequire\s*\(/, /\b__dirname\b/, /\b__filename\b/, /\bsetImmediate\s*\(/]) {
      if (g.test(body)) problems.push(`${path.relative(root, file)} uses the Node-only global ${g.source}`);
    }
  }
  return { files: [...seen].map((f) => path.relative(dist, f)).sort(), problems };
}

test('the import-graph walker sees every kind of import (self-check)', () => {
  const code = `import a from './a.js';\nimport { b } from "../b.js";\nexport * from './c.js';\nexport { d } from './d.js';\nimport './e.js';\nconst f = await import('./f.js');\nimport fs from 'node:fs';`;
  assert.deepEqual(specifiers(code).sort(), ['../b.js', './a.js', './c.js', './d.js', './e.js', './f.js', 'node:fs'].sort());
  assert.equal(codeOnly("const s = 'process.env'; // Buffer.from\n"), "const s = ''; \n");
});

for (const entry of ['replay/index.js', 'browser.js']) {
  test(`dist/src/${entry} reaches no Node built-in`, () => {
    const file = path.join(dist, entry);
    assert.ok(fs.existsSync(file), `${file} is built`);
    const { files, problems } = walk(file);
    assert.deepEqual(problems, []);
    // The walk really covered the replay and the kernels.
    for (const f of ['replay/replay.js', 'replay/http_range.js', 'replay/segment_reader.js', 'replay/manifest_reader.js', 'kernels.js', 'record_batch.js']) {
      assert.ok(files.includes(f), `${f} is in the graph of ${entry}: ${files.join(', ')}`);
    }
    for (const nodeOnly of ['storage.js', 'store.js', 'partition.js', 'log_segment.js']) assert.ok(!files.includes(nodeOnly), `${nodeOnly} is not reachable`);
  });
}

test('a Node-only module is caught (the check can fail)', () => {
  const { problems } = walk(path.join(dist, 'store.js'));
  assert.ok(problems.some((p) => p.includes("'node:path'")), problems.join('\n'));
});

test('package.json exports sediment/replay and a browser-safe "."', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { exports: Record<string, Record<string, string>>; files: string[] };
  assert.equal(pkg.exports['./replay']!.default, './dist/src/replay/index.js');
  assert.equal(pkg.exports['./replay']!.types, './dist/src/replay/index.d.ts');
  assert.equal(pkg.exports['.']!.browser, './dist/src/browser.js');
  for (const p of [pkg.exports['./replay']!.default!, pkg.exports['./replay']!.types!, pkg.exports['.']!.browser!]) {
    assert.ok(fs.existsSync(path.join(root, p)), `${p} exists`);
  }
  assert.ok(pkg.files.includes('web'), 'the page ships with the package');
});
