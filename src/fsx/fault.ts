// Test-only crash points. With LAYERGC_TEST_CRASH_AT=<step>[:<n>] set, the process kills itself
// with SIGKILL the n-th time (default 1st) it reaches <step>: the crash-and-resume tests use this
// to stop a purge between any two of an item's steps. Unset, it does nothing.
const spec = process.env.LAYERGC_TEST_CRASH_AT;
const [crashStep, crashNth] = spec ? [spec.split(':')[0], Number(spec.split(':')[1] ?? '1')] : [undefined, 0];
let hits = 0;

export function faultPoint(step: string): void {
  if (crashStep === undefined || step !== crashStep) return;
  if (++hits === crashNth) process.kill(process.pid, 'SIGKILL');
}
