// Containment: every path layergc acts on lies inside the data root and is reached without
// passing through a symlink.
import { lstatSync } from 'node:fs';
import { posix } from 'node:path';

export class OutsideDataRoot extends Error {
  constructor(readonly path: string, reason: string) {
    super(`${path}: ${reason}`);
  }
}

/**
 * Throws unless `path` is strictly inside `root` and every directory between them is a real
 * directory (not a symlink). The last component itself may be anything; callers lstat it.
 */
export function assertContained(root: string, path: string): void {
  const norm = posix.normalize(path);
  if (norm !== path || !path.startsWith(`${root}/`) || path.length <= root.length + 1) {
    throw new OutsideDataRoot(path, `is not inside the data root ${root}`);
  }
  const rel = path.slice(root.length + 1).split('/');
  let cur = root;
  for (const part of rel.slice(0, -1)) {
    if (part === '' || part === '.' || part === '..') throw new OutsideDataRoot(path, 'has an empty or relative component');
    cur = `${cur}/${part}`;
    let st;
    try {
      st = lstatSync(cur);
    } catch {
      throw new OutsideDataRoot(path, `${cur} does not exist`);
    }
    if (st.isSymbolicLink()) throw new OutsideDataRoot(path, `${cur} is a symlink; layergc never follows one`);
    if (!st.isDirectory()) throw new OutsideDataRoot(path, `${cur} is not a directory`);
  }
}
