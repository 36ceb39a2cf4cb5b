/**
 * The lock's holder is proved alive, proved dead, or named as neither (issue 8): a layergc in another
 * PID namespace (`unshare --pid`) is found from the host by its namespace, pid and start time; one
 * this process cannot see into is "unknown", reported with its age and the exact `layergc unlock`
 * that clears it; `unlock` refuses while the holder is alive and logs what it removed.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { hostname } from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, rootMaker, runCliAsync, snapshotTree, type CliResult, type SyntheticRoot } from '../helpers/synthetic.js';

const root = rootMaker();
const tree = (dir: string) => snapshotTree(dir, { exclude: ['layergc'] });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const canUnshare = process.getuid?.() === 0 && spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true']).status === 0;

const lockFile = (s: SyntheticRoot) => path.join(s.root, 'layergc/lock');
function writeLock(s: SyntheticRoot, holder: Record<string, unknown>): string {
  fs.mkdirSync(path.join(s.root, 'layergc'), { recursive: true, mode: 0o700 });
  const text = `${JSON.stringify(holder)}\n`;
  fs.writeFileSync(lockFile(s), text);
  return text;
}
const startTime = (pid: number) => {
  const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return st.slice(st.lastIndexOf(')') + 2).split(' ')[19];
};
/** What a layergc in this process's namespaces would record. */
const here = (pid: number) => ({
  pid,
  host: hostname(),
  since: new Date(Date.now() - 3 * 3600_000).toISOString(),
  startTime: startTime(pid),
  command: 'layergc purge',
  bootId: fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(),
  pidNs: fs.readlinkSync('/proc/self/ns/pid'),
  timeNs: fs.readlinkSync('/proc/self/ns/time'),
});

/** `layergc <args>`, in a PID namespace of its own when `ns` (as in a container). */
function cli(args: string[], ns = false, env: Record<string, string> = {}): Promise<CliResult> {
  if (!ns) return runCliAsync(args, { env });
  return new Promise((resolve, reject) => {
    const child = spawn('unshare', ['--pid', '--fork', '--mount-proc', process.execPath, BIN, ...args], { env: { ...process.env, NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, json: stdout.trim().startsWith('{') ? JSON.parse(stdout) : undefined }));
  });
}

function garbage() {
  const s = root();
  s.populate();
  const leak = s.makeLeakedDriverDir();
  return { s, leak, before: tree(s.root) };
}

