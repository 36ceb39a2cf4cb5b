// One layergc at a time per data root: <root>/layergc/lock holds {pid, host, since} and what proves
// the holder alive or dead: its start time, boot id, PID and time namespaces. A holder proved dead is
// taken over; one proved alive is waited for; one that can be proved neither (another machine, a PID
// namespace this process cannot see into) is named with its age and `layergc unlock`, which clears it.
import { hostname } from 'node:os';
import { lockPath, stateDir } from '../layout.js';
import { constants } from 'node:fs';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { fs, errCode } from '../fsx/fs.js';
import { lstatOrNull } from '../fsx/read.js';
import { ExitCode, fsCause, LayergcError } from '../errors.js';
import { shellWord } from '../escape.js';
import { ago } from './plan.js';

export interface LockHolder {
  pid: number;
  host: string;
  since: string;
  startTime?: string;
  command?: string;
  bootId?: string;
  pidNs?: string;
  timeNs?: string;
}

/** Field 22 of /proc/<pid>/stat: tells a live holder from a new process that reused its pid. */
export function processStartTime(pid: number | string, procDir = '/proc'): string | undefined {
  try {
    const stat = readFileSync(`${procDir}/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Whether a lock's holder runs: proved alive, proved dead, or neither (then a person decides). */
export interface Liveness {
  state: 'alive' | 'dead' | 'unknown';
  why: string;
}
const alive = (why: string): Liveness => ({ state: 'alive', why });
const dead = (why: string): Liveness => ({ state: 'dead', why });
const unknown = (why: string): Liveness => ({ state: 'unknown', why });

/** PROC_PID_INIT_INO: the host's PID namespace, from which every process on this kernel is visible. */
const INIT_PID_NS = 'pid:[4026531836]';

export function judgeHolder(h: LockHolder, host = hostname()): Liveness {
  // an empty or torn lock (the link is not fsynced: power loss) names no process
  if (!Number.isInteger(h?.pid) || h.pid <= 0) return dead('the lock names no process (empty or torn)');
  const boot = bootId();
  if (h.bootId && boot) {
    // the same kernel can be seen under other host names (a pod's hostname is the pod's name)
    if (h.bootId !== boot)
      return h.host === host
        ? dead('it was written before this machine last booted')
        : unknown(`it was written on ${h.host}, another machine (boot id ${h.bootId}), whose processes cannot be seen from here`);
    if (h.pidNs && h.pidNs !== pidNs()) return foreignNamespace(h);
  } else if (h.host !== host) return unknown(`it was written on ${h.host}, and it records no boot id that would tell whether that is this machine`);
  return sameNamespace(h);
}

function sameNamespace(h: LockHolder): Liveness {
  try {
    process.kill(h.pid, 0);
  } catch (err) {
    if (errCode(err) === 'ESRCH') return dead(`pid ${h.pid} does not exist`);
  }
  const st = processStartTime(h.pid);
  if (st === undefined) return unknown(`pid ${h.pid} exists but its start time cannot be read`);
  if (h.startTime === undefined) {
    const cmd = commandLine(h.pid);
    return /layergc/.test(cmd)
      ? alive(`pid ${h.pid} runs ${cmd}`)
      : unknown(`pid ${h.pid} runs ${JSON.stringify(cmd)}, not layergc, and the lock records no start time that would tell whether it is the holder`);
  }
  if (st === h.startTime) return alive(`pid ${h.pid} is the process that took the lock (same start time)`);
  if (h.timeNs && h.timeNs !== timeNs()) return unknown(`pid ${h.pid} started at another time than recorded, but the lock was written in another time namespace (${h.timeNs})`);
  return dead(`pid ${h.pid} is now another process (it started after the lock was taken)`);
}

/**
 * A holder in another PID namespace of this kernel (a container): from the host's namespace every
 * process is visible, with its pid inside its own namespace (NSpid), so it is found or proved gone.
 */
function foreignNamespace(h: LockHolder, procDir = '/proc'): Liveness {
  const mine = pidNs();
  const where = `PID namespace ${h.pidNs}`;
  if (mine !== INIT_PID_NS || selfPid(procDir) !== process.pid)
    return unknown(`it was written in ${where}, and this layergc runs in ${mine ?? 'a PID namespace it cannot read'}, which cannot see into it`);
  if (!h.startTime) return unknown(`it was written in ${where} and records no start time`);
  if (h.timeNs && h.timeNs !== timeNs()) return unknown(`it was written in ${where} and time namespace ${h.timeNs}, whose start times cannot be compared with this one's`);
  let hidden = false;
  for (const p of readdirSync(procDir).filter((n) => /^\d+$/.test(n))) {
    // NSpid: its pid in each namespace from this one down; one entry means it lives in this one
    const nspid =
      /^NSpid:\s*(.*)$/m
        .exec(readOr(`${procDir}/${p}/status`))?.[1]
        .trim()
        .split(/\s+/) ?? [];
    if (nspid.length < 2 || nspid[nspid.length - 1] !== String(h.pid) || processStartTime(p, procDir) !== h.startTime) continue;
    try {
      if (readlinkSync(`${procDir}/${p}/ns/pid`) === h.pidNs) return alive(`it runs as pid ${p} here (pid ${h.pid} in ${where})`);
    } catch (err) {
      if (errCode(err) !== 'ENOENT') hidden = true; // a candidate whose namespace this user may not read
    }
  }
  if (hidden) return unknown(`it was written in ${where}, and a process with its pid and start time cannot be inspected by this user`);
  return dead(`no process is pid ${h.pid} of ${where} with the recorded start time: it ended`);
}

function readOr(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
function commandLine(pid: number): string {
  return readOr(`/proc/${pid}/cmdline`).split('\0').filter(Boolean).join(' ').slice(0, 200);
}
function selfPid(procDir: string): number | undefined {
  try {
    return Number(readlinkSync(`${procDir}/self`));
  } catch {
    return undefined;
  }
}

/** <root>/layergc, made if missing; refused unless it is a real directory (never a symlink out). */
export async function ensureStateDir(root: string): Promise<string> {
  const dir = stateDir(root);
  try {
    // not recursive: the root exists, and node's recursive mkdir reports a read-only filesystem as ENOENT
    await fs.mkdir(dir, { mode: 0o700 });
  } catch (err) {
    if (errCode(err) !== 'EEXIST')
      throw new LayergcError(`${dir} cannot be made a directory: ${fsCause(err) ?? (err as Error).message}; layergc keeps its lock and journal there; nothing was changed`);
  }
  const st = await fs.lstat(dir);
  if (!st.isDirectory()) throw new LayergcError(`${dir} is not a directory (a symlink?); layergc keeps its lock and journal there and never follows a link out of the data root`);
  return dir;
}

/** Boot, PID and time namespace of this process, recorded in the lock to judge its holder later. */
function bootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return undefined;
  }
}
function pidNs(): string | undefined {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return undefined;
  }
}
function timeNs(): string | undefined {
  try {
    return readlinkSync('/proc/self/ns/time');
  } catch {
    return undefined;
  }
}

