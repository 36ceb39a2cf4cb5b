/**
 * The real CLI under a time limit, with its peak memory measured: a hostile input must end in a
 * finding or a one-line error, never a hang or a blow-up. Used by the hostile-input tests and the
 * fuzzer (test/fuzz/).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { BIN, REPO } from './synthetic.js';

const HOOK = path.join(REPO, 'test/helpers/rss-hook.mjs');

export interface BoundedResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** peak RSS of the child in MiB (NaN when it died before reporting) */
  peakMiB: number;
  ms: number;
  json?: any;
}

let seq = 0;

export function runBounded(args: string[], opts: { timeoutMs?: number; env?: Record<string, string> } = {}): Promise<BoundedResult> {
  const rssFile = path.join(tmpdir(), `layergc-rss-${process.pid}-${++seq}`);
  const env: Record<string, string> = { ...(process.env as Record<string, string>), NO_COLOR: '1', LAYERGC_RSS_FILE: rssFile, ...(opts.env ?? {}) };
  delete env.LAYERGC_TEST_CRASH_AT;
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', HOOK, BIN, ...args], { env, cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      let peakMiB = NaN;
      try {
        peakMiB = Number(fs.readFileSync(rssFile, 'utf8')) / 1024;
        fs.rmSync(rssFile);
      } catch { /* no report: killed */ }
      const res: BoundedResult = { code, signal, stdout, stderr, timedOut, peakMiB, ms: Date.now() - started };
      if (args.includes('--json') && stdout.trim()) {
        try { res.json = JSON.parse(stdout); } catch { /* left for the caller to report */ }
      }
      resolve(res);
    });
  });
}

/** What makes a run a failure of layergc itself, whatever the input: '' when it behaved. */
export function misbehaviour(r: BoundedResult, limits: { peakMiB: number }): string {
  if (r.timedOut) return `hang: killed after ${r.ms} ms`;
  if (r.signal) return `killed by ${r.signal}`;
  if (/internal error/i.test(r.stderr)) return `internal error: ${r.stderr.slice(0, 2000)}`;
  if (r.code === null || ![0, 1, 2, 3, 4, 5].includes(r.code)) return `exit code ${r.code}`;
  if (r.code === 2 && r.stderr.trim().split('\n').length > 3) return `exit 2 with more than a one-line error: ${r.stderr.slice(0, 2000)}`;
  if (r.peakMiB > limits.peakMiB) return `memory: peak RSS ${r.peakMiB.toFixed(0)} MiB > ${limits.peakMiB} MiB`;
  return '';
}
