// What deleting a tree frees: an lstat walk that counts disk blocks, each inode once, and never
// crosses into another filesystem or a mount point (moby#38848: du over overlay mounts lies).
import type { Stats } from 'node:fs';
import { fs } from './fs.js';
import type { MountTable } from './mounts.js';

export interface TreeSize {
  bytes: number;
  files: number;
  /** Newest mtime or ctime seen anywhere in the tree: how recently something wrote here. */
  newestMs: number;
  /** Mount points found inside the tree: such a tree is never removed. */
  mountsInside: string[];
}

/**
 * Counts blocks shared through hard links only when every link to the inode lies in what was
 * measured: deleting one name of a file still linked elsewhere frees nothing.
 */
export class SizeAccounting {
  private readonly shared = new Map<string, { blocks: number; nlink: number; seen: number }>();
  /** The walk changed the cwd, to be put back. */
  private moved = false;
  /** Every root measured so far: `layergc df` walks the rest of the data root around them. */
  readonly measured = new Set<string>();

  /** With `enabled` false nothing is walked: only mount points are found, from the mount table. */
  constructor(
    private readonly mounts: MountTable,
    private readonly enabled = true,
  ) {}

  measure(root: string): TreeSize {
    const out: TreeSize = { bytes: 0, files: 0, newestMs: 0, mountsInside: [] };
    this.measured.add(root);
    if (!this.enabled) {
      out.mountsInside = this.mounts.under(root);
      return out;
    }
    let rootSt;
    try {
      rootSt = fs.lstatSync(root, { bigint: false });
    } catch {
      return out;
    }
    const dev = rootSt.dev;
    // looked up per entry only when the table has mount points below root (hashing every path costs)
    const mountsBelow = this.mounts.under(root).length > 0;
    if (this.mounts.isMountPoint(root)) out.mountsInside.push(root);
    this.count(rootSt, out);
    if (!rootSt.isDirectory()) return out;
    // Each dir's entries are lstat'ed by name from inside it, as du's fstatat(dirfd, name) does: a
    // one-component lookup instead of the whole path each time (a third less system time). The cwd
    // is put back after; without one to put back, the same walk uses whole paths.
    let cwd: string | null = null;
    try {
      cwd = process.cwd();
    } catch {
      /* the cwd was deleted: whole paths */
    }
    const stack: { path: string; st: Stats }[] = [{ path: root, st: rootSt }];
    try {
      while (stack.length) {
        const d = stack.pop()!;
        const base = cwd !== null && this.enter(d.path, d.st) ? '' : `${d.path}/`;
        let names: string[];
        try {
          names = fs.readdirSync(base ? d.path : '.') as string[];
        } catch {
          continue;
        }
        for (const n of names) {
          let st: Stats | undefined;
          try {
            st = fs.lstatSync(`${base}${n}`, { throwIfNoEntry: false });
          } catch {
            continue;
          }
          if (!st) continue;
          const p = `${d.path}/${n}`;
          if (st.dev !== dev || (mountsBelow && this.mounts.isMountPoint(p))) {
            out.mountsInside.push(p);
            continue;
          }
          this.count(st, out);
          if (st.isDirectory()) stack.push({ path: p, st });
        }
      }
    } finally {
      if (cwd !== null && this.moved) {
        this.moved = false;
        try {
          process.chdir(cwd);
        } catch {
          process.chdir('/');
        }
      }
    }
    return out;
  }

  private count(st: Stats, out: TreeSize): void {
    out.files++;
    out.newestMs = Math.max(out.newestMs, st.mtimeMs, st.ctimeMs);
    const blocks = st.blocks * 512;
    if (!st.isDirectory() && st.nlink > 1) {
      const key = `${st.dev}:${st.ino}`;
      let e = this.shared.get(key);
      if (!e) this.shared.set(key, (e = { blocks, nlink: st.nlink, seen: 0 }));
      if (++e.seen === e.nlink) out.bytes += e.blocks;
    } else out.bytes += blocks;
  }

  /**
   * chdir into the directory `path` lstat'ed as `st`; false (and the walk uses whole paths) when it
   * cannot, or when what chdir reached is not that directory (swapped for a symlink since: the walk
   * never measures what a link leads to).
   */
  private enter(path: string, st: Stats): boolean {
    try {
      process.chdir(path); // in a worker thread chdir throws: whole paths there
      this.moved = true;
      const here = fs.lstatSync('.');
      return here.dev === st.dev && here.ino === st.ino;
    } catch {
      return false;
    }
  }

  /** Blocks of hard-linked files some of whose links were never measured (outside, or behind a mount). */
  unfinishedBytes(): number {
    let bytes = 0;
    for (const e of this.shared.values()) if (e.seen < e.nlink) bytes += e.blocks;
    return bytes;
  }
}
