#!/usr/bin/env node
// The `sediment` command. Built code lives in dist/ (npm ci builds it).
import { main } from '../dist/src/cli/main.js';

main(process.argv).then((code) => { process.exitCode = code; }, (err) => {
  process.stderr.write(`sediment: ${err?.message ?? err}\n`);
  process.exitCode = 1;
});
