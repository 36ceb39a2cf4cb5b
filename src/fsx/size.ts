// What deleting a tree frees: an lstat walk that counts disk blocks, each inode once, and never
// crosses into another filesystem or a mount point (moby#38848: du over overlay mounts lies).
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
  /** Every root measured so far: `layergc df` walks the rest of the data root around them. */
  readonly measured = new Set<string>();

  /** With `enabled` false nothing is walked: only mount points are found, from the mount table. */
  constructor(private readonly mounts: MountTable, private readonly enabled = true) {}

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
    const stack: string[] = [root];
    let first = true;
    while (stack.length) {
      const p = stack.pop()!;
      let st;
      try {
        st = first ? rootSt : fs.lstatSync(p, { throwIfNoEntry: false });
      } catch {
        continue;
      }
      first = false;
      if (!st) continue;
      if (st.dev !== dev || (mountsBelow && p !== root && this.mounts.isMountPoint(p))) {
        out.mountsInside.push(p);
        continue;
      }
      out.files++;
      out.newestMs = Math.max(out.newestMs, st.mtimeMs, st.ctimeMs);
      const blocks = st.blocks * 512;
      if (!st.isDirectory() && st.nlink > 1) {
        const key = `${st.dev}:${st.ino}`;
        let e = this.shared.get(key);
        if (!e) this.shared.set(key, (e = { blocks, nlink: st.nlink, seen: 0 }));
        if (++e.seen === e.nlink) out.bytes += e.blocks;
      } else out.bytes += blocks;
      if (st.isDirectory()) {
        let names: string[];
        try {
          names = fs.readdirSync(p) as string[];
        } catch {
          continue;
        }
        for (const n of names) stack.push(`${p}/${n}`);
      }
    }
    return out;
  }

  /** Blocks of hard-linked files some of whose links were never measured (outside, or behind a mount). */
  unfinishedBytes(): number {
    let bytes = 0;
    for (const e of this.shared.values()) if (e.seen < e.nlink) bytes += e.blocks;
    return bytes;
  }
}