const TAKEOVER_STALE_MS = 30_000;

/** The takeover mutex, <lock>.takeover; one left by a taker that died is stale after 30 s. */
async function takeTakeover(path: string): Promise<boolean> {
  const m = `${path}.takeover`;
  try {
    await fs.writeFile(m, `${process.pid}\n`, { flag: 'wx', mode: 0o644 });
    return true;
  } catch (err) {
    if (errCode(err) !== 'EEXIST') {
      await fs.unlink(m).catch(() => undefined); // made, then the disk was full: ours, and empty
      throw err;
    }
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

/** The lock as it is now: its inode, its text and the holder it names; null when there is none. */
export interface LockRecord {
  path: string;
  ino: number;
  text: string;
  holder: LockHolder;
}

export async function readLock(root: string): Promise<LockRecord | null> {
  const path = lockPath(root);
  let ino: number;
  try {
    ino = (await fs.lstat(path)).ino;
  } catch (err) {
    if (errCode(err) === 'ENOENT') return null;
    throw err;
  }
  let text: string;
  let holder: LockHolder;
  try {
    text = await readLockText(path);
  } catch (err) {
    if (errCode(err) === 'ENOENT') return null;
    text = `(not a lock record: ${errCode(err) ?? (err as Error).message})`;
  }
  try {
    holder = JSON.parse(text) as LockHolder;
    if (typeof holder !== 'object' || holder === null || Array.isArray(holder)) throw new Error('not a lock record');
  } catch {
    holder = { pid: 0, host: hostname(), since: 'unknown' }; // empty or torn: names no live process
  }
  return { path, ino, text, holder };
}

/** "pid 42 on host, since <time> (3 min ago) (layergc purge)": who holds a lock, in one phrase. */
export function describeHolder(h: LockHolder, now = Date.now()): string {
  const t = Date.parse(h.since);
  return `pid ${h.pid} on ${h.host}, since ${h.since}${Number.isNaN(t) ? '' : ` (${ago(now - t)} ago)`}${h.command ? ` (${h.command})` : ''}`;
}

/** The command that clears a lock no process can be proved to hold, for the user to paste. */
export const unlockCommand = (root: string) => `layergc unlock --data-root ${shellWord(root)}`;

/** Remove the lock file only if it is still `ino`, one remover at a time (under <lock>.takeover). */
async function removeIfSame(path: string, rec: LockRecord): Promise<'removed' | 'changed' | 'busy'> {
  if (!(await takeTakeover(path))) return 'busy';
  try {
    // a new lock can reuse the freed inode number of the one judged: its text tells them apart
    if ((await lstatOrNull(path))?.ino !== rec.ino || (await readLockText(path).catch((err) => `(not a lock record: ${errCode(err) ?? (err as Error).message})`)) !== rec.text) return 'changed';
    await fs.unlink(path);
    return 'removed';
  } finally {
    await fs.unlink(`${path}.takeover`).catch(() => undefined);
  }
}

/** Temp files of acquirers that died between writing and linking: older than any live one. */
async function removeStaleTemps(root: string): Promise<void> {
  let names: string[];
  try {
    names = await fs.readdir(stateDir(root));
  } catch {
    return;
  }
  for (const n of names.filter((x) => /^lock\.\d+\.tmp$/.test(x))) {
    const p = `${stateDir(root)}/${n}`;
    const st = await lstatOrNull(p).catch(() => null);
    if (st?.isFile() && Date.now() - st.mtimeMs > TAKEOVER_STALE_MS) await fs.unlink(p).catch(() => undefined);
  }
}

export interface Lock {
  path: string;
  ino: number;
  release(): Promise<void>;
  takenOver?: LockHolder;
}

export async function acquireLock(root: string, command: string): Promise<Lock> {
  await ensureStateDir(root);
  await removeStaleTemps(root);
  const path = lockPath(root);
  const me: LockHolder = { pid: process.pid, host: hostname(), since: new Date().toISOString(), startTime: processStartTime(process.pid), command, bootId: bootId(), pidNs: pidNs(), timeNs: timeNs() };
  let takenOver: LockHolder | undefined;
  for (let attempt = 0; attempt < 50; attempt++) {
    // create it whole under a private name, then link it into place: link fails if a lock exists
    const tmp = `${path}.${process.pid}.tmp`;
    try {
      await fs.unlink(tmp).catch(() => undefined);
      await fs.writeFile(tmp, `${JSON.stringify(me)}\n`, { mode: 0o644, flag: 'wx' }); // O_EXCL: never through a planted link
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
          } catch {
            /* already gone */
          }
        },
      };
    } catch (err) {
      await fs.unlink(tmp).catch(() => undefined); // a full disk leaves no half-written temp behind
      if (errCode(err) !== 'EEXIST') throw fsCause(err) ? new LayergcError(`cannot take the lock ${path}: ${fsCause(err)}; nothing was changed`) : err;
    }
    const rec = await readLock(root);
    if (!rec) continue; // released meanwhile: try again
    const { holder } = rec;
    const judged = judgeHolder(holder);
    if (judged.state === 'alive') {
      throw new LayergcError(`another layergc holds ${root}: ${describeHolder(holder)}; ${judged.why}; lock file ${path}`, ExitCode.LOCKED);
    }
    if (judged.state === 'unknown') {
      throw new LayergcError(
        `another layergc may hold ${root}: ${describeHolder(holder)}; ${judged.why}, so it cannot be proved alive or dead. If it no longer runs, clear the lock with: ${unlockCommand(root)} (lock file ${path})`,
        ExitCode.LOCKED,
      );
    }
    // Take over, one taker at a time: remove the dead holder's lock only if it is still the very
    // file judged dead (same inode), then race for the lock like anyone else.
    const r = await removeIfSame(path, rec).catch((err: unknown) => {
      throw fsCause(err) ? new LayergcError(`cannot take over the lock ${path} of a layergc that died: ${fsCause(err)}; nothing was changed`) : err;
    });
    if (r === 'busy') {
      await new Promise((res) => setTimeout(res, 100));
      continue;
    }
    if (r === 'removed') takenOver = holder;
  }
  throw new LayergcError(`could not take the lock ${path}: it changed hands repeatedly`, ExitCode.LOCKED);
}

