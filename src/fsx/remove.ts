// The only code in layergc that deletes or renames. Every call is checked for containment in the
// data root and for mounts; with dryRun it checks everything and changes nothing.
import { spawnSync } from 'node:child_process';
import type { Dirent } from 'node:fs';
import { fs, errCode, isNotFound } from './fs.js';
import { assertContained } from './contain.js';
import type { MountTable } from './mounts.js';
import { faultPoint } from './fault.js';

export interface RemoveFailure {
  path: string;
  code: string;
  message: string;
  /** What to do about it, when layergc can tell (immutable or append-only attribute). */
  hint?: string;
}

export class RemovalFailed extends Error {
  constructor(readonly failures: RemoveFailure[]) {
    super(failures.map((f) => `${f.path}: ${f.message}${f.hint ? ` (${f.hint})` : ''}`).join('; '));
  }
}

export class MountInside extends Error {
  constructor(readonly path: string, readonly mounts: string[]) {
    super(`${path} has ${mounts.length === 1 ? 'a mount point' : 'mount points'} inside (${mounts.join(', ')}); layergc never crosses a mount point`);
  }
}

export interface RemoveOp { op: 'rename' | 'unlink' | 'remove-tree'; path: string; to?: string }

export class Remover {
  /** What was done, or with dryRun what would have been. */
  readonly ops: RemoveOp[] = [];
  /** Bytes the removals so far freed: blocks of what went, counted as it went. */
  freed = 0;

  constructor(readonly root: string, readonly mounts: MountTable, readonly dryRun: boolean) {}

  async rename(from: string, to: string): Promise<void> {
    assertContained(this.root, from);
    assertContained(this.root, to);
    this.checkMounts(from);
    this.ops.push({ op: 'rename', path: from, to });
    if (this.dryRun) return;
    faultPoint('before-rename');
    try {
      await fs.rename(from, to);
    } catch (err) {
      throw new RemovalFailed(withHints([failureOf(from, err)])); // an immutable dir says so here too
    }
    faultPoint('after-rename');
  }

  /** Remove one non-directory entry (a file or a symlink itself, never its target). */
  async unlink(path: string): Promise<void> {
    assertContained(this.root, path);
    this.ops.push({ op: 'unlink', path });
    if (this.dryRun) return;
    try {
      const st = await fs.lstat(path);
      await fs.unlink(path);
      if (st.nlink === 1) this.freed += st.blocks * 512;
    } catch (err) {
      if (isNotFound(err)) return;
      throw new RemovalFailed([failureOf(path, err)]);
    }
  }

  /**
   * Delete a tree without following symlinks or leaving its filesystem. It goes on past a file it
   * cannot delete, so one immutable file keeps only itself and its parent dirs, and names it.
   */
  async removeTree(path: string): Promise<void> {
    assertContained(this.root, path);
    this.checkMounts(path);
    this.ops.push({ op: 'remove-tree', path });
    if (this.dryRun) return;
    let st;
    try {
      st = fs.lstatSync(path);
    } catch (err) {
      if (isNotFound(err)) return;
      throw new RemovalFailed([failureOf(path, err)]);
    }
    faultPoint('remove-tree');
    const t = new TreeRemoval(st.dev, path);
    t.dir(path);
    // subtrees moved up for depth go now; then the top, which held them
    for (let i = 0; i < t.moved.length; i++) t.dir(t.moved[i]);
    if (t.moved.length) t.dir(path);
    this.freed += t.freed;
    if (t.failures.length) throw new RemovalFailed(withHints(t.failures));
  }

  private checkMounts(path: string): void {
    const inside = this.mounts.under(path);
    if (inside.length) throw new MountInside(path, inside);
  }
}

/**
 * One tree's removal. Entry types come from readdir (d_type), and each entry is lstat'ed once,
 * just before it goes: that keeps it on one filesystem and counts the blocks its removal frees (a
 * file's only when its last link goes), so no separate size walk is needed.
 */
