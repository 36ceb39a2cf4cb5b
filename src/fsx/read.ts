// Read-only access to metadata files that never follows a symlink: every file the store model
// reads goes through here, so a hostile link is reported, not followed.
import { fs, isNotFound, errCode } from './fs.js';
import type { Stats } from 'node:fs';

export type SmallFile =
  | { state: 'ok'; text: string; stat: Stats }
  | { state: 'missing' }
  | { state: 'symlink'; target: string }
  | { state: 'not-a-file'; stat: Stats }
  | { state: 'unreadable'; error: string };

const MAX_SMALL = 1 << 20;

export async function lstatOrNull(path: string): Promise<Stats | null> {
  try {
    return await fs.lstat(path);
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

/** A small metadata file (diff, size, cache-id, ...), read without following links. */
export async function readSmallFile(path: string): Promise<SmallFile> {
  let st: Stats;
  try {
    st = await fs.lstat(path);
  } catch (err) {
    if (isNotFound(err)) return { state: 'missing' };
    return { state: 'unreadable', error: describeError(err) };
  }
  if (st.isSymbolicLink()) {
    let target = '?';
    try { target = await fs.readlink(path); } catch { /* keep '?' */ }
    return { state: 'symlink', target };
  }
  if (!st.isFile()) return { state: 'not-a-file', stat: st };
  if (st.size > MAX_SMALL) return { state: 'unreadable', error: `file is ${st.size} bytes, larger than any metadata file` };
  try {
    return { state: 'ok', text: (await fs.readFile(path)).toString('utf8'), stat: st };
  } catch (err) {
    return { state: 'unreadable', error: describeError(err) };
  }
}

export interface DirEntryInfo { name: string; path: string; stat: Stats }

/**
 * Entries of a directory with their lstat; [] when it does not exist. A directory that is itself a
 * symlink is not listed (its contents are outside what layergc may touch): `onSymlink` hears of it.
 */
export async function listDir(dir: string, onSymlink?: (path: string, target: string) => void): Promise<DirEntryInfo[]> {
  const self = await lstatOrNull(dir);
  if (!self) return [];
  if (self.isSymbolicLink()) {
    let target = '?';
    try { target = await fs.readlink(dir); } catch { /* keep ? */ }
    onSymlink?.(dir, target);
    return [];
  }
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    if (isNotFound(err)) return [];
    throw err;
  }
  names.sort();
  const out: DirEntryInfo[] = [];
  for (const name of names) {
    const path = `${dir}/${name}`;
    const st = await lstatOrNull(path);
    if (st) out.push({ name, path, stat: st });
  }
  return out;
}

export function describeError(err: unknown): string {
  const code = errCode(err);
  const msg = err instanceof Error ? err.message : String(err);
  return code ? `${code}: ${msg.replace(/^[A-Z]+: /, '')}` : msg;
}
