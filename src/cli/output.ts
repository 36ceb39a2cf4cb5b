// Where the CLI writes, and in what colour. Nothing below src/cli prints.
import { Chalk, type ChalkInstance } from 'chalk';

export interface Output {
  out: (s: string) => void;
  err: (s: string) => void;
  /** colours for stdout */
  c: ChalkInstance;
  /** colours for stderr: each stream decides for itself (a pipe on one, a terminal on the other) */
  ce: ChalkInstance;
  /** stdout is a terminal */
  isTTY: boolean;
  /** stderr is a terminal: the progress line goes there */
  errTTY: boolean;
}

/**
 * Colour for one stream: --no-color and NO_COLOR win, then FORCE_COLOR (0 or false: off, anything
 * else: on), then TERM=dumb (off), then whether the stream is a terminal.
 */
export function colourFor(stream: { isTTY?: boolean }, opts: { color?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  if (opts.color === false || (env.NO_COLOR ?? '') !== '') return false;
  if (env.FORCE_COLOR !== undefined) return !/^(0|false)$/i.test(env.FORCE_COLOR);
  if (env.TERM === 'dumb') return false;
  return !!stream.isTTY;
}

/** A stream whose reader went away (`layergc scan | head`) is written no more; the run ends as it would. */
function writer(stream: NodeJS.WriteStream): (s: string) => void {
  let closed = false;
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') closed = true;
    else throw err;
  });
  return (s) => {
    if (!closed) stream.write(s.endsWith('\n') ? s : `${s}\n`);
  };
}

let streams: { out: (s: string) => void; err: (s: string) => void } | undefined;

export function makeOutput(opts: { color?: boolean }): Output {
  streams ??= { out: writer(process.stdout), err: writer(process.stderr) };
  return {
    ...streams,
    c: new Chalk({ level: colourFor(process.stdout, opts) ? 1 : 0 }),
    ce: new Chalk({ level: colourFor(process.stderr, opts) ? 1 : 0 }),
    isTTY: !!process.stdout.isTTY,
    errTTY: !!process.stderr.isTTY,
  };
}

export { human } from '../units.js';
