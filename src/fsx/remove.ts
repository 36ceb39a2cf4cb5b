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

  constructor(readonly root: string, readonly mounts: MountTable, readonly dryRun: boolean) {}

  async rename(from: string, to: string): Promise<void> {
    assertContained(this.root, from);
    assertContained(this.root, to);
    this.checkMounts(from);
    this.ops.push({ op: 'rename', path: from, to });
    if (this.dryRun) return;
    faultPoint('before-rename');
    await fs.rename(from, to);
    faultPoint('after-rename');
  }

  /** Remove one non-directory entry (a file or a symlink itself, never its target). */
  async unlink(path: string): Promise<void> {
    assertContained(this.root, path);
    this.ops.push({ op: 'unlink', path });
    if (this.dryRun) return;
    try {
      await fs.unlink(path);
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
    const failures: RemoveFailure[] = [];
    removeDirSync(path, st.dev, failures);
    if (failures.length) throw new RemovalFailed(withHints(failures));
  }

  private checkMounts(path: string): void {
    const inside = this.mounts.under(path);
    if (inside.length) throw new MountInside(path, inside);
  }
}

/** Remove a directory tree. Entry types come from readdir (d_type): only directories are lstat'ed. */
function removeDirSync(path: string, dev: number, failures: RemoveFailure[]): boolean {
  let st;
  try {
    st = fs.lstatSync(path);
  } catch (err) {
    if (isNotFound(err)) return true;
    failures.push(failureOf(path, err));
    return false;
  }
  if (!st.isDirectory()) return unlinkSync(path, dev, failures);
  if (st.dev !== dev) {
    failures.push({ path, code: 'EXDEV', message: 'is on another filesystem; layergc never crosses into one' });
    return false;
  }
  let entries: Dirent[] = [];
  try {
    entries = fs.readdirSync(path, { withFileTypes: true });
  } catch (err) {
    if (isNotFound(err)) return true;
    failures.push(failureOf(path, err));
    return false;
  }
  let all = true;
  for (const e of entries) {
    const child = `${path}/${e.name}`;
    all = (e.isDirectory() ? removeDirSync(child, dev, failures) : unlinkSync(child, dev, failures)) && all;
  }
  try {
    fs.rmdirSync(path);
    return true;
  } catch (err) {
    if (isNotFound(err)) return true;
    // a child that could not go already names the cause; the parent dir is its consequence
    if (all || errCode(err) !== 'ENOTEMPTY') failures.push(failureOf(path, err));
    return false;
  }
}

function unlinkSync(path: string, dev: number, failures: RemoveFailure[]): boolean {
  try {
    fs.unlinkSync(path);
    return true;
  } catch (err) {
    if (isNotFound(err)) return true;
    // it became a directory since readdir looked: take the directory path
    if (errCode(err) === 'EISDIR') return removeDirSync(path, dev, failures);
    failures.push(failureOf(path, err));
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
