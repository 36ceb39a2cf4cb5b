// Test-only crash and pause points. With LAYERGC_TEST_CRASH_AT=<step>[:<n>] set, the process kills
// itself with SIGKILL the n-th time (default 1st) it reaches <step>: the crash-and-resume tests use
// this to stop a purge between any two of an item's steps. With LAYERGC_TEST_PAUSE_AT=<step>[:<n>]
// and LAYERGC_TEST_PAUSE_DIR=<dir>, it writes <dir>/paused there and waits until <dir>/resume
// exists: a race test makes a bind mount or swaps a dir for a symlink in that window. Unset, both
// do nothing.
import { existsSync, writeFileSync } from 'node:fs';

const parse = (spec: string | undefined): [string | undefined, number] => (spec ? [spec.split(':')[0], Number(spec.split(':')[1] ?? '1')] : [undefined, 0]);
const [crashStep, crashNth] = parse(process.env.LAYERGC_TEST_CRASH_AT);
const [pauseStep, pauseNth] = parse(process.env.LAYERGC_TEST_PAUSE_AT);
const pauseDir = process.env.LAYERGC_TEST_PAUSE_DIR;
let crashHits = 0;
let pauseHits = 0;

const PAUSE_LIMIT_MS = 120_000;

export function faultPoint(step: string): void {
  if (step === crashStep && ++crashHits === crashNth) process.kill(process.pid, 'SIGKILL');
  if (step === pauseStep && pauseDir && ++pauseHits === pauseNth) {
    writeFileSync(`${pauseDir}/paused`, step);
    const sleeper = new Int32Array(new SharedArrayBuffer(4));
    const until = Date.now() + PAUSE_LIMIT_MS;
    while (!existsSync(`${pauseDir}/resume`) && Date.now() < until) Atomics.wait(sleeper, 0, 0, 10);
  }
}

// Test-only read faults. With LAYERGC_TEST_READ_ERROR=<CODE>:<op>:<path suffix>[;...] set (op one
// of lstat, open, fstat, read, readdir, readdir-types (a listing with dirent types only) or *), that read of a path ending in the suffix fails with
// errno CODE: the tests prove EIO and EACCES, which root cannot otherwise provoke on a tmpfs,
// end in a finding or a one-line error. Unset, it does nothing.
const readFaults = (process.env.LAYERGC_TEST_READ_ERROR ?? '')
  .split(';')
  .filter(Boolean)
  .map((s) => {
    const [code, op, ...rest] = s.split(':');
    return { code, op, suffix: rest.join(':') };
  });

export function injectedReadError(path: string, op: string): void {
  if (readFaults.length === 0) return;
  for (const f of readFaults) {
    if ((f.op === '*' || f.op === op) && path.endsWith(f.suffix)) {
      throw Object.assign(new Error(`${f.code}: injected ${op} failure, ${op} '${path}'`), { code: f.code, errno: -1, syscall: op, path });
    }
  }
}

// Test-only write faults, the same way: LAYERGC_TEST_WRITE_ERROR=<CODE>:<op>:<path part>[:<n>][;...]
// (op one of open, write, link, rename, unlink, rmdir, mkdir or *) fails the n-th (default every)
// such write to a path containing the part with errno CODE, as a full (ENOSPC), read-only (EROFS)
// or forbidding (EACCES) filesystem would. A write after its file was created (writeFile) fails
// after the create, leaving the empty file a real full disk leaves. Applied by fs.ts. Unset, nothing.
const writeFaults = (process.env.LAYERGC_TEST_WRITE_ERROR ?? '')
  .split(';')
  .filter(Boolean)
  .map((s) => {
    const [code, op, ...rest] = s.split(':');
    const nth = rest.length > 1 && /^\d+$/.test(rest[rest.length - 1]) ? Number(rest.pop()) : 0;
    return { code, op, part: rest.join(':'), nth, hits: 0 };
  });
export const writeFaultsOn = writeFaults.length > 0;

export function injectedWriteError(path: unknown, op: string): void {
  const p = Buffer.isBuffer(path) ? path.toString('utf8') : String(path);
  for (const f of writeFaults) {
    if ((f.op === '*' || f.op === op) && p.includes(f.part) && (++f.hits === f.nth || f.nth === 0)) {
      throw Object.assign(new Error(`${f.code}: injected ${op} failure, ${op} '${p}'`), { code: f.code, errno: -1, syscall: op, path: p });
    }
  }
}
