// Run by test/replay_deno.test.ts under Deno: imports sediment/replay from
// dist/ (no Node APIs, no npm), replays the archive at the URL given in
// Deno.args[0] once per query in Deno.args[1] (JSON), and prints the
// records as one line of JSON for the Node side to compare.
import { replay } from '../../dist/src/replay/index.js';

const hex = (b) => (b === null ? null : Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(''));
const plain = (r) => ({ offset: r.offset, timestamp: r.timestamp, key: hex(r.key), value: hex(r.value), headers: r.headers.map((h) => [h.key, hex(h.value)]) });

const url = Deno.args[0];
const queries = JSON.parse(Deno.args[1]);
const results = [];
for (const q of queries) {
  const records = [];
  let err = null;
  const r = replay(q.url ?? url, q.opts ?? {});
  try {
    for await (const rec of r) records.push(plain(rec));
  } catch (e) {
    err = { name: e.name, code: e.code, message: e.message };
  }
  results.push({ records, err, roundTrips: r.stats.roundTripsToFirstRecord });
}
console.log(JSON.stringify({ runtime: typeof Deno === 'object' ? `deno ${Deno.version.deno}` : 'other', results }));
