// Log commands: topics, produce, consume, dump, verify. (Being written.)
import { Command } from 'commander';
import { CliContext } from './context.js';

export function register(_program: Command, _ctx: CliContext): void {
  // Filled in by the CLI work of issue 3.
}
