// A layer's content roots (the driver's layer directory and, for overlay2, the lower chain) and the
// safe opening of a tar entry's file inside them. File I/O is synchronous on purpose: docs/verify-internals.md.

import * as fs from 'node:fs';
import type { Stats } from 'node:fs';
import { readRedirect, redirectTarget } from '../drivers/overlay2/content.js';
import { closeQuietly } from '../fsx/read.js';

const OPEN_FLAGS = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK;

export type OpenedFile = { ok: true; fd: number; stat: Stats; root: number; rel: string };
export type Opened = OpenedFile | { ok: false; problem: 'missing' | 'unsafe' | 'unreadable'; detail?: string };

type DirState = 'inside' | 'outside' | 'missing';

/**
 * Finds a tar entry's file in the first content root that has it, as os.Open(filepath.Join(root, name))
 * would, but never leaves the root: '..' that climbs out is refused, the final component is opened with
 * O_NOFOLLOW, and the directory part must resolve (realpath) inside the root. O_NONBLOCK keeps a FIFO
 * from blocking the open; such a file is then refused as not regular.
 */
export class ContentRoots {
  private readonly roots: string[];
  private readonly realRoots: (string | null | undefined)[];
  private readonly dirCache: Map<string, DirState>[];

  /** `names`: how reports name each root, when `roots` are pinned directories (/proc/<pid>/fd/<n>). */
  constructor(
    roots: string[],
    private readonly names: string[] = roots,
  ) {
    // latin1 strings, one char per byte, so that non-UTF-8 names pass through unchanged.
    this.roots = roots.map((r) => Buffer.from(r.replace(/\/+$/, '') || '/', 'utf8').toString('latin1'));
    this.realRoots = roots.map(() => undefined);
    this.dirCache = roots.map(() => new Map());
  }

  get count(): number {
    return this.roots.length;
  }

  rootPath(i: number): string {
    return this.names[i];
  }

  private realRoot(i: number): string | null {
    let r = this.realRoots[i];
    if (r === undefined) {
      r = realpathOrNull(this.roots[i]);
      this.realRoots[i] = r;
    }
    return r;
  }

  private dirState(i: number, realRoot: string, dir: string): DirState {
    const cache = this.dirCache[i];
    let st = cache.get(dir);
    if (st === undefined) {
      if (cache.size > 8192) cache.clear(); // bounded: memory must not grow with the layer
      const real = realpathOrNull(this.roots[i] + '/' + dir);
      st = real === null ? 'missing' : real === realRoot || real.startsWith(realRoot === '/' ? '/' : realRoot + '/') ? 'inside' : 'outside';
      cache.set(dir, st);
    }
    return st;
  }

  /** Opens `rel` (already cleaned) in root `from` or the first later root that has it. */
  open(rel: string, from = 0): Opened {
    const slash = rel.lastIndexOf('/');
    const dir = slash < 0 ? '' : rel.slice(0, slash);
    for (let i = from; i < this.roots.length; i++) {
      const realRoot = this.realRoot(i);
      if (realRoot === null) continue;
      if (dir !== '') {
        const st = this.dirState(i, realRoot, dir);
        if (st === 'missing') continue;
        if (st === 'outside') {
          return { ok: false, problem: 'unsafe', detail: `a directory in its path leads outside ${this.rootPath(i)}` };
        }
      }
      let fd: number;
      try {
        fd = fs.openSync(Buffer.from(this.roots[i] + '/' + rel, 'latin1'), OPEN_FLAGS);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') continue;
        if (code === 'ELOOP') return { ok: false, problem: 'unsafe', detail: `is a symlink in ${this.rootPath(i)}` };
        return { ok: false, problem: 'unreadable', detail: `${code ?? String(err)} in ${this.rootPath(i)}` };
      }
      let stat: Stats;
      try {
        stat = fs.fstatSync(fd);
      } catch (err) {
        closeQuietly(fd);
        return { ok: false, problem: 'unreadable', detail: `${(err as NodeJS.ErrnoException).code ?? String(err)} in ${this.rootPath(i)}` };
      }
      if (!stat.isFile()) {
        closeQuietly(fd);
        return { ok: false, problem: 'unreadable', detail: `not a regular file (${fileType(stat)}) in ${this.rootPath(i)}` };
      }
      return { ok: true, fd, stat, root: i, rel };
    }
    if (from === 0 && this.roots.length > 1) {
      const redirected = this.openRedirected(rel);
      if (redirected) return redirected;
    }
    return { ok: false, problem: 'missing', detail: this.roots.length > 1 ? `in none of ${this.roots.length} content roots` : undefined };
  }

  /**
   * A directory renamed through an overlay mount with redirect_dir on is a new dir in the upper
   * layer carrying `trusted.overlay.redirect` (the old path, absolute from the layer root, or a name
   * in the same parent); its unchanged files stay in the lower layers under the old path. Map `rel`
   * layer by layer through the redirects found along its directories, and look in each lower there.
   */
  private openRedirected(rel: string): Opened | null {
    let cur = rel;
    for (let i = 0; i < this.roots.length - 1; i++) {
      const next = this.mapThroughRedirects(i, cur);
      if (next === cur) continue;
      cur = next;
      const o = this.open(cur, i + 1);
      if (o.ok || o.problem !== 'missing') return o;
    }
    return null;
  }

  private readonly redirectCache = new Map<string, string | null>();

  /** `rel` as the layer below root `i` names it, after the redirects of root `i`'s directories. */
  private mapThroughRedirects(i: number, rel: string): string {
    const parts = rel.split('/');
    const out: string[] = [];
    for (let k = 0; k < parts.length; k++) {
      out.push(parts[k]);
      if (k === parts.length - 1) break; // the file itself; redirects are on directories
      const r = this.redirectOf(i, out.join('/'));
      const target = r === null ? null : redirectTarget(out, r);
      if (target === null) continue;
      out.splice(0, out.length, ...target);
    }
    return out.join('/');
  }

  /** The overlay redirect xattr of a directory in root `i`, cached. */
  private redirectOf(i: number, dir: string): string | null {
    const key = `${i}\0${dir}`;
    const hit = this.redirectCache.get(key);
    if (hit !== undefined) return hit;
    if (this.redirectCache.size > 8192) this.redirectCache.clear();
    const value = readRedirect(Buffer.from(this.roots[i] + '/' + dir, 'latin1').toString('utf8'));
    this.redirectCache.set(key, value);
    return value;
  }
}

function realpathOrNull(latin1Path: string): string | null {
  try {
    return fs.realpathSync.native(Buffer.from(latin1Path, 'latin1'), { encoding: 'buffer' }).toString('latin1');
  } catch {
    return null;
  }
}

function fileType(s: Stats): string {
  if (s.isDirectory()) return 'directory';
  if (s.isCharacterDevice()) return s.rdev === 0 ? 'character device 0/0, an overlay whiteout' : 'character device';
  if (s.isBlockDevice()) return 'block device';
  if (s.isFIFO()) return 'fifo';
  if (s.isSocket()) return 'socket';
  if (s.isSymbolicLink()) return 'symlink';
  return 'unknown type';
}
