// Where the CLI writes, and in what colour. Nothing below src/cli prints.
import { Chalk, type ChalkInstance } from 'chalk';

export interface Output {
  out: (s: string) => void;
  err: (s: string) => void;
  c: ChalkInstance;
  isTTY: boolean;
}

export function makeOutput(opts: { color?: boolean }): Output {
  const isTTY = !!process.stdout.isTTY;
  const colour = opts.color !== false && isTTY && !process.env.NO_COLOR;
  return {
    out: (s) => process.stdout.write(s.endsWith('\n') ? s : `${s}\n`),
    err: (s) => process.stderr.write(s.endsWith('\n') ? s : `${s}\n`),
    c: new Chalk({ level: colour ? 1 : 0 }),
    isTTY,
  };
}

const UNITS = ['B', 'kB', 'MB', 'GB', 'TB'];

/** Bytes in decimal units, as `docker system df` prints them. */
export function human(bytes: number): string {
  let v = bytes;
  let i = 0;
  while (v >= 1000 && i < UNITS.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${UNITS[i]}`;
}
