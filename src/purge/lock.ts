// One layergc at a time per data root: <root>/layergc/lock holds {pid, host, since}. A lock whose
// holder is dead (same host, pid gone or reused) is taken over; one from another host is honoured.
import { hostname } from 'node:os';
import { constants } from 'node:fs';
import { readFileSync, readlinkSync } from 'node:fs';
import { fs, errCode } from '../fsx/fs.js';
import { lstatOrNull } from '../fsx/read.js';
import { ExitCode, LayergcError } from '../errors.js';

export interface LockHolder { pid: number; host: string; since: string; startTime?: string; command?: string; bootId?: string; pidNs?: string }

export const stateDir = (root: string) => `${root}/layergc`;
export const lockPath = (root: string) => `${stateDir(root)}/lock`;

/** Field 22 of /proc/<pid>/stat: tells a live holder from a new process that reused its pid. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

export function holderAlive(h: LockHolder, host = hostname()): boolean {
  // an empty or torn lock (the link is not fsynced: power loss) names no process: dead
  if (!Number.isInteger(h?.pid) || h.pid <= 0) return false;
  if (h.bootId && h.pidNs) {
    // the same kernel can be seen under other host names (a pod's hostname is the pod's name)
    if (h.bootId !== bootId()) return h.host !== host; // this host rebooted since: dead
    if (h.pidNs !== pidNs()) return true;
  } else if (h.host !== host) return true;
  try {
    process.kill(h.pid, 0);
  } catch (err) {
    if (errCode(err) === 'ESRCH') return false;
  }
  const st = processStartTime(h.pid);
  return st === undefined || h.startTime === undefined || st === h.startTime;
}

/** <root>/layergc, made if missing; refused unless it is a real directory (never a symlink out). */
export async function ensureStateDir(root: string): Promise<string> {
  const dir = stateDir(root);
  try {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new LayergcError(`${dir} cannot be made a directory (${(err as Error).message}); layergc keeps its lock and journal there`);
  }
  const st = await fs.lstat(dir);
  if (!st.isDirectory()) throw new LayergcError(`${dir} is not a directory (a symlink?); layergc keeps its lock and journal there and never follows a link out of the data root`);
  return dir;
}

/** Boot and PID namespace of this process: a lock from another boot is dead; one from another
 * PID namespace (a container) cannot be checked by pid, so it is honoured. */
function bootId(): string | undefined {
  try { return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(); } catch { return undefined; }
}
function pidNs(): string | undefined {
  try { return readlinkSync('/proc/self/ns/pid'); } catch { return undefined; }
}

const TAKEOVER_STALE_MS = 30_000;

/** The takeover mutex, <lock>.takeover; one left by a taker that died is stale after 30 s. */
async function takeTakeover(path: string): Promise<boolean> {
  const m = `${path}.takeover`;
  try {
    await fs.writeFile(m, `${process.pid}\n`, { flag: 'wx', mode: 0o644 });
    return true;
  } catch (err) {
    if (errCode(err) !== 'EEXIST') throw err;
    const st = await lstatOrNull(m);
    if (st && Date.now() - st.mtimeMs > TAKEOVER_STALE_MS) await fs.unlink(m).catch(() => undefined);
    return false;
  }
}

/** The lock's text: never through a link, never blocking on a FIFO, a regular file of at most 64 KiB. */
async function readLockText(path: string): Promise<string> {
  const fh = await fs.open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.size > 64 << 10) throw new Error('not a lock record');
    const buf = Buffer.alloc(st.size);
    await fh.read(buf, 0, st.size, 0);
    return buf.toString('utf8');
  } finally {
    await fh.close();
  }
}

export interface Lock { path: string; ino: number; release(): Promise<void>; takenOver?: LockHolder }

export async function acquireLock(root: string, command: string): Promise<Lock> {
  await ensureStateDir(root);
  const path = lockPath(root);
  const me: LockHolder = { pid: process.pid, host: hostname(), since: new Date().toISOString(), startTime: processStartTime(process.pid), command, bootId: bootId(), pidNs: pidNs() };
  let takenOver: LockHolder | undefined;
  for (let attempt = 0; attempt < 50; attempt++) {
    // create it whole under a private name, then link it into place: link fails if a lock exists
    const tmp = `${path}.${process.pid}.tmp`;
    await fs.unlink(tmp).catch(() => undefined);
    await fs.writeFile(tmp, `${JSON.stringify(me)}\n`, { mode: 0o644, flag: 'wx' }); // O_EXCL: never through a planted link
    try {
      await fs.link(tmp, path);
      const ino = (await fs.lstat(path)).ino;
      await fs.unlink(tmp);
      return {
        path,
        ino,
        takenOver,
        release: async () => {
          try {
            if ((await fs.lstat(path)).ino === ino) await fs.unlink(path);
          } catch { /* already gone */ }
        },
      };
    } catch (err) {
      await fs.unlink(tmp).catch(() => undefined);
      if (errCode(err) !== 'EEXIST') throw err;
    }
    let ino: number;
    try {
      ino = (await fs.lstat(path)).ino;
    } catch (err) {
      if (errCode(err) === 'ENOENT') continue; // released meanwhile: try again
      throw err;
    }
    let holder: LockHolder;
    try {
      holder = JSON.parse(await readLockText(path)) as LockHolder;
      if (typeof holder !== 'object' || holder === null) throw new Error('not a lock record');
    } catch (err) {
      if (errCode(err) === 'ENOENT') continue;
      holder = { pid: 0, host: hostname(), since: 'unknown' }; // empty or torn: names no live process
    }
    if (holderAlive(holder)) {
      throw new LayergcError(`another layergc holds ${root}: pid ${holder.pid} on ${holder.host}, since ${holder.since}${holder.command ? ` (${holder.command})` : ''}; lock file ${path}`, ExitCode.LOCKED);
    }
    // Take over, one taker at a time: under <lock>.takeover, remove the dead holder's lock only if
    // it is still the very file judged dead (same inode), then race for the lock like anyone else.
    if (!(await takeTakeover(path))) {
      await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    try {
      if ((await lstatOrNull(path))?.ino === ino) await fs.unlink(path);
    } finally {
      await fs.unlink(`${path}.takeover`).catch(() => undefined);
    }
    takenOver = holder;
  }
  throw new LayergcError(`could not take the lock ${path}: it changed hands repeatedly`, ExitCode.LOCKED);
}
