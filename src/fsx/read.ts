// Read-only access to metadata files that never follows a symlink: every file the store model
// reads goes through here, so a hostile link is reported, not followed, and a FIFO, socket or
// device where a file belongs is refused instead of blocking the process.
//
// Opens are O_RDONLY|O_NOFOLLOW|O_NONBLOCK (a FIFO opens at once instead of waiting for a writer),
// the opened fd is fstat'ed and must be a regular file, and reads stop at a cap that fits the
// kind of file. The calls are synchronous: a metadata file is one open, fstat, read and close on
// page-cached data, cheaper on this thread than four round trips through libuv's pool.
import * as fsSync from 'node:fs';
import type { Dirent, Stats } from 'node:fs';
import { fs, errCode } from './fs.js';
import { injectedReadError } from './fault.js';
import { ExitCode, LayergcError, fsCause } from '../errors.js';
import { atFd, O_DIR, openParent, OutsideDataRoot } from './contain.js';

export type SmallFile =
  | { state: 'ok'; text: string; stat?: Stats }
  | { state: 'missing' }
  | { state: 'symlink'; target: string }
  | { state: 'not-a-file'; stat: Stats; type: string }
  | { state: 'unreadable'; error: string };

/** Flags of every open of a file layergc reads. */
export const READ_FLAGS = fsSync.constants.O_RDONLY | fsSync.constants.O_NOFOLLOW | fsSync.constants.O_NONBLOCK;

/** Largest metadata file layergc reads whole (diff, size, cache-id, config.v2.json, an image config). */
export const MAX_SMALL = 1 << 20;

/**
 * errno codes that mean "there is nothing layergc may read at this path": gone, a path through a
 * non-directory, a name longer than the filesystem allows (it cannot exist), or a symlink loop on
 * the way (layergc never follows one anyway).
 */
const ABSENT = new Set(['ENOENT', 'ENOTDIR', 'ENAMETOOLONG', 'ELOOP']);

/** Could not read a path for a reason that is not "absent" (EACCES, EIO, ...): one line, exit 2. */
export class ReadError extends LayergcError {
  constructor(
    readonly path: string,
    readonly code: string | undefined,
    message: string,
  ) {
    super(message, ExitCode.USAGE);
    this.name = 'ReadError';
  }
}

function readError(path: string, err: unknown): ReadError {
  return new ReadError(path, errCode(err), `cannot read ${path}: ${fsCause(err) ?? describeError(err)}`);
}

/**
 * lstat, or null when nothing layergc may read is there (see ABSENT). Any other error (EACCES,
 * EIO) throws a ReadError, which the CLI prints as one line.
 */
export async function lstatOrNull(path: string): Promise<Stats | null> {
  return lstatOrNullSync(path);
}

export function lstatOrNullSync(path: string): Stats | null {
  try {
    injectedReadError(path, 'lstat');
    // a missing path answers undefined, not a thrown error: an exception costs more than the lstat
    return fs.lstatSync(path, { throwIfNoEntry: false }) ?? null;
  } catch (err) {
    if (ABSENT.has(errCode(err) ?? '')) return null;
    throw readError(path, err);
  }
}

/** What kind of thing a non-regular file is, for reasons. */
export function fileType(s: Stats): string {
  if (s.isDirectory()) return 'a directory';
  if (s.isFIFO()) return 'a FIFO';
  if (s.isSocket()) return 'a socket';
  if (s.isCharacterDevice()) return 'a character device';
  if (s.isBlockDevice()) return 'a block device';
  if (s.isSymbolicLink()) return 'a symlink';
  return s.isFile() ? 'a regular file' : 'of an unknown type';
}

export type OpenedFile = { state: 'ok'; fd: number; stat: Stats } | Exclude<SmallFile, { state: 'ok' }>;

/**
 * Opens a file to read, never following a symlink and never blocking on a FIFO; the caller closes
 * the fd of an 'ok' result. Anything but a regular file is refused with the reason.
 */