describe('layergc unlock', () => {
  it.concurrent('no lock: exit 0, says so, changes nothing', async () => {
    const { s, before } = garbage();
    const r = await cli(['unlock', '--data-root', s.root]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(`layergc: no lock at ${lockFile(s)}; nothing to do\n`);
    expect(tree(s.root)).toEqual(before);
  });

  it.concurrent('a live holder in this namespace (same pid and start time): purge exits 5 naming it, unlock refuses with exit 5; the lock stays byte for byte', async () => {
    const { s, before } = garbage();
    const text = writeLock(s, here(process.pid));
    const p = await cli(['purge', '--data-root', s.root, '--yes']);
    expect(p.code).toBe(5);
    expect(p.stderr).toMatch(
      new RegExp(
        `^layergc: another layergc holds ${s.root}: pid ${process.pid} on ${hostname()}, since \\S+ \\(3 h ago\\) \\(layergc purge\\); pid ${process.pid} is the process that took the lock \\(same start time\\); lock file ${lockFile(s)}\\n$`,
      ),
    );
    const u = await cli(['unlock', '--data-root', s.root]);
    expect(u.code).toBe(5);
    expect(u.stderr).toContain(`layergc: refusing to unlock ${s.root}: a running layergc holds it: pid ${process.pid} on ${hostname()}`);
    expect(fs.readFileSync(lockFile(s), 'utf8')).toBe(text);
    expect(tree(s.root)).toEqual(before);
  });

  it.concurrent('a pid that exists but is not layergc, in a lock with no start time: unknown; purge names it, its age and the unlock command; unlock removes it and logs its content', async () => {
    const { s, before, leak } = garbage();
    const sleeper = spawn('sleep', ['600'], { stdio: 'ignore' });
    try {
      const text = writeLock(s, { pid: sleeper.pid, host: hostname(), since: new Date(Date.now() - 10 * 60_000).toISOString(), command: 'layergc purge' });
      const p = await cli(['purge', '--data-root', s.root, '--yes']);
      expect(p.code).toBe(5);
      expect(p.stderr).toContain(`another layergc may hold ${s.root}: pid ${sleeper.pid} on ${hostname()}`);
      expect(p.stderr).toContain(
        `(10 min ago) (layergc purge); pid ${sleeper.pid} runs "sleep 600", not layergc, and the lock records no start time that would tell whether it is the holder, so it cannot be proved alive or dead. If it no longer runs, clear the lock with: layergc unlock --data-root ${s.root} (lock file ${lockFile(s)})`,
      );
      expect(tree(s.root)).toEqual(before);
      const u = await cli(['unlock', '--data-root', s.root]);
      expect(u.code).toBe(0);
      expect(u.stderr).toContain(`layergc: removed the lock ${lockFile(s)} of pid ${sleeper.pid} on ${hostname()}`);
      expect(u.stderr).toContain(`its holder is not provably alive: pid ${sleeper.pid} runs "sleep 600"`);
      expect(u.stderr).toContain(`It held: ${text.trim()}\n`);
      expect(fs.existsSync(lockFile(s))).toBe(false);
      expect(sleeper.exitCode).toBe(null); // nothing was signalled
      const again = await cli(['purge', '--data-root', s.root, '--yes', '--json']);
      expect(again.code).toBe(0);
      expect(again.json.actions.map((a: { paths: string[]; status: string }) => [a.paths[0], a.status])).toEqual([[leak.dir, 'removed']]);
    } finally {
      sleeper.kill('SIGKILL');
    }
  });

  it.concurrent('a lock from another machine (other host name and boot id): unknown, named with the unlock command; unlock removes it', async () => {
    const { s } = garbage();
    writeLock(s, { ...here(process.pid), host: 'builder-7.example', bootId: '00000000-0000-4000-8000-000000000000' });
    const p = await cli(['purge', '--data-root', s.root, '--yes']);
    expect(p.code).toBe(5);
    expect(p.stderr).toContain(
      'it was written on builder-7.example, another machine (boot id 00000000-0000-4000-8000-000000000000), whose processes cannot be seen from here, so it cannot be proved alive or dead',
    );
    expect(p.stderr).toContain(`clear the lock with: layergc unlock --data-root ${s.root}`);
    const u = await cli(['unlock', '--data-root', s.root, '--log-format', 'json']);
    expect(u.code).toBe(0);
    const ev = JSON.parse(u.stderr);
    expect(ev).toMatchObject({ level: 'warn', event: 'unlocked', path: lockFile(s), holder: { host: 'builder-7.example' }, liveness: { state: 'unknown' } });
    expect(fs.existsSync(lockFile(s))).toBe(false);
  });

  it.concurrent('a path with a quote: the printed unlock command is one shell word for it', async () => {
    const s = root();
    s.populate();
    writeLock(s, { ...here(process.pid), host: 'elsewhere.example', bootId: 'x' });
    const quoted = path.join(s.base, "it's $(docker)");
    expect(spawnSync('cp', ['-a', s.root, quoted]).status).toBe(0);
    const p = await cli(['purge', '--data-root', quoted, '--yes']);
    expect(p.code).toBe(5);
    const cmd = /clear the lock with: (layergc unlock .*) \(lock file/.exec(p.stderr)![1];
    const sh = spawnSync('sh', ['-c', `set -- ${cmd}; printf '%s\\n' "$@"`], { encoding: 'utf8' });
    expect(sh.stdout).toBe(`layergc\nunlock\n--data-root\n${quoted}\n`);
  });
});

describe.skipIf(!canUnshare)('a layergc in another PID namespace (unshare --pid, as in a container)', () => {
  /** A purge in its own PID namespace, paused holding the lock. */
  async function pausedInNamespace(s: SyntheticRoot) {
    const dir = fs.mkdtempSync(path.join(s.base, 'pause-'));
    const run = cli(['purge', '--data-root', s.root, '--yes', '--json'], true, { LAYERGC_TEST_PAUSE_AT: 'before-item', LAYERGC_TEST_PAUSE_DIR: dir });
    for (let i = 0; !fs.existsSync(path.join(dir, 'paused')); i++) {
      if (i > 3000) throw new Error('the purge never paused');
      await sleep(10);
    }
    return { run, resume: () => fs.writeFileSync(path.join(dir, 'resume'), '') };
  }
  const nsOf = (s: SyntheticRoot) => JSON.parse(fs.readFileSync(lockFile(s), 'utf8')) as { pid: number; pidNs: string };

  it('alive: found from the host by namespace, pid and start time; purge exits 5 and unlock refuses; when it ends, the lock is gone', async () => {
    const { s, leak } = garbage();
    const held = await pausedInNamespace(s);
    try {
      const lock = nsOf(s);
      expect(lock.pidNs).not.toBe(fs.readlinkSync('/proc/self/ns/pid'));
      const p = await cli(['purge', '--data-root', s.root, '--yes']);
      expect(p.code).toBe(5);
      expect(p.stderr).toMatch(new RegExp(`another layergc holds .*: pid ${lock.pid} on .*; it runs as pid \\d+ here \\(pid ${lock.pid} in PID namespace pid:\\[\\d+\\]\\)`));
      const u = await cli(['unlock', '--data-root', s.root]);
      expect(u.code).toBe(5);
      expect(u.stderr).toContain('refusing to unlock');
      expect(fs.existsSync(lockFile(s))).toBe(true);
    } finally {
      held.resume();
    }
    const r = await held.run;
    expect(r.code).toBe(0);
    expect(r.json.actions.map((a: { paths: string[]; status: string }) => [a.paths[0], a.status])).toEqual([[leak.dir, 'removed']]);
    expect(fs.existsSync(lockFile(s))).toBe(false);
  });

  it('killed: proved dead from the host (no process is that pid of that namespace) and taken over', async () => {
    const { s, leak } = garbage();
    const held = await pausedInNamespace(s);
    const lock = nsOf(s);
    const hostPid = fs
      .readdirSync('/proc')
      .filter((n) => /^\d+$/.test(n))
      .find((n) => {
        try {
          return fs.readlinkSync(`/proc/${n}/ns/pid`) === lock.pidNs && /^NSpid:.*\s(\d+)$/m.exec(fs.readFileSync(`/proc/${n}/status`, 'utf8'))?.[1] === String(lock.pid);
        } catch {
          return false;
        }
      });
    expect(hostPid).toBeDefined();
    process.kill(Number(hostPid), 'SIGKILL');
    const killed = await held.run;
    expect(killed.code ?? killed.signal).not.toBe(0);
    expect(fs.readFileSync(lockFile(s), 'utf8')).toContain(lock.pidNs);
    const r = await cli(['purge', '--data-root', s.root, '--yes', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`took over the lock of a layergc that died: pid ${lock.pid}`);
    expect(r.json.actions.map((a: { paths: string[]; status: string }) => [a.paths[0], a.status])).toEqual([[leak.dir, 'removed']]);
  });

  it('seen from inside a container, a host lock is unknown: purge names it with its age and the unlock command; unlock there removes it and logs its content; nothing else changed', async () => {
    const { s, before } = garbage();
    const text = writeLock(s, here(process.pid));
    const p = await cli(['purge', '--data-root', s.root, '--yes'], true);
    expect(p.code).toBe(5);
    expect(p.stderr).toContain(`another layergc may hold ${s.root}: pid ${process.pid} on ${hostname()}`);
    expect(p.stderr).toMatch(
      /\(3 h ago\) \(layergc purge\); it was written in PID namespace pid:\[4026531836\], and this layergc runs in pid:\[\d+\], which cannot see into it, so it cannot be proved alive or dead\. If it no longer runs, clear the lock with: layergc unlock --data-root /,
    );
    expect(tree(s.root)).toEqual(before);
    const u = await cli(['unlock', '--data-root', s.root], true);
    expect(u.code).toBe(0);
    expect(u.stderr).toContain(`removed the lock ${lockFile(s)} of pid ${process.pid}`);
    expect(u.stderr).toContain(`It held: ${text.trim()}`);
    expect(fs.readdirSync(path.join(s.root, 'layergc')).filter((n) => n.startsWith('lock'))).toEqual([]);
    expect(tree(s.root)).toEqual(before);
  });
});
