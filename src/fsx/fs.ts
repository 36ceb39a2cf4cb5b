// The one filesystem handle everything in layergc uses. Tests replace a member to inject a
// fault (EPERM, EBUSY, ENOSPC) without touching the real disk; nothing else imports node:fs
// for writes.
import * as fsp from 'node:fs/promises';
import * as fsSync from 'node:fs';
import { injectedWriteError, writeFaultsOn } from './fault.js';

export const fs = {
  lstat: fsp.lstat,
  stat: fsp.stat,
  readdir: fsp.readdir,
  readFile: fsp.readFile,
  readlink: fsp.readlink,
  realpath: fsp.realpath,
  open: fsp.open,
  mkdir: fsp.mkdir,
  writeFile: fsp.writeFile,
  appendFile: fsp.appendFile,
  rename: fsp.rename,
  unlink: fsp.unlink,
  rmdir: fsp.rmdir,
  rm: fsp.rm,
  link: fsp.link,
  symlink: fsp.symlink,
  lstatSync: fsSync.lstatSync,
  readdirSync: fsSync.readdirSync,
  unlinkSync: fsSync.unlinkSync,
  renameSync: fsSync.renameSync,
  rmdirSync: fsSync.rmdirSync,
  openSync: fsSync.openSync,
  closeSync: fsSync.closeSync,
  fstatSync: fsSync.fstatSync,
};

export type Fs = typeof fs;

/** Opened for writing (flags as numbers or as 'w', 'a', 'wx', 'r+'...). */
const writes = (flags: unknown) => (typeof flags === 'number' ? (flags & (fsSync.constants.O_WRONLY | fsSync.constants.O_RDWR)) !== 0 : typeof flags === 'string' && flags !== 'r');

/** The test-only write faults of fault.ts, put in front of every write this handle makes. */
function withWriteFaults(f: Fs): void {
  const wrap =
    <A extends unknown[], R>(op: string, fn: (...a: A) => R) =>
    (...a: A): R => {
      injectedWriteError(a[0], op);
      return fn(...a);
    };
  const { open, writeFile } = f;
  f.open = (async (path: fsSync.PathLike, flags?: string | number, mode?: fsSync.Mode) => {
    if (!writes(flags)) return open(path, flags, mode);
    injectedWriteError(path, 'open');
    const fh = await open(path, flags, mode);
    for (const m of ['write', 'writeFile', 'appendFile'] as const) {
      const real = fh[m].bind(fh) as (...a: unknown[]) => Promise<unknown>;
      (fh as unknown as Record<string, unknown>)[m] = async (...a: unknown[]) => {
        injectedWriteError(path, 'write');
        return real(...a);
      };
    }
    return fh;
  }) as Fs['open'];
  f.writeFile = (async (path: fsSync.PathLike, data: string, opts?: fsSync.WriteFileOptions) => {
    injectedWriteError(path, 'open');
    try {
      injectedWriteError(path, 'write');
    } catch (err) {
      await writeFile(path, '', opts); // the file is made, then the write fails, as on a real full disk
      throw err;
    }
    return writeFile(path, data, opts);
  }) as Fs['writeFile'];
  f.link = wrap('link', f.link);
  f.rename = wrap('rename', f.rename);
  f.renameSync = wrap('rename', f.renameSync);
  f.unlink = wrap('unlink', f.unlink);
  f.unlinkSync = wrap('unlink', f.unlinkSync);
  f.rmdir = wrap('rmdir', f.rmdir);
  f.rmdirSync = wrap('rmdir', f.rmdirSync);
  f.mkdir = wrap('mkdir', f.mkdir) as Fs['mkdir'];
}
if (writeFaultsOn) withWriteFaults(fs);

/** errno code of an error thrown by node:fs, or undefined. */
export function errCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

/**
 * mkdir -p that reports the real errno: node's recursive mkdir says ENOENT on a read-only
 * filesystem (EROFS), so each missing component is made on its own.
 */
export async function mkdirs(path: string, mode: number): Promise<void> {
  const missing: string[] = [];
  for (let p = path; p && p !== '/'; p = p.slice(0, p.lastIndexOf('/'))) {
    try {
      await fs.lstat(p);
      break;
    } catch (err) {
      if (errCode(err) !== 'ENOENT') throw err;
      missing.unshift(p);
    }
  }
  for (const p of missing) {
    try {
      await fs.mkdir(p, { mode });
    } catch (err) {
      if (errCode(err) !== 'EEXIST') throw err;
    }
  }
}

export function isNotFound(err: unknown): boolean {
  const c = errCode(err);
  return c === 'ENOENT' || c === 'ENOTDIR';
}