export interface UnlockResult {
  path: string;
  removed?: LockRecord;
  liveness?: Liveness;
}

/**
 * `layergc unlock`: remove a lock whose holder is not provably alive (dead, or on another machine or
 * in a PID namespace that cannot be seen into, where only a person can tell). Refused while alive.
 */
export async function unlock(root: string): Promise<UnlockResult> {
  const path = lockPath(root);
  // a state dir that is a symlink would have the lock of some other dir removed
  const dir = await lstatOrNull(stateDir(root));
  if (!dir) return { path };
  if (!dir.isDirectory()) throw new LayergcError(`${stateDir(root)} is not a directory (a symlink?); layergc keeps its lock there and never follows a link out of the data root`);
  for (let attempt = 0; attempt < 50; attempt++) {
    const rec = await readLock(root);
    if (!rec) return { path };
    const liveness = judgeHolder(rec.holder);
    if (liveness.state === 'alive') {
      throw new LayergcError(
        `refusing to unlock ${root}: a running layergc holds it: ${describeHolder(rec.holder)}; ${liveness.why}. Wait for it to finish, or stop it (it releases the lock); lock file ${path}`,
        ExitCode.LOCKED,
      );
    }
    let r: Awaited<ReturnType<typeof removeIfSame>>;
    try {
      r = await removeIfSame(path, rec);
    } catch (err) {
      throw fsCause(err) ? new LayergcError(`cannot remove the lock ${path}: ${fsCause(err)}; it is still there`) : err;
    }
    if (r === 'removed') return { path, removed: rec, liveness };
    await new Promise((res) => setTimeout(res, 100)); // taken or changed meanwhile: judge again
  }
  throw new LayergcError(`could not unlock ${path}: it changed hands repeatedly`, ExitCode.LOCKED);
}
