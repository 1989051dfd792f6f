// What every CLI command gets: its streams (tests pass their own) and the
// exit code to return.

export const EXIT = {
  OK: 0,
  USAGE: 1,
  CORRUPTION: 2,
  NOT_FOUND: 3,
  LOCKED: 4,
  FAILURE: 5,
} as const;

export interface Writable { write(s: string | Uint8Array): unknown }

export interface CliContext {
  stdout: Writable;
  stderr: Writable;
  stdin: NodeJS.ReadableStream;
  /** Progress output goes to stderr only when it is a terminal. */
  isTTY: boolean;
  /** Set by commands that finish with a non-zero status without throwing. */
  exitCode: number;
}

/** A progress line on stderr, redrawn in place on a terminal; silent otherwise. */
export function progress(ctx: CliContext, label: string): { update(done: number, total: number, extra?: string): void; done(): void } {
  let last = 0;
  return {
    update(done, total, extra = '') {
      if (!ctx.isTTY) return;
      const now = Date.now();
      if (now - last < 100 && done < total) return;
      last = now;
      const pct = total > 0 ? Math.floor((done / total) * 100) : 100;
      const width = 24;
      const filled = Math.round((pct / 100) * width);
      ctx.stderr.write(`\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${pct}% ${extra}\x1b[K`);
    },
    done() { if (ctx.isTTY) ctx.stderr.write('\n'); },
  };
}
