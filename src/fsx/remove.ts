// The only code in layergc that deletes or renames. It acts on what it opened, never on a path
// string checked earlier: every directory is opened with O_NOFOLLOW from the data root down, its
// device, inode and mount id are checked, and its children are removed relative to it (through
// /proc/self/fd/<fd>/<name>). The mount table is read again at each call, so a mount made after the
// plan (at the prompt, or while earlier items went) is refused too. With dryRun it checks
// containment and mounts and changes nothing.
import { spawnSync } from 'node:child_process';
import type { Dirent, Stats } from 'node:fs';
import { fs, errCode, isNotFound } from './fs.js';
import { atFd, fdDir, O_DIR, openParent, OutsideDataRoot, relParts } from './contain.js';
import { MountTable, mountIdOfFd } from './mounts.js';
import { faultPoint } from './fault.js';
import { bytesToDisplay, shellQuote } from '../escape.js';
import { fsCause } from '../errors.js';

export interface RemoveFailure {
  path: string;
  code: string;
  message: string;
  /** What to do about it, when layergc can tell (immutable or append-only attribute). */
  hint?: string;
  /** The name on disk, when `path` shows it with escapes. */
  raw?: Buffer;
}

export class RemovalFailed extends Error {
  constructor(readonly failures: RemoveFailure[]) {
    super(failures.map((f) => `${f.path}: ${f.message}${f.hint ? ` (${f.hint})` : ''}`).join('; '));
  }
}

export class MountInside extends Error {
  constructor(
    readonly path: string,
    readonly mounts: string[],
    why?: string,
  ) {
    super(why ?? `${path} has ${mounts.length === 1 ? 'a mount point' : 'mount points'} inside (${mounts.join(', ')}); layergc never crosses a mount point`);
  }
}

/** SIGINT or SIGTERM stopped a tree's removal between two files: the rest is left where it is. */
export class RemovalInterrupted extends Error {
  constructor(
    readonly path: string,
    signal: unknown,
  ) {
    super(`interrupted part-way (${String(signal)}): what is left of ${path} keeps its name, and the next purge finishes it`);
  }
}

export interface RemoveOp {
  op: 'rename' | 'unlink' | 'remove-tree';
  path: string;
  to?: string;
}

/** Where the mount table comes from: fixed (tests of adapters), or read afresh at every call. */
export type MountSource = MountTable | (() => MountTable);
export const liveMounts: MountSource = () => MountTable.read();

export class Remover {
  /** What was done, or with dryRun what would have been. */
  readonly ops: RemoveOp[] = [];
  /** Bytes the removals so far freed: blocks of what went, counted as it went. */
  freed = 0;
  /** Device and inode of each directory this run staged: what is removed must be what was renamed. */
  private readonly staged = new Map<string, { dev: number; ino: number }>();

  /** `signal`: checked between files (SIGINT, SIGTERM); once aborted, a tree's removal stops there. */
  constructor(
    readonly root: string,
    private readonly mountSource: MountSource,
    readonly dryRun: boolean,
    readonly signal?: AbortSignal,
  ) {}

  /** The mount table as it is now (re-read each time when live). */
  get mounts(): MountTable {
    return typeof this.mountSource === 'function' ? this.mountSource() : this.mountSource;
  }

  /** `roots`: a quarantine move has one end in the quarantine dir, each end contained in its own root. */
  async rename(from: string, to: string, roots: { from?: string; to?: string } = {}): Promise<void> {
    const [fromRoot, toRoot] = [roots.from ?? this.root, roots.to ?? this.root];
    relParts(fromRoot, from);
    relParts(toRoot, to);
    this.checkMounts(from);
    this.ops.push({ op: 'rename', path: from, to });
    if (this.dryRun) {
      fs.closeSync(openParent(fromRoot, from).dir.fd);
      return;
    }
    faultPoint('before-rename');
    const a = openParent(fromRoot, from);
    const b = openParent(toRoot, to);
    try {
      const st = fs.lstatSync(atFd(a.dir.fd, a.name));
      if (st.isDirectory()) this.refuseMountPoint(a.dir.fd, a.name, from);
      fs.renameSync(atFd(a.dir.fd, a.name), atFd(b.dir.fd, b.name));
      if (st.isDirectory()) this.staged.set(to, { dev: st.dev, ino: st.ino });
    } catch (err) {
      if (err instanceof MountInside) throw err;
      const f = failureOf(from, err);
      throw new RemovalFailed(withHints([{ ...f, message: `${f.message}; it was not renamed, nothing of it changed` }])); // an immutable dir says so here too
    } finally {
      fs.closeSync(a.dir.fd);
      fs.closeSync(b.dir.fd);
    }
    faultPoint('after-rename');
  }