class TreeRemoval {
  readonly failures: RemoveFailure[] = [];
  freed = 0;
  /** Directories moved up to the top because their paths grew too long to name. */
  readonly moved: string[] = [];
  constructor(private readonly dev: number, private readonly top: string) {}

  dir(path: string): boolean {
    let st;
    try {
      st = fs.lstatSync(path);
    } catch (err) {
      return this.fail(path, err);
    }
    if (!st.isDirectory()) return this.file(path);
    if (st.dev !== this.dev) {
      this.failures.push({ path, code: 'EXDEV', message: 'is on another filesystem; layergc never crosses into one' });
      return false;
    }
    let entries: Dirent[] = [];
    try {
      entries = fs.readdirSync(path, { withFileTypes: true });
    } catch (err) {
      return this.fail(path, err);
    }
    let all = true;
    for (const e of entries) {
      const child = `${path}/${e.name}`;
      if (e.isDirectory() && child.length > DEEP_PATH) this.moveUp(path, e.name);
      else all = (e.isDirectory() ? this.dir(child) : this.file(child)) && all;
    }
    try {
      fs.rmdirSync(path);
      this.freed += st.blocks * 512;
      return true;
    } catch (err) {
      // a child that could not go already names the cause; the parent dir is its consequence (and
      // the top still holds the subtrees moved up into it, which go next)
      if (errCode(err) === 'ENOTEMPTY' && (!all || (path === this.top && this.moved.length))) return false;
      return this.fail(path, err);
    }
  }

  file(path: string): boolean {
    try {
      const st = fs.lstatSync(path);
      if (st.isDirectory()) return this.dir(path); // it became a directory since readdir looked
      fs.unlinkSync(path);
      if (st.nlink === 1) this.freed += st.blocks * 512;
      return true;
    } catch (err) {
      return this.fail(path, err);
    }
  }

  /**
   * A tree deeper than PATH_MAX cannot be named whole (moby's RemoveAll works relative to open
   * dirs). Move such a subtree up under the top, by a short name inside the same staged tree, and
   * remove it from there. Names are relative to `parent`, which is short enough to chdir into.
   */
  private moveUp(parent: string, name: string): boolean {
    const to = `${this.top}/.layergc-deep-${this.moved.length}`;
    const cwd = process.cwd();
    try {
      process.chdir(parent);
      fs.renameSync(name, to);
      this.moved.push(to);
      return true;
    } catch (err) {
      return this.fail(`${parent}/${name}`, err);
    } finally {
      process.chdir(cwd);
    }
  }

  /** ENOENT is success: removal is idempotent, and something else removing it too is fine. */
  private fail(path: string, err: unknown): boolean {
    if (isNotFound(err)) return true;
    this.failures.push(failureOf(path, err));
    return false;
  }
}

function failureOf(path: string, err: unknown): RemoveFailure {
  const code = errCode(err) ?? 'ERROR';
  const message = err instanceof Error ? err.message.replace(/^[A-Z]+: /, '').replace(/, \w+ '.*'$/, '') : String(err);
  return { path, code, message };
}

const MAX_ATTR_LOOKUPS = 20;
/** Paths longer than this are moved up before they reach PATH_MAX (4096). */
const DEEP_PATH = 3000;

/** EPERM on Linux as root almost always means an immutable or append-only attribute: say which. */
function withHints(failures: RemoveFailure[]): RemoveFailure[] {
  let lookups = 0;
  for (const f of failures) {
    if (f.code !== 'EPERM' || lookups >= MAX_ATTR_LOOKUPS) continue;
    lookups++;
    const parent = f.path.slice(0, f.path.lastIndexOf('/'));
    for (const [p, self] of [[f.path, true], [parent, false]] as const) {
      const attr = attrsOf(p);
      if (attr?.includes('i')) {
        f.hint = `${self ? 'it' : `its directory ${p}`} has the immutable attribute; clear it with: chattr -i '${p}'`;
        break;
      }
      if (attr?.includes('a')) {
        f.hint = `${self ? 'it' : `its directory ${p}`} has the append-only attribute; clear it with: chattr -a '${p}'`;
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
