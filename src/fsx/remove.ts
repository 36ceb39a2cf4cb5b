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
    const t = new TreeRemoval(st.dev);
    t.dir(path);
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
  constructor(private readonly dev: number) {}

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
      all = (e.isDirectory() ? this.dir(child) : this.file(child)) && all;
    }
    try {
      fs.rmdirSync(path);
      this.freed += st.blocks * 512;
      return true;
    } catch (err) {
      // a child that could not go already names the cause; the parent dir is its consequence
      if (!all && errCode(err) === 'ENOTEMPTY') return false;
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