export function openRegularFile(path: string): OpenedFile {
  let fd: number;
  try {
    injectedReadError(path, 'open');
    fd = fsSync.openSync(path, READ_FLAGS);
  } catch (err) {
    const code = errCode(err);
    if (code === 'ELOOP') {
      // O_NOFOLLOW on a final symlink; a loop further up the path is simply unreachable
      const st = lstatQuiet(path);
      if (st?.isSymbolicLink()) return { state: 'symlink', target: readlinkQuiet(path) };
      return { state: 'missing' };
    }
    if (code === 'ENOENT' || code === 'ENOTDIR') return { state: 'missing' };
    if (code === 'ENXIO') {
      // a socket (or a FIFO with no reader, for writers): not a file layergc can read
      const st = lstatQuiet(path);
      if (st && !st.isFile()) return { state: 'not-a-file', stat: st, type: fileType(st) };
    }
    return { state: 'unreadable', error: describeError(err) };
  }
  let st: Stats;
  try {
    injectedReadError(path, 'fstat');
    st = fsSync.fstatSync(fd);
  } catch (err) {
    closeQuietly(fd);
    return { state: 'unreadable', error: describeError(err) };
  }
  if (!st.isFile()) {
    closeQuietly(fd);
    return { state: 'not-a-file', stat: st, type: fileType(st) };
  }
  return { state: 'ok', fd, stat: st };
}

// One read buffer for every synchronous read on this thread (the reads never interleave): a scan
// reads tens of thousands of small files, and a fresh 64 KiB buffer each was most of its garbage.
const scratch = Buffer.allocUnsafe(64 << 10);

/**
 * Reads at most `cap` bytes from an opened regular file; null when it holds more (it may have
 * grown since fstat). Throws what read(2) throws.
 */
export function readCapped(fd: number, cap: number, path = ''): Buffer | null {
  const chunks: Buffer[] = [];
  let total = 0;
  const buf = scratch;
  for (;;) {
    injectedReadError(path, 'read');
    const want = Math.min(buf.length, cap + 1 - total);
    const n = fsSync.readSync(fd, buf, 0, want, total);
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
    total += n;
    if (total > cap) return null;
    // a short read of a regular file is its end: no second read(2) to hear 0
    if (n < want) break;
  }
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, total);
}

/** A whole file of at most `cap` bytes, as bytes, read without following links or blocking. */
export function readFileCapped(path: string, cap = MAX_SMALL): { state: 'ok'; bytes: Buffer; stat: Stats } | Exclude<SmallFile, { state: 'ok' }> {
  const o = openRegularFile(path);
  if (o.state !== 'ok') return o;
  try {
    if (o.stat.size > cap) return { state: 'unreadable', error: `file is ${o.stat.size} bytes, larger than the ${cap} bytes such a file can hold` };
    const bytes = readCapped(o.fd, cap, path);
    if (bytes === null) return { state: 'unreadable', error: `file grew past the ${cap} bytes such a file can hold` };
    return { state: 'ok', bytes, stat: o.stat };
  } catch (err) {
    return { state: 'unreadable', error: describeError(err) };
  } finally {
    closeQuietly(o.fd);
  }
}

/**
 * readFileCapped, with the bytes handed to `use` instead of returned: a file that fits the scratch
 * buffer (an image config, hashed and decoded once) is read into it and never copied. The bytes
 * are valid only inside `use`.
 */
export function withFileBytes<T>(path: string, cap: number, use: (bytes: Buffer) => T): { state: 'ok'; value: T } | Exclude<SmallFile, { state: 'ok' }> {
  const o = openRegularFile(path);
  if (o.state !== 'ok') return o;
  let bytes: Buffer | null;
  try {
    if (o.stat.size > cap) return { state: 'unreadable', error: `file is ${o.stat.size} bytes, larger than the ${cap} bytes such a file can hold` };
    bytes = null;
    if (o.stat.size < scratch.length) {
      injectedReadError(path, 'read');
      const want = Math.min(scratch.length, cap + 1);
      const n = fsSync.readSync(o.fd, scratch, 0, want, 0);
      // a short read is the end; a full one: it grew since the fstat, read the long way
      if (n < want) bytes = scratch.subarray(0, n);
    }
    bytes ??= readCapped(o.fd, cap, path);
    if (bytes === null) return { state: 'unreadable', error: `file grew past the ${cap} bytes such a file can hold` };
  } catch (err) {
    return { state: 'unreadable', error: describeError(err) };
  } finally {
    closeQuietly(o.fd);
  }
  return { state: 'ok', value: use(bytes) };
}

