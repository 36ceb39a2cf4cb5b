/**
 * The real CLI under a time limit, with its peak memory measured: a hostile input must end in a
 * finding or a one-line error, never a hang or a blow-up. Used by the hostile-input tests and the
 * fuzzer (test/fuzz/).
 */
import { spawn, spawnSync } from 'node:child_process';
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
      } catch {
        /* no report: killed */
      }
      const res: BoundedResult = { code, signal, stdout, stderr, timedOut, peakMiB, ms: Date.now() - started };
      if (args.includes('--json') && stdout.trim()) {
        try {
          res.json = JSON.parse(stdout);
        } catch {
          /* left for the caller to report */
        }
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

/**
 * The CLI kept loaded in one process (test/fuzz/cli-server.mjs), for long fuzz runs: the same
 * commands, minus Node's start-up per run. A run that does not answer in time is a hang: the
 * server is killed and a fresh one started. Peak RSS is the server's, so a server whose peak
 * crossed the limit is replaced, and only the run that crossed it is blamed.
 */
export class CliServer {
  private child: ReturnType<typeof spawn> | null = null;
  private lines: string[] = [];
  private waiting: ((line: string | null) => void) | null = null;
  private buf = '';

  constructor(private readonly limits: { peakMiB: number }) {}

  private start(): void {
    const child = spawn(process.execPath, [path.join(REPO, 'test/fuzz/cli-server.mjs')], {
      cwd: REPO,
      env: { ...(process.env as Record<string, string>), NO_COLOR: '1' },
      stdio: ['pipe', 'ignore', 'ignore', 'pipe'],
    });
    this.child = child;
    this.lines = [];
    this.buf = '';
    const fd3 = child.stdio[3] as NodeJS.ReadableStream;
    fd3.setEncoding('utf8');
    fd3.on('data', (d: string) => {
      if (this.child !== child) return; // a server killed after a hang: its late output is nobody's
      this.buf += d;
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        if (this.waiting) {
          const w = this.waiting;
          this.waiting = null;
          w(line);
        } else this.lines.push(line);
      }
    });
    child.on('exit', () => {
      if (this.child !== child) return; // killed on purpose, already replaced
      this.child = null;
      const w = this.waiting;
      this.waiting = null;
      w?.(null);
    });
  }

  stop(): void {
    this.child?.kill('SIGKILL');
    this.child = null;
  }

  async run(args: string[], timeoutMs: number): Promise<BoundedResult> {
    if (!this.child) this.start();
    const child = this.child!;
    const started = Date.now();
    const answer = new Promise<string | null>((resolve) => {
      if (this.lines.length) resolve(this.lines.shift()!);
      else this.waiting = resolve;
    });
    (child.stdin as NodeJS.WritableStream).write(`${JSON.stringify({ args })}\n`);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
    const got = await Promise.race([answer, timeout]);
    clearTimeout(timer);
    const ms = Date.now() - started;
    if (got === 'timeout' || got === null) {
      this.waiting = null;
      this.stop();
      return { code: null, signal: got === 'timeout' ? 'SIGKILL' : null, stdout: '', stderr: got === null ? 'the CLI server died' : '', timedOut: got === 'timeout', peakMiB: NaN, ms };
    }
    const r = JSON.parse(got) as { code: number; stdout: string; stderr: string; peakMiB: number };
    const res: BoundedResult = { code: r.code, signal: null, stdout: r.stdout, stderr: r.stderr, timedOut: false, peakMiB: r.peakMiB, ms };
    if (args.includes('--json') && r.stdout.trim()) {
      try {
        res.json = JSON.parse(r.stdout);
      } catch {
        /* reported by the caller */
      }
    }
    if (r.peakMiB > this.limits.peakMiB) this.stop(); // blame this run only
    return res;
  }
}

/**
 * A unix socket file at `p`: bound by a Node process that then dies by SIGKILL, so nothing
 * unlinks it. Bound by its name from its own dir: a socket path is limited to 108 bytes.
 */
export function socketFile(p: string): void {
  fs.rmSync(p, { force: true, recursive: true });
  spawnSync(process.execPath, ['-e', "require('net').createServer().listen(process.argv[1], () => process.kill(process.pid, 'SIGKILL'))", path.basename(p)], {
    cwd: path.dirname(p),
    stdio: 'ignore',
    timeout: 10_000,
  });
  if (!fs.lstatSync(p).isSocket()) throw new Error(`no socket made at ${p}`);
}