  /** The opened parent dir of `path`, from the root down; null when some part of it is already gone. */
  private openParentIfThere(path: string): ReturnType<typeof openParent> | null {
    try {
      return openParent(this.root, path);
    } catch (err) {
      if (err instanceof OutsideDataRoot && err.missing) return null;
      throw err;
    }
  }

  /** Remove one non-directory entry (a file or a symlink itself, never its target). */
  async unlink(path: string): Promise<void> {
    relParts(this.root, path);
    this.ops.push({ op: 'unlink', path });
    if (this.dryRun) return;
    const p = this.openParentIfThere(path);
    if (!p) return;
    try {
      const at = atFd(p.dir.fd, p.name);
      const st = fs.lstatSync(at);
      fs.unlinkSync(at);
      if (st.nlink === 1) this.freed += st.blocks * 512;
    } catch (err) {
      if (isNotFound(err)) return;
      throw new RemovalFailed([failureOf(path, err)]);
    } finally {
      fs.closeSync(p.dir.fd);
    }
  }

  /**
   * Delete a tree without following symlinks or leaving its filesystem or mount. It goes on past a
   * file it cannot delete, so one immutable file keeps only itself and its parent dirs, and names it.
   */
  async removeTree(path: string): Promise<void> {
    relParts(this.root, path);
    this.checkMounts(path);
    this.ops.push({ op: 'remove-tree', path });
    if (this.dryRun) return;
    faultPoint('remove-tree');
    const p = this.openParentIfThere(path);
    if (!p) return;
    let fd: number | undefined;
    try {
      const at = atFd(p.dir.fd, p.name);
      let st: Stats;
      try {
        st = fs.lstatSync(at);
      } catch (err) {
        if (isNotFound(err)) return;
        throw new RemovalFailed([failureOf(path, err)]);
      }
      const seen = this.staged.get(path);
      if (seen && !st.isDirectory()) throw new RemovalFailed([changed(path, Object.assign(new Error('ELOOP'), { code: 'ELOOP' }))]);
      if (!st.isDirectory()) {
        try {
          fs.unlinkSync(at); // a stray file or symlink: the entry itself, never its target
          if (st.nlink === 1) this.freed += st.blocks * 512;
        } catch (err) {
          if (!isNotFound(err)) throw new RemovalFailed(withHints([failureOf(path, err)]));
        }
        return;
      }
      try {
        fd = fs.openSync(at, O_DIR);
      } catch (err) {
        throw new RemovalFailed([changed(path, err)]);
      }
      const top = fs.fstatSync(fd);
      const mnt = mountIdOfFd(fd);
      if (mnt !== mountIdOfFd(p.dir.fd)) throw new MountInside(path, [path], `${path} is a mount point; layergc never removes or crosses one`);
      if (top.ino !== st.ino || top.dev !== st.dev || (seen && (seen.ino !== top.ino || seen.dev !== top.dev))) {
        throw new RemovalFailed([{ path, code: 'ECHANGED', message: 'is no longer the directory that was staged for removal; it was left alone' }]);
      }
      const t = new TreeRemoval(path, fd, top.dev, mnt, this.signal);
      let all = await t.empty(fd, Buffer.alloc(0));
      // subtrees moved up for depth go now; then the top, which held them
      for (let i = 0; i < t.moved.length && !t.interrupted; i++) all = (await t.dirAt(fd, Buffer.from(t.moved[i]), Buffer.from(t.moved[i]))) && all;
      fs.closeSync(fd);
      fd = undefined;
      if (t.interrupted) {
        this.freed += t.freed;
        throw new RemovalInterrupted(path, this.signal?.reason);
      }
      if (all) {
        try {
          fs.rmdirSync(at);
          t.freed += top.blocks * 512;
        } catch (err) {
          if (!isNotFound(err)) t.failures.push(failureOf(path, err));
        }
      }
      this.freed += t.freed;
      if (t.failures.length) throw new RemovalFailed(withHints(t.failures));
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
      fs.closeSync(p.dir.fd);
    }
  }