/** A small metadata file (diff, size, cache-id, ...), read without following links. */
export async function readSmallFile(path: string, cap = MAX_SMALL): Promise<SmallFile> {
  return readSmallFileSync(path, cap);
}

export function readSmallFileSync(path: string, cap = MAX_SMALL): SmallFile {
  const o = openRegularFile(path);
  if (o.state !== 'ok') return o;
  return readOpened(o.fd, path, cap, o.stat);
}

/**
 * A small file that a listing just typed as a regular file (DT_REG): opened as openRegularFile
 * opens (never following a symlink, never blocking on a FIFO) but without its fstat, whose Stats
 * was a tenth of a scan. Swapped for something else since the listing: a directory fails the read,
 * a FIFO or socket reads empty or fails the open; each is then a problem of the entry, not a value.
 */
function readListedFile(path: string, cap = MAX_SMALL): SmallFile {
  let fd: number;
  try {
    injectedReadError(path, 'open');
    fd = fsSync.openSync(path, READ_FLAGS);
  } catch {
    return readSmallFileSync(path, cap); // gone or changed since the listing: looked at afresh, with its reason
  }
  return readOpened(fd, path, cap);
}

/** The text of an opened file (closed here) of at most `cap` bytes; `stat` when it was fstat'ed. */
function readOpened(fd: number, path: string, cap: number, stat?: Stats): SmallFile {
  try {
    if (stat && stat.size > cap) return { state: 'unreadable', error: `file is ${stat.size} bytes, larger than the ${cap} bytes such a file can hold` };
    // the common case, a file smaller than the scratch buffer read in one go, is decoded from it with no copy
    if (!stat || stat.size < scratch.length) {
      injectedReadError(path, 'read');
      const want = Math.min(scratch.length, cap + 1);
      const n = fsSync.readSync(fd, scratch, 0, want, 0);
      // a short read of a regular file is its end (so n <= cap); a full one: it grew, read it the long way
      if (n < want) return { state: 'ok', text: scratch.toString('utf8', 0, n), stat: stat };
    }
    const bytes = readCapped(fd, cap, path);
    if (bytes === null) return { state: 'unreadable', error: `file grew past the ${cap} bytes such a file can hold` };
    return { state: 'ok', text: bytes.toString('utf8'), stat: stat };
  } catch (err) {
    return { state: 'unreadable', error: describeError(err) };
  } finally {
    closeQuietly(fd);
  }
}

/**
 * readSmallFileSync of a file that is mostly absent (an image's metadata `parent`): an lstat first,
 * since a failed open costs a thrown error. An lstat that fails otherwise leaves the open to say why.
 */
export function readSmallFileIfThere(path: string, cap = MAX_SMALL): SmallFile {
  let st: Stats | undefined;
  try {
    injectedReadError(path, 'lstat');
    st = fs.lstatSync(path, { throwIfNoEntry: false });
    if (!st) return { state: 'missing' };
  } catch (err) {
    if (ABSENT.has(errCode(err) ?? '')) return { state: 'missing' };
  }
  if (st?.isSymbolicLink()) return { state: 'symlink', target: readlinkQuiet(path) };
  return readSmallFileSync(path, cap);
}

/** Why a file could not be read, as a clause: "is a FIFO, not a regular file". */
export function smallFileProblem(f: Exclude<SmallFile, { state: 'ok' }>): string {
  switch (f.state) {
    case 'missing':
      return 'is missing';
    case 'symlink':
      return `is a symlink (to ${f.target}), not a file`;
    case 'not-a-file':
      return `is ${f.type}, not a regular file`;
    case 'unreadable':
      return `cannot be read (${f.error})`;
  }
}

export interface DirEntryInfo {
  name: string;
  path: string;
  stat: Stats;
}

/**
 * Entries of a directory with their lstat; [] when it does not exist. A directory that is itself a
 * symlink is not listed (its contents are outside what layergc may touch): `onSymlink` hears of it.
 */
export async function listDir(dir: string, onSymlink?: (path: string, target: string) => void): Promise<DirEntryInfo[]> {
  if (!isListable(dir, onSymlink)) return [];
  return listDirSync(dir);
}

