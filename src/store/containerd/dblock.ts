// bbolt's own lock on a containerd database, held while layergc swaps the file: containerd opens
// meta.db and then takes flock(LOCK_EX) on it (bbolt's Open), so holding that lock keeps a
// containerd that starts meanwhile waiting. Node has no flock: util-linux's flock(1) runs as a child
// that holds the lock until its stdin closes (also when layergc dies). A process waiting for the
// lock already holds the old file open, and would use that file, not the new one, once the lock
// goes: so the swap is checked against every process that has the old file open (/proc/<pid>/fd)
// before the rename and again after it, and undone when there is one.
import { spawn, type ChildProcess } from 'node:child_process';
import { lstatSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { ExitCode, LayergcError } from '../../errors.js';

/** Long enough for a process that looked up the old path before the rename to have its fd installed. */
const SETTLE_MS = 100;

export interface DbLock {
  /** this process and the lock holder's: not holders of the store */
  pids: ReadonlySet<number>;
  /** the other processes that have the locked file (the old inode) open: pid and command */
  openedByOthers(): string[];
  /** waits out a lookup under way, then openedByOthers() */
  settledOthers(): Promise<string[]>;
  release(): Promise<void>;
}

const idOf = (st: { dev: number; ino: number }) => `${st.dev}:${st.ino}`;

/** pids of `pid` and every process below it */
function treeOf(pid: number): Set<number> {
  const out = new Set([pid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
      try {
        const ppid = Number(
          readFileSync(`/proc/${p}/stat`, 'utf8')
            .replace(/^.*\) /s, '')
            .split(' ')[1],
        );
        if (out.has(ppid) && !out.has(Number(p))) {
          out.add(Number(p));
          grew = true;
        }
      } catch {
        /* ended */
      }
    }
  }
  return out;
}

/** Every process (but those in `skip`) with an fd on the file `id` names. */
function openers(id: string, skip: Set<number>): string[] {
  const out: string[] = [];
  for (const p of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    if (skip.has(Number(p))) continue;
    let fds: string[] = [];
    try {
      fds = readdirSync(`/proc/${p}/fd`);
    } catch {
      continue; // ended, or not ours to see
    }
    for (const fd of fds) {
      try {
        if (idOf(statSync(`/proc/${p}/fd/${fd}`)) !== id) continue;
      } catch {
        continue;
      }
      let comm = '?';
      try {
        comm = readFileSync(`/proc/${p}/comm`, 'utf8').trim();
      } catch {
        /* ended */
      }
      out.push(`pid ${p} (${comm})`);
      break;
    }
  }
  return out;
}

/** Take flock(LOCK_EX|LOCK_NB) on `file` (a regular file, never through a symlink) and hold it; exit 3 when another holds it. */
export async function lockDb(file: string): Promise<DbLock> {
  const st = lstatSync(file);
  if (!st.isFile()) throw new LayergcError(`${file} is not a regular file; nothing was changed`);
  const id = idOf(st);
  let child: ChildProcess;
  const locked = await new Promise<boolean>((resolve, reject) => {
    child = spawn('flock', ['--exclusive', '--nonblock', file, 'sh', '-c', 'echo locked; exec cat >/dev/null'], { stdio: ['pipe', 'pipe', 'ignore'] });
    let out = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.startsWith('locked\n')) resolve(true);
    });
    child.once('error', (err) => reject(new LayergcError(`flock(1) (util-linux) is needed to hold containerd's lock on ${file} while it is replaced: ${err.message}; nothing was changed`)));
    child.once('close', () => resolve(false));
  });
  const c = child!;
  const release = async () => {
    if (c.exitCode !== null || c.signalCode !== null) return;
    const closed = new Promise((r) => c.once('close', r));
    c.stdin?.end();
    await closed;
  };
  if (!locked) throw new LayergcError(`${file} is locked by another process (a containerd, or a bbolt reader); nothing was changed`, ExitCode.DAEMON_RUNNING);
  const mine = treeOf(c.pid!);
  mine.add(process.pid);
  // the lock is on the inode layergc read, not on something swapped in since
  if (!openers(id, new Set([process.pid])).some((o) => mine.has(Number(o.split(' ')[1])))) {
    await release();
    throw new LayergcError(`${file} changed while layergc locked it; nothing was changed`, ExitCode.DAEMON_RUNNING);
  }
  const openedByOthers = () => openers(id, mine);
  return {
    pids: mine,
    openedByOthers,
    settledOthers: async () => {
      await sleep(SETTLE_MS);
      return openedByOthers();
    },
    release,
  };
}
