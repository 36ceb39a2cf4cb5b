// Containment: every path layergc acts on lies inside the data root and is reached without
// passing through a symlink. The check is made on what is opened, not on a path string: each
// directory from the data root down is opened with O_NOFOLLOW relative to the one before (through
// /proc/self/fd/<fd>/<name>, which the kernel resolves to the opened inode), so a component swapped
// for a symlink after a check is refused, never followed.
import { closeSync, constants, fstatSync, lstatSync, openSync } from 'node:fs';
import { posix } from 'node:path';
import { errCode } from './fs.js';

function lstatOrNull(p: Buffer) {
  try {
    return lstatSync(p);
  } catch {
    return null;
  }
}

export class OutsideDataRoot extends Error {
  /** `missing`: a directory on the way does not exist (nothing there to act on). */
  constructor(
    readonly path: string,
    reason: string,
    readonly missing = false,
  ) {
    super(`${path}: ${reason}`);
  }
}

/** Flags for a directory that is acted on: never a symlink, never a file, never inherited. */
export const O_DIR = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW; // libuv adds O_CLOEXEC itself

const prefixes = new Map<number, Buffer>();
/** `/proc/self/fd/<fd>/<name>`: a name resolved inside the directory held open as fd. */
export function atFd(fd: number, name: string | Buffer): Buffer {
  let p = prefixes.get(fd);
  if (!p) prefixes.set(fd, (p = Buffer.from(`/proc/self/fd/${fd}/`)));
  return Buffer.concat([p, Buffer.isBuffer(name) ? name : Buffer.from(name)]);
}
export const fdDir = (fd: number): string => `/proc/self/fd/${fd}`;

/** The components of `path` below `root`; throws unless it is strictly inside, in normal form. */
export function relParts(root: string, path: string): string[] {
  if (!path.startsWith(`${root}/`) || path.length <= root.length + 1 || posix.normalize(path) !== path) {
    throw new OutsideDataRoot(path, `is not inside the data root ${root}`);
  }
  const parts = path.slice(root.length + 1).split('/');
  for (const part of parts) {
    // normalize keeps a trailing slash; '' also stands for '//' and a trailing '/'
    if (part === '' || part === '.' || part === '..') throw new OutsideDataRoot(path, 'has an empty or relative component (or a trailing slash)');
  }
  return parts;
}

/** Throws unless `path` is strictly inside `root` and every directory between them is a real one. */
export function assertContained(root: string, path: string): void {
  closeSync(openParent(root, path).dir.fd);
}

/** A directory held open: later renames or mounts do not change what it is. */
export interface PinnedDir {
  fd: number;
  path: string;
  dev: number;
  ino: number;
}

/**
 * Open the directory that holds `path`, walking down from `root` one component at a time with
 * O_NOFOLLOW. Returns it open (the caller closes `dir.fd`) and the last component's name.
 */
export function openParent(root: string, path: string): { dir: PinnedDir; name: string } {
  const parts = relParts(root, path);
  let fd: number;
  try {
    fd = openSync(root, O_DIR);
  } catch (err) {
    throw new OutsideDataRoot(path, `the data root ${root} cannot be opened as a directory (${errCode(err) ?? err})`);
  }
  let cur = root;
  for (const part of parts.slice(0, -1)) {
    cur = `${cur}/${part}`;
    let next: number;
    try {
      next = openSync(atFd(fd, part), O_DIR);
    } catch (err) {
      let c = errCode(err);
      if (c === 'ENOTDIR' && lstatOrNull(atFd(fd, part))?.isSymbolicLink()) c = 'ELOOP'; // O_DIRECTORY answers first
      closeSync(fd);
      throw new OutsideDataRoot(
        path,
        c === 'ELOOP'
          ? `${cur} is a symlink; layergc never follows one`
          : c === 'ENOTDIR'
            ? `${cur} is not a directory`
            : c === 'ENOENT'
              ? `${cur} does not exist`
              : `${cur} cannot be opened (${c ?? err})`,
        c === 'ENOENT',
      );
    }
    closeSync(fd);
    fd = next;
  }
  const st = fstatSync(fd);
  return { dir: { fd, path: cur, dev: st.dev, ino: st.ino }, name: parts[parts.length - 1] };
}