  /**
   * Delete a directory tree by other means than unlinking its files (btrfs: `btrfs subvolume delete`),
   * with removeTree's checks: contained, no mount inside, what was staged is what goes. `by` runs only
   * in a real run and only when the path is still a directory.
   */
  async removeTreeWith(path: string, by: (path: string) => Promise<void>): Promise<void> {
    relParts(this.root, path);
    this.checkMounts(path);
    this.ops.push({ op: 'remove-tree', path });
    if (this.dryRun) return;
    const p = this.openParentIfThere(path);
    if (!p) return;
    let st: Stats;
    try {
      st = fs.lstatSync(atFd(p.dir.fd, p.name));
    } catch (err) {
      if (isNotFound(err)) return;
      throw new RemovalFailed([failureOf(path, err)]);
    } finally {
      fs.closeSync(p.dir.fd);
    }
    const seen = this.staged.get(path);
    if (!st.isDirectory() || (seen && (seen.ino !== st.ino || seen.dev !== st.dev))) {
      throw new RemovalFailed([{ path, code: 'ECHANGED', message: 'is no longer the directory that was staged for removal; it was left alone' }]);
    }
    faultPoint('remove-tree');
    await by(path);
  }

  /** Refuse a path that is, or holds, a mount point in the mount table as it is now. */
  private checkMounts(path: string): void {
    const table = this.mounts;
    if (!table.known) throw new MountInside(path, [], `${path}: /proc/self/mountinfo cannot be read, so layergc cannot tell whether a mount point is inside; nothing was removed`);
    const inside = table.under(path);
    if (inside.length) throw new MountInside(path, inside);
  }

  /** A directory whose mount id differs from its parent's is a mount point (a bind mount too). */
  private refuseMountPoint(parentFd: number, name: string, path: string): void {
    let fd: number;
    try {
      fd = fs.openSync(atFd(parentFd, name), O_DIR);
    } catch (err) {
      throw new RemovalFailed([changed(path, err)]);
    }
    try {
      if (mountIdOfFd(fd) !== mountIdOfFd(parentFd)) throw new MountInside(path, [path], `${path} is a mount point; layergc never removes or crosses one`);
    } finally {
      fs.closeSync(fd);
    }
  }
}

/** Why a directory could not be opened as one: it was swapped for a symlink or a file, or else the errno. */
function changed(path: string, err: unknown): RemoveFailure {
  const c = errCode(err);
  if (c === 'ELOOP' || c === 'ENOTDIR') return { path, code: 'ECHANGED', message: 'became a symlink or a file after it was planned; layergc never follows one, and left it alone' };
  return failureOf(path, err);
}

/** Directories open at once while a tree is walked; a deeper subtree is moved up under the top. */
const MAX_OPEN = 1000;

/** Entries removed between two turns of the event loop, where SIGINT and SIGTERM are seen. */
const YIELD_EVERY = 256;

interface Frame {
  fd: number;
  rel: Buffer;
  names: Dirent<Buffer>[];
  i: number;
  all: boolean;
  name: Buffer;
  blocks: number;
}

/**
 * One tree's removal, relative to open directories. Entry types come from readdir (d_type); each
 * non-directory is lstat'ed once, just before it goes, to count the blocks its removal frees (a
 * file's only when its last link goes), so no separate size walk is needed. Each directory is
 * opened with O_NOFOLLOW and must be on the top's device and mount.
 */
class TreeRemoval {
  readonly failures: RemoveFailure[] = [];
  freed = 0;
  /** Names (under the top) of subtrees moved up because they were too deep to hold open. */
  readonly moved: string[] = [];
  /** The open dir the process's cwd is in: names in it are resolved without a /proc lookup each. */
  private cwdFd = -1;
  /** The signal was seen between two files: the walk stopped there. */
  interrupted = false;
  private sinceYield = 0;
  constructor(
    private readonly top: string,
    private readonly topFd: number,
    private readonly dev: number,
    private readonly mnt: number | undefined,
    private readonly signal?: AbortSignal,
  ) {}

  /** Whether it is time for a turn of the event loop (where a signal is seen): every YIELD_EVERY entries. */
  private due(): boolean {
    return !!this.signal && ++this.sinceYield >= YIELD_EVERY;
  }

  /** A turn of the event loop, so a signal is seen between files; true when it came. */
  private async stopHere(): Promise<boolean> {
    this.sinceYield = 0;
    await new Promise((r) => setImmediate(r));
    this.interrupted = !!this.signal?.aborted;
    return this.interrupted;
  }

  private show(rel: Buffer): string {
    return rel.length ? `${this.top}/${bytesToDisplay(rel)}` : this.top;
  }

