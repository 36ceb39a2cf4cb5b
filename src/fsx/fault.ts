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
