// Writing Docker's metadata the way Docker writes it (atomicwriter.WriteFile): a temporary file in
// the same directory, fsync, rename over the target, fsync of the directory. A crash leaves the old
// file or the new one, never a torn one. The previous version is kept beside it (a hard link, so
// it costs no copy) under a name the caller gives. Everything happens inside the directory opened
// with O_NOFOLLOW from the data root down (contain.ts), so a symlink swapped in on the way is never
// followed; symlinks (overlay2 l/ links) are created the same way.
import { closeSync, constants, fchmodSync, fchownSync, fsyncSync, linkSync, openSync, readdirSync, renameSync, symlinkSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { atFd, openParent } from './contain.js';
import { errCode } from './fs.js';
import { faultPoint } from './fault.js';

export interface WriteOp {
  op: 'write' | 'symlink';
  path: string;
  previous?: string;
}

/** Run `fn` with the directory that holds `path` open; fsync it afterwards so the new entry is durable. */
function inParent<T>(root: string, path: string, fn: (fd: number, name: string) => T): T {
  const { dir, name } = openParent(root, path);
  try {
    const out = fn(dir.fd, name);
    fsyncSync(dir.fd);
    return out;
  } finally {
    closeSync(dir.fd);
  }
}

export class AtomicWriter {
  readonly ops: WriteOp[] = [];
  constructor(
    readonly root: string,
    readonly dryRun: boolean,
  ) {}

  /**
   * Replace `path` with `data`. With `keepAs` (a name in the same directory), an existing regular
   * file is first linked to that name, so the old version stays whole beside the new one.
   */
  async write(path: string, data: string | Buffer, opts: { mode?: number; keepAs?: string } = {}): Promise<void> {
    const keepName = opts.keepAs ? opts.keepAs.slice(opts.keepAs.lastIndexOf('/') + 1) : undefined;
    if (opts.keepAs && opts.keepAs !== `${path.slice(0, path.lastIndexOf('/'))}/${keepName}`) throw new Error(`${opts.keepAs}: the previous version is kept in the same directory`);
    if (this.dryRun) {
      inParent(this.root, path, () => undefined);
      this.ops.push({ op: 'write', path, previous: opts.keepAs });
      return;
    }
    this.ops.push({ op: 'write', path, previous: opts.keepAs });
    inParent(this.root, path, (dirFd, name) => {
      const prefix = `.tmp-${name}layergc-`;
      // a temp file of a run killed before its rename is never used: it goes now
      for (const n of readdirSync(`/proc/self/fd/${dirFd}`)) if (n.startsWith(prefix)) unlinkSync(atFd(dirFd, n));
      const tmp = `${prefix}${randomBytes(6).toString('hex')}`;
      const fd = openSync(atFd(dirFd, tmp), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, opts.mode ?? 0o600);
      try {
        const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
        for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      faultPoint('atomic-after-temp');
      try {
        if (keepName) {
          try {
            linkSync(atFd(dirFd, name), atFd(dirFd, keepName));
          } catch (err) {
            if (errCode(err) !== 'ENOENT') throw err; // nothing to keep: the file was missing
          }
        }
        renameSync(atFd(dirFd, tmp), atFd(dirFd, name));
      } catch (err) {
        try {
          unlinkSync(atFd(dirFd, tmp));
        } catch {
          /* gone */
        }
        throw err;
      }
    });
    faultPoint('atomic-after-rename');
  }

  /** Create the symlink `path` -> `target` (the link itself; nothing is followed). */
  async symlink(target: string, path: string): Promise<void> {
    this.ops.push({ op: 'symlink', path });
    inParent(this.root, path, (dirFd, name) => {
      if (!this.dryRun) symlinkSync(target, atFd(dirFd, name));
    });
  }
}

export interface ReplaceVerifiedOptions {
  /** the previous file is hard-linked to this name (same directory) before the rename; it must not exist */
  keepAs: string;
  mode: number;
  uid: number;
  gid: number;
  /** reads the temp file back (its path given) and throws to refuse it; runs before anything else changes */
  check: (tempPath: string) => Promise<void>;
  /** runs after the rename; when it throws, the previous file is renamed back (its kept link goes) and the error passes on */
  afterRename?: () => Promise<void>;
}

/**
 * Replace `path` with `data` only once `check` accepted the file as written on disk: a temp file
 * created O_EXCL in the same directory, fsynced, read back by `check`, then the old file linked to
 * `keepAs`, the temp renamed over `path`, and the directory fsynced. A refusal or a crash before the
 * rename leaves `path` as it was (the temp goes).
 */
export async function replaceVerified(root: string, path: string, data: Buffer, o: ReplaceVerifiedOptions): Promise<void> {
  const keepName = o.keepAs.slice(o.keepAs.lastIndexOf('/') + 1);
  if (o.keepAs !== `${path.slice(0, path.lastIndexOf('/'))}/${keepName}`) throw new Error(`${o.keepAs}: the previous version is kept in the same directory`);
  const { dir, name } = openParent(root, path);
  const tmp = `.tmp-${name}layergc-${randomBytes(6).toString('hex')}`;
  let renamed = false;
  try {
    const fd = openSync(atFd(dir.fd, tmp), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, o.mode);
    try {
      for (let off = 0; off < data.length; ) off += writeSync(fd, data, off);
      fchownSync(fd, o.uid, o.gid);
      fchmodSync(fd, o.mode);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    faultPoint('atomic-after-temp');
    await o.check(`/proc/self/fd/${dir.fd}/${tmp}`);
    linkSync(atFd(dir.fd, name), atFd(dir.fd, keepName)); // EEXIST: never over an earlier backup
    fsyncSync(dir.fd);
    renameSync(atFd(dir.fd, tmp), atFd(dir.fd, name));
    renamed = true;
    fsyncSync(dir.fd);
    faultPoint('atomic-after-rename-checked');
    try {
      await o.afterRename?.();
    } catch (err) {
      renameSync(atFd(dir.fd, keepName), atFd(dir.fd, name));
      fsyncSync(dir.fd);
      throw err;
    }
  } finally {
    if (!renamed)
      try {
        unlinkSync(atFd(dir.fd, tmp));
      } catch {
        /* never made */
      }
    closeSync(dir.fd);
  }
  faultPoint('atomic-after-rename');
}

/**
 * Rename `from` over `to` (one directory), then run `afterRename`; when it throws, both go back:
 * the moved file to `from`, the replaced one (kept by a temp link meanwhile) to `to`.
 */
export async function renameOverChecked(root: string, from: string, to: string, afterRename: () => Promise<void>): Promise<void> {
  if (from.slice(0, from.lastIndexOf('/')) !== to.slice(0, to.lastIndexOf('/'))) throw new Error(`${from} and ${to} are not in one directory`);
  const { dir, name } = openParent(root, from);
  const toName = to.slice(to.lastIndexOf('/') + 1);
  const keep = `.tmp-${toName}layergc-replaced-${randomBytes(6).toString('hex')}`;
  try {
    linkSync(atFd(dir.fd, toName), atFd(dir.fd, keep));
    renameSync(atFd(dir.fd, name), atFd(dir.fd, toName));
    fsyncSync(dir.fd);
    faultPoint('atomic-after-rename-checked');
    try {
      await afterRename();
    } catch (err) {
      linkSync(atFd(dir.fd, toName), atFd(dir.fd, name));
      renameSync(atFd(dir.fd, keep), atFd(dir.fd, toName));
      fsyncSync(dir.fd);
      throw err;
    }
    unlinkSync(atFd(dir.fd, keep));
    fsyncSync(dir.fd);
  } finally {
    closeSync(dir.fd);
  }
}

/** Rename `from` over `to`, both in one directory opened from `root` down; the directory is fsynced. */
export function renameInDir(root: string, from: string, to: string): void {
  if (from.slice(0, from.lastIndexOf('/')) !== to.slice(0, to.lastIndexOf('/'))) throw new Error(`${from} and ${to} are not in one directory`);
  const { dir, name } = openParent(root, from);
  try {
    renameSync(atFd(dir.fd, name), atFd(dir.fd, to.slice(to.lastIndexOf('/') + 1)));
    fsyncSync(dir.fd);
  } finally {
    closeSync(dir.fd);
  }
}