/** Whether `dir` is a real directory to list: not missing, not a file, and not a symlink (`onSymlink` hears of one). */
function isListable(dir: string, onSymlink?: (path: string, target: string) => void): boolean {
  const self = lstatOrNullSync(dir);
  if (self?.isSymbolicLink()) onSymlink?.(dir, readlinkQuiet(dir));
  return !!self?.isDirectory();
}

/**
 * listDir's listing of a directory known to be one: names, then an lstat each. It was a directory
 * a moment ago (isListable), so one that is gone or no directory now was removed or swapped while
 * it was read: its entries are unknown, never "none" (an empty layerdb/sha256 would make every
 * layer's dir unreferenced).
 */
function listDirSync(dir: string): DirEntryInfo[] {
  let names: string[];
  try {
    injectedReadError(dir, 'readdir');
    names = fs.readdirSync(dir) as string[];
  } catch (err) {
    throw readError(dir, err);
  }
  names.sort();
  const out: DirEntryInfo[] = [];
  for (const name of names) {
    const path = `${dir}/${name}`;
    const st = lstatOrNullSync(path);
    if (st) out.push({ name, path, stat: st });
  }
  return out;
}

/** What a listing says an entry is: the dirent's type, or its lstat where the filesystem did not say. */
export type EntryType = Pick<Stats, 'isFile' | 'isDirectory' | 'isSymbolicLink'>;

export interface TypedEntry {
  name: string;
  path: string;
  type: EntryType;
}

/**
 * Entries of a directory with their types, sorted by name; [] when it does not exist. As listDir,
 * but the type comes from readdir's dirent, with no lstat per entry: a listing of 10,000 layer dirs
 * costs a few getdents(2). Where the filesystem answers DT_UNKNOWN, Node lstats that entry itself;
 * should that lstat fail (the entry went away meanwhile), the listing is redone with listDir's
 * lstat per name, which skips what is gone instead of losing the whole directory.
 */
export function listTyped(dir: string, onSymlink?: (path: string, target: string) => void): TypedEntry[] {
  if (!isListable(dir, onSymlink)) return [];
  let dirents: Dirent[];
  try {
    injectedReadError(dir, 'readdir');
    injectedReadError(dir, 'readdir-types'); // a test's stand-in for Node's own lstat of a DT_UNKNOWN entry failing
    dirents = fsSync.readdirSync(dir, { withFileTypes: true });
  } catch {
    return listDirSync(dir).map((e) => ({ name: e.name, path: e.path, type: e.stat }));
  }
  dirents.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return dirents.map((d) => ({ name: d.name, path: `${dir}/${d.name}`, type: d }));
}

/**
 * The names in a directory, without a look at any of them; null when it cannot be listed. For
 * "is X there" before an open that would otherwise mostly fail (a failed open costs a thrown error).
 */
export function listNames(dir: string): Set<string> | null {
  try {
    injectedReadError(dir, 'readdir');
    return new Set(fsSync.readdirSync(dir));
  } catch {
    return null;
  }
}

/** A file whose presence as a regular file is all that matters (a large one, not read). */
export type PresentFile = { state: 'present' } | Exclude<SmallFile, { state: 'ok' }>;

/**
 * The small files `names` of one directory, each as readSmallFileSync reads it, and the `present`
 * ones only checked to be regular files, with one listing of the directory first: a name it does
 * not list is 'missing' with no open (a failed open costs a thrown error), a listed regular file
 * in `present` needs no lstat. When the directory cannot be listed each name is opened or lstat'ed.
 */
export function readSmallFilesIn(dir: string, names: readonly string[], present: readonly string[] = []): Map<string, SmallFile | PresentFile> {
  const out = new Map<string, SmallFile | PresentFile>();
  let listed: Dirent[] | null;
  try {
    injectedReadError(dir, 'readdir');
    listed = fsSync.readdirSync(dir, { withFileTypes: true });
  } catch {
    listed = null; // each name is looked at on its own below, which says why it cannot be read
  }
  // a layer dir holds a handful of entries: a scan of them costs less than a Map of them per dir
  const entry = (name: string): Dirent | undefined => {
    for (const d of listed!) if (d.name === name) return d;
    return undefined;
  };
  const look = (name: string, whole: boolean): SmallFile | PresentFile => {
    const path = `${dir}/${name}`;
    const d = listed ? entry(name) : undefined;
    if (listed && !d) return { state: 'missing' };
    if (d?.isSymbolicLink()) return { state: 'symlink', target: readlinkQuiet(path) };
    if (whole) return d?.isFile() ? readListedFile(path) : readSmallFileSync(path);
    return d?.isFile() ? { state: 'present' } : presentFile(path);
  };
  for (const name of names) out.set(name, look(name, true));
  for (const name of present) out.set(name, look(name, false));
  return out;
}

