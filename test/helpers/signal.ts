/**
 * The real CLI paused at a fault point (LAYERGC_TEST_PAUSE_AT), sent a signal there, then let go
 * on: how the tests put SIGINT and SIGTERM exactly between two steps of a purge.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BIN } from './synthetic.js';

export async function signalledAt(args: string[], at: string, sig: 'SIGINT' | 'SIGTERM', scratch: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const pause = fs.mkdtempSync(path.join(scratch, 'pause-'));
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, NO_COLOR: '1', LAYERGC_TEST_PAUSE_AT: at, LAYERGC_TEST_PAUSE_DIR: pause } });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const closed = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  while (!fs.existsSync(path.join(pause, 'paused'))) await new Promise((r) => setTimeout(r, 10));
  child.kill(sig);
  fs.writeFileSync(path.join(pause, 'resume'), '');
  return { code: await closed, stdout, stderr };
}

/** Spawn the CLI with a pause point; resolves with the child's pid once it is paused there. */
export function pausedCli(
  args: string[],
  step: string,
  dir: string,
): { pid: () => number; paused: Promise<void>; resume: () => void; done: Promise<{ code: number | null; stdout: string; stderr: string }> } {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, NO_COLOR: '1', LAYERGC_TEST_PAUSE_AT: step, LAYERGC_TEST_PAUSE_DIR: dir }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((res) => child.on('close', (code) => res({ code, stdout, stderr })));
  const paused = (async () => {
    for (let i = 0; !fs.existsSync(path.join(dir, 'paused')); i++) {
      if (i > 3000) throw new Error(`never reached ${step}: ${stderr}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  return { pid: () => child.pid!, paused, resume: () => fs.writeFileSync(path.join(dir, 'resume'), ''), done };
}
