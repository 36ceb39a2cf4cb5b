/**
 * The real CLI on a terminal: util-linux `script` gives it a pty, and what the test writes to
 * script's stdin reaches the pty as keystrokes (\x03 is Ctrl-C, \x04 Ctrl-D), so the terminal's
 * own line discipline and raw mode are what the CLI sees. Skipped where `script` is missing.
 */
import { spawn, spawnSync } from 'node:child_process';
import { BIN, REPO } from './synthetic.js';

export const HAS_SCRIPT = spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0;

/** POSIX shell single-quoting. */
export const sq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Wait for text on the terminal, or for a condition (checked every 20 ms), then type `send`. */
export interface PtyStep {
  waitFor: RegExp | (() => boolean);
  send: string;
  then?: () => void;
}
export interface PtyResult {
  code: number | null;
  output: string;
}

/**
 * Run `layergc <args>` on a pty; `redirect` is appended to the command line (e.g. `2>/tmp/err`
 * to keep stderr off the terminal). Each step waits for its text on the terminal, then types.
 */
export function runInPty(args: string[], steps: PtyStep[] = [], opts: { env?: Record<string, string>; redirect?: string; timeoutMs?: number } = {}): Promise<PtyResult> {
  const cmd = `${[process.execPath, BIN, ...args].map(sq).join(' ')}${opts.redirect ? ` ${opts.redirect}` : ''}`;
  const env: Record<string, string> = { ...(process.env as Record<string, string>), TERM: 'xterm', ...(opts.env ?? {}) };
  delete env.NO_COLOR;
  delete env.FORCE_COLOR;
  for (const [k, v] of Object.entries(opts.env ?? {})) if (v === '') delete env[k];
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qfec', cmd, '/dev/null'], { env, cwd: REPO, stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    const pending = [...steps];
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`pty run timed out; output so far:\n${output}`));
    }, opts.timeoutMs ?? 30_000);
    const ready = (w: PtyStep['waitFor']) => (typeof w === 'function' ? w() : w.test(output));
    const advance = () => {
      while (pending.length && ready(pending[0].waitFor)) {
        const step = pending.shift()!;
        child.stdin.write(step.send);
        step.then?.();
      }
    };
    const poll = setInterval(advance, 20);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      output += d;
      advance();
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      clearInterval(poll);
      resolve({ code, output: output.replace(/\r\n/g, '\n') });
    });
  });
}