/** Whether `path` is a regular file, by lstat. */
function presentFile(path: string): PresentFile {
  const st = lstatOrNullSync(path);
  if (!st) return { state: 'missing' };
  if (st.isSymbolicLink()) return { state: 'symlink', target: readlinkQuiet(path) };
  return st.isFile() ? { state: 'present' } : { state: 'not-a-file', stat: st, type: fileType(st) };
}

/** readlink, or '?' when the link cannot be read. */
export function readlinkQuiet(path: string): string {
  try {
    return fsSync.readlinkSync(path);
  } catch {
    return '?';
  }
}

/** readlink of a symlink layergc found by lstat; null when it is gone or unreadable. */
export function readlinkOrNull(path: string): string | null {
  try {
    return fsSync.readlinkSync(path);
  } catch {
    return null;
  }
}

function lstatQuiet(path: string): Stats | null {
  try {
    return fsSync.lstatSync(path);
  } catch {
    return null;
  }
}

export function closeQuietly(fd: number): void {
  try {
    fsSync.closeSync(fd);
  } catch {
    /* nothing to do */
  }
}

export function describeError(err: unknown): string {
  const code = errCode(err);
  const msg = err instanceof Error ? err.message : String(err);
  return code ? `${code}: ${msg.replace(/^[A-Z]+: /, '')}` : msg;
}

/**
 * The first symlink on the way from `anchor` (a real directory) down to `path` below it; null when
 * there is none up to the end, or up to something missing or not a directory.
 */
export function firstSymlinkBelow(anchor: string, path: string): { path: string; what: string } | null {
  if (path !== anchor && !path.startsWith(`${anchor}/`)) return { path, what: `is not below ${anchor}` };
  let cur = anchor;
  for (const part of path.slice(anchor.length).split('/').filter(Boolean)) {
    cur = `${cur}/${part}`;
    const st = lstatOrNullSync(cur);
    if (st?.isSymbolicLink()) return { path: cur, what: `is a symlink (to ${readlinkQuiet(cur)})` };
    if (!st?.isDirectory()) return null;
  }
  return null;
}

export type OpenedDir = { state: 'ok'; fd: number; path: string } | { state: 'missing' } | { state: 'unsafe' | 'unreadable'; at: string; why: string };

/**
 * Opens the directory `path` below `anchor` through directories opened from `anchor` down without
 * following a symlink (contain.ts's walk), the last one too: nothing on the way can be a symlink,
 * now or later. `path` of the result names the pinned directory as /proc/<pid>/fd/<n>, which also
 * works for a child process such as getfattr; the caller closes `fd`.
 */
export function openDirBelow(anchor: string, path: string): OpenedDir {
  let parent: ReturnType<typeof openParent>;
  try {
    parent = openParent(anchor, path);
  } catch (err) {
    if (!(err instanceof OutsideDataRoot)) throw err;
    return err.missing ? { state: 'missing' } : { state: 'unsafe', at: err.path, why: err.message.slice(err.path.length + 2) };
  }
  try {
    injectedReadError(path, 'open');
    const fd = fsSync.openSync(atFd(parent.dir.fd, parent.name), O_DIR);
    return { state: 'ok', fd, path: `/proc/${process.pid}/fd/${fd}` };
  } catch (err) {
    const code = errCode(err);
    if (code === 'ENOENT') return { state: 'missing' };
    // O_DIRECTORY answers ENOTDIR before O_NOFOLLOW's ELOOP
    if (code === 'ELOOP' || (code === 'ENOTDIR' && lstatQuiet(path)?.isSymbolicLink())) return { state: 'unsafe', at: path, why: 'is a symlink; it is never followed' };
    if (code === 'ENOTDIR') return { state: 'unsafe', at: path, why: 'is not a directory' };
    return { state: 'unreadable', at: path, why: describeError(err) };
  } finally {
    closeQuietly(parent.dir.fd);
  }
}
