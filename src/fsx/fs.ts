// The one filesystem handle everything in layergc uses. Tests replace a member to inject a
// fault (EPERM, EBUSY, ENOSPC) without touching the real disk; nothing else imports node:fs
// for writes.
import * as fsp from 'node:fs/promises';
import * as fsSync from 'node:fs';

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

/** errno code of an error thrown by node:fs, or undefined. */
export function errCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

export function isNotFound(err: unknown): boolean {
  const c = errCode(err);
  return c === 'ENOENT' || c === 'ENOTDIR';
}