  private failure(rel: Buffer, f: RemoveFailure | Omit<RemoveFailure, 'path'>): RemoveFailure {
    return { ...f, path: this.show(rel), ...(rel.length ? { raw: Buffer.concat([Buffer.from(`${this.top}/`), rel]) } : {}) };
  }

  /** `name` inside the open dir `parentFd`: relative when the cwd is in it (chdir to /proc/self/fd/N is fchdir), else through /proc. */
  private at(parentFd: number, name: Buffer): Buffer {
    return parentFd === this.cwdFd ? name : atFd(parentFd, name);
  }

  /** Work inside the open dir `fd`: the cwd holds that inode, whatever is renamed or swapped later. */
  private enter(fd: number): void {
    if (this.cwdFd === fd) return;
    try {
      process.chdir(fdDir(fd));
      this.cwdFd = fd;
    } catch {
      this.cwdFd = -1; // names go through /proc/self/fd instead
    }
  }

  /** Remove the directory `name` inside the open `parentFd`, whole. */
  async dirAt(parentFd: number, name: Buffer, rel: Buffer): Promise<boolean> {
    const fd = this.open(parentFd, name, rel);
    if (fd === 'gone') return true;
    if (fd === null) return false;
    const st = fs.fstatSync(fd);
    const all = await this.empty(fd, rel);
    fs.closeSync(fd);
    return !this.interrupted && this.rmdir(parentFd, name, rel, all, st.blocks);
  }

  /** Remove everything inside the open directory `fd`, depth first; true when all of it went. */
  async empty(fd: number, rel: Buffer): Promise<boolean> {
    let names: Dirent<Buffer>[];
    try {
      names = fs.readdirSync(fdDir(fd), { withFileTypes: true, encoding: 'buffer' });
    } catch (err) {
      return this.fail(rel, err);
    }
    faultPoint('walk');
    const cwd = process.cwd();
    try {
      return await this.walk(fd, rel, names);
    } finally {
      this.cwdFd = -1;
      try {
        process.chdir(cwd);
      } catch {
        process.chdir('/');
      }
    }
  }

  private async walk(fd: number, rel: Buffer, names: Dirent<Buffer>[]): Promise<boolean> {
    const stack: Frame[] = [{ fd, rel, names, i: 0, all: true, name: Buffer.alloc(0), blocks: 0 }];
    const join = (f: Frame, name: Buffer) => (f.rel.length ? Buffer.concat([f.rel, SLASH, name]) : name);
    while (stack.length) {
      if (this.due() && (await this.stopHere())) {
        // the file under way is gone; the dirs opened below the top are closed, the top by its caller
        for (const open of stack.slice(1)) fs.closeSync(open.fd);
        return false;
      }
      const f = stack[stack.length - 1];
      this.enter(f.fd);
      if (f.i < f.names.length) {
        const e = f.names[f.i++];
        if (!e.isDirectory()) {
          const r = this.file(f.fd, e.name, f.rel);
          if (r !== 'dir') {
            f.all = r && f.all;
            continue;
          }
          // it became a directory since readdir looked
        }
        const childRel = join(f, e.name);
        if (stack.length >= MAX_OPEN) {
          f.all = this.moveUp(f.fd, e.name, childRel) && f.all;
          continue;
        }
        const cfd = this.open(f.fd, e.name, childRel);
        if (cfd === 'gone') continue;
        if (cfd === null) {
          f.all = false;
          continue;
        }
        let cnames: Dirent<Buffer>[];
        try {
          cnames = fs.readdirSync(fdDir(cfd), { withFileTypes: true, encoding: 'buffer' });
        } catch (err) {
          fs.closeSync(cfd);
          f.all = this.fail(childRel, err) && f.all;
          continue;
        }
        faultPoint('walk');
        stack.push({ fd: cfd, rel: childRel, names: cnames, i: 0, all: true, name: e.name, blocks: fs.fstatSync(cfd).blocks });
        continue;
      }
      stack.pop();
      if (!stack.length) return f.all; // the top: its caller removes it
      const parent = stack[stack.length - 1];
      this.enter(parent.fd);
      fs.closeSync(f.fd);
      parent.all = this.rmdir(parent.fd, f.name, f.rel, f.all, f.blocks) && parent.all;
    }
    return true;
  }

