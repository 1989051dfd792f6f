// Entry of the `sediment` CLI. Each command group is a module under
// src/cli/ exporting `register(program, ctx)`; add a group by importing it
// and listing it in GROUPS.
//
// Exit codes (stable, for scripts):
//   0 success; 1 usage or argument error; 2 corruption found (verify, dump);
//   3 not found (topic, partition, key, file); 4 store locked by another
//   writer; 5 any other failure.

import { Command, CommanderError } from 'commander';
import { SedimentError } from '../errors.js';
import { EXIT, CliContext } from './context.js';

type Group = { register(program: Command, ctx: CliContext): void };
const GROUPS: (() => Promise<Group>)[] = [
  () => import('./log_commands.js'),
  () => import('./serve_commands.js'),
  () => import('./kv_commands.js'),
  () => import('./tier_commands.js'),
];

export function exitCodeFor(err: unknown): number {
  if (err instanceof SedimentError) {
    switch (err.code) {
      case 'ERR_CORRUPTION': return EXIT.CORRUPTION;
      case 'ERR_TOPIC_NOT_FOUND': case 'ERR_NOT_FOUND': return EXIT.NOT_FOUND;
      case 'ERR_STORE_LOCKED': return EXIT.LOCKED;
      case 'ERR_INVALID_ARGUMENT': case 'ERR_OFFSET_OUT_OF_RANGE': return EXIT.USAGE;
      default: return EXIT.FAILURE;
    }
  }
  return EXIT.FAILURE;
}

export async function main(argv: string[], io: Partial<CliContext> = {}): Promise<number> {
  const ctx: CliContext = {
    stdout: io.stdout ?? process.stdout,
    stderr: io.stderr ?? process.stderr,
    stdin: io.stdin ?? process.stdin,
    isTTY: io.isTTY ?? Boolean(process.stderr.isTTY),
    exitCode: 0,
  };
  const program = new Command('sediment')
    .description('sediment: Kafka-compatible partitioned logs, KV and tiered storage, embedded')
    .exitOverride()
    .configureOutput({ writeOut: (s) => ctx.stdout.write(s), writeErr: (s) => ctx.stderr.write(s) });
  for (const load of GROUPS) (await load()).register(program, ctx);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return 0;
      return err.exitCode === 0 ? 0 : EXIT.USAGE;
    }
    ctx.stderr.write(`sediment: ${(err as Error)?.message ?? String(err)}\n`);
    return exitCodeFor(err);
  }
  return ctx.exitCode;
}