  /** Open a child directory for removal: never through a symlink, never onto another device or mount. */
  private open(parentFd: number, name: Buffer, rel: Buffer): number | null | 'gone' {
    let fd: number;
    try {
      fd = fs.openSync(this.at(parentFd, name), O_DIR);
    } catch (err) {
      if (errCode(err) === 'ENOENT') return 'gone';
      this.failures.push(this.failure(rel, changed('', err)));
      return null;
    }
    const st = fs.fstatSync(fd);
    if (st.dev !== this.dev) {
      fs.closeSync(fd);
      this.failures.push(this.failure(rel, { code: 'EXDEV', message: 'is on another filesystem (a mount point); layergc never crosses into one' }));
      return null;
    }
    if (mountIdOfFd(fd) !== this.mnt) {
      fs.closeSync(fd);
      this.failures.push(this.failure(rel, { code: 'EMOUNT', message: 'is a mount point (a bind mount); layergc never crosses one' }));
      return null;
    }
    return fd;
  }

  private rmdir(parentFd: number, name: Buffer, rel: Buffer, all: boolean, blocks: number): boolean {
    try {
      fs.rmdirSync(this.at(parentFd, name));
      this.freed += blocks * 512;
      return true;
    } catch (err) {
      // a child that could not go already names the cause; the parent dir is its consequence
      if (errCode(err) === 'ENOTEMPTY' && !all) return false;
      return this.fail(rel, err);
    }
  }

  /** Remove a non-directory `name` of the dir at `parentRel`; 'dir' when it turned out to be a directory. */
  file(parentFd: number, name: Buffer, parentRel: Buffer): boolean | 'dir' {
    const at = this.at(parentFd, name);
    try {
      const st = fs.lstatSync(at);
      if (st.isDirectory()) return 'dir';
      fs.unlinkSync(at);
      if (st.nlink === 1) this.freed += st.blocks * 512;
      return true;
    } catch (err) {
      return this.fail(parentRel.length ? Buffer.concat([parentRel, SLASH, name]) : name, err);
    }
  }

  /** A subtree too deep to hold every directory open: move it up under the top, by a short name. */
  private moveUp(parentFd: number, name: Buffer, rel: Buffer): boolean {
    const to = `.layergc-deep-${this.moved.length}`;
    try {
      fs.renameSync(this.at(parentFd, name), atFd(this.topFd, to));
      this.moved.push(to);
      return true;
    } catch (err) {
      return this.fail(rel, err);
    }
  }

  /** ENOENT is success: removal is idempotent, and something else removing it too is fine. */
  private fail(rel: Buffer, err: unknown): boolean {
    if (isNotFound(err)) return true;
    this.failures.push(this.failure(rel, failureOf('', err)));
    return false;
  }
}

const SLASH = Buffer.from('/');

function failureOf(path: string, err: unknown): RemoveFailure {
  const code = errCode(err) ?? 'ERROR';
  const message = fsCause(err) ?? (err instanceof Error ? err.message.replace(/^[A-Z]+: /, '').replace(/, \w+ '.*'$/s, '') : String(err));
  return { path, code, message };
}

const MAX_ATTR_LOOKUPS = 20;

/** EPERM on Linux as root almost always means an immutable or append-only attribute: say which. */
function withHints(failures: RemoveFailure[]): RemoveFailure[] {
  let lookups = 0;
  for (const f of failures) {
    if (f.code !== 'EPERM' || lookups >= MAX_ATTR_LOOKUPS) continue;
    lookups++;
    // a name that is not UTF-8 cannot be handed to lsattr; it is named, with no command
    const name = f.raw ? (Buffer.from(f.raw.toString('utf8')).equals(f.raw) ? f.raw.toString('utf8') : null) : f.path;
    if (name === null) continue;
    const parent = name.slice(0, name.lastIndexOf('/'));
    for (const [p, self] of [
      [name, true],
      [parent, false],
    ] as const) {
      const quoted = shellQuote(p);
      if (!quoted) continue;
      const attr = attrsOf(p);
      if (attr?.includes('i')) {
        f.hint = `${self ? 'it' : `its directory ${p}`} has the immutable attribute; clear it with: chattr -i ${quoted}`;
        break;
      }
      if (attr?.includes('a')) {
        f.hint = `${self ? 'it' : `its directory ${p}`} has the append-only attribute; clear it with: chattr -a ${quoted}`;
        break;
      }
    }
  }
  return failures;
}

/** The ext2-style attribute letters of a path (lsattr), or null when they cannot be read. */
export function attrsOf(path: string): string | null {
  const r = spawnSync('lsattr', ['-d', '--', path], { encoding: 'utf8' });
  if (r.status !== 0 || !r.stdout) return null;
  return r.stdout.split(/\s+/)[0] ?? null;
}
