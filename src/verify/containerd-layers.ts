// verify of the containerd image store's unpacked layers (overlayfs): for each image layer whose blob
// is there, the blob is decompressed as a stream (gzip by zlib, zstd by the zstd command: Node 20's
// zlib has none); its bytes must hash to the layer's diff ID from the image config (the
// uncompressed digest), and the layer's snapshot dir (snapshots/<id>/fs, found through the chain ID)
// must hold exactly that tar's entries: regular files with the same size and sha256, directories,
// symlinks with the same target, hard links to the same inode, whiteouts as overlay's 0/0 character
// devices, opaque markers as the overlay opaque xattr (read with getfattr), and nothing the tar does
// not have. A layer whose blob is gone, damaged (blob verify names it) or zstd without a zstd
// command is counted as not verified, with why. Nothing is written; files are opened O_NOFOLLOW,
// and a tar path through a symlink or with `..` is itself a mismatch (never followed).
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { fs } from '../fsx/fs.js';
import { chainIds, short } from '../store/digest.js';
import { GcGraph, snapshotNode } from '../store/containerd/gc.js';
import type { ContainerdStore } from '../store/containerd/model.js';
import { usersOf } from '../findings/containerd/scan.js';
import type { Finding } from '../findings/types.js';

export interface LayerVerifyStats {
  layers: number;
  ok: number;
  unverifiable: number;
  bytes: number;
  /** why each layer not verified was not, counted: "its blob is gone", "zstd: no zstd command", … */
  notVerified?: Record<string, number>;
  /** opaque markers whose xattr could not be read (no getfattr) */
  opaqueUnchecked?: number;
}

/** The line verify prints about the unpacked layers. */
export function unpackedLayersNote(l: LayerVerifyStats): string {
  const bad = l.layers - l.ok - l.unverifiable;
  const why = Object.entries(l.notVerified ?? {})
    .map(([w, n]) => `${n} ${w}`)
    .join('; ');
  const opaque = l.opaqueUnchecked ? `; ${l.opaqueUnchecked} opaque-dir marker${l.opaqueUnchecked === 1 ? '' : 's'} not checked (no getfattr: install attr)` : '';
  return `${l.layers} unpacked layers against their blobs' tars and diff IDs: ${l.ok} match${bad ? `, ${bad} do not` : ''}${l.unverifiable ? `, ${l.unverifiable} not verified (${why})` : ''}${opaque}.`;
}

const notVerified = (stats: LayerVerifyStats | undefined, why: string) => {
  if (!stats) return;
  stats.unverifiable++;
  stats.notVerified ??= {};
  stats.notVerified[why] = (stats.notVerified[why] ?? 0) + 1;
};

/** whether a command runs here at all (once per process) */
const present = new Map<string, boolean>();
function hasCommand(cmd: string): boolean {
  let ok = present.get(cmd);
  if (ok === undefined) present.set(cmd, (ok = spawnSync(cmd, ['--version'], { stdio: 'ignore' }).error === undefined));
  return ok;
}

const OPAQUE_XATTRS = ['trusted.overlay.opaque', 'user.overlay.opaque'];

/** overlay's opaque xattr of a directory is "y"; null when getfattr is missing */
function isOpaque(dir: string): boolean | null {
  if (!hasCommand('getfattr')) return null;
  return OPAQUE_XATTRS.some((name) => {
    const r = spawnSync('getfattr', ['--absolute-names', '--no-dereference', '--only-values', '-n', name, '--', dir], { encoding: 'latin1' });
    return r.status === 0 && r.stdout === 'y';
  });
}

/** A blob decompressed by `zstd -dc` reading the open file: Node 20's zlib has no zstd. */
async function* zstdStream(fd: number): AsyncIterable<Buffer> {
  const child = spawn('zstd', ['-dcq'], { stdio: [fd, 'pipe', 'pipe'] });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => {
    if (err.length < 500) err += d.toString('utf8');
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  try {
    for await (const c of child.stdout ?? []) yield c as Buffer;
  } finally {
    if (child.exitCode === null) child.kill();
  }
  const code = await exited;
  if (code !== 0) throw new Error(`zstd -d: ${err.trim() || `exit ${code}`}`);
}

/** Every entry below `dir` (relative paths), never through a symlink; a directory that cannot be read stops nothing. */
async function listTree(dir: string, rel = '', out: string[] = []): Promise<string[]> {
  const names = await fs.readdir(rel ? `${dir}/${rel}` : dir).catch(() => [] as string[]);
  for (const n of names.sort()) {
    const r = rel ? `${rel}/${n}` : n;
    out.push(r);
    const st = await fs.lstat(`${dir}/${r}`).catch(() => null);
    if (st?.isDirectory()) await listTree(dir, r, out);
  }
  return out;
}

const MAX_JSON = 4 << 20;
const BLOCK = 512;

interface TarEntry {
  path: string;
  type: string;
  size: number;
  linkname: string;
}

/** The fields of a ustar/GNU/PAX header block. */
function octal(buf: Buffer, off: number, len: number): number {
  if (buf[off] & 0x80) {
    // GNU base-256
    let n = 0;
    for (let i = off + 1; i < off + len; i++) n = n * 256 + buf[i];
    return n;
  }
  const s = buf
    .toString('latin1', off, off + len)
    .replace(/\0.*$/s, '')
    .trim();
  return s ? Number.parseInt(s, 8) : 0;
}
const cstr = (buf: Buffer, off: number, len: number) => {
  const end = buf.indexOf(0, off);
  return buf.toString('utf8', off, end < 0 || end > off + len ? off + len : end);
};

function paxRecords(data: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let off = 0;
  while (off < data.length) {
    const sp = data.indexOf(0x20, off);
    if (sp < 0) break;
    const len = Number(data.toString('latin1', off, sp));
    if (!Number.isSafeInteger(len) || len <= 0) break;
    const rec = data.toString('utf8', sp + 1, off + len - 1);
    const eq = rec.indexOf('=');
    if (eq > 0) out.set(rec.slice(0, eq), rec.slice(eq + 1));
    off += len;
  }
  return out;
}

/**
 * Walk a tar stream: `onEntry` gets each entry (after PAX and GNU long names are applied) with the
 * sha256 of a regular file's content. Also returns the sha256 of the whole stream.
 */
async function walkTar(chunks: AsyncIterable<Buffer>, onEntry: (e: TarEntry, contentSha: string | undefined) => Promise<void>): Promise<{ sha256: string; bytes: number }> {
  const whole = createHash('sha256');
  let bytes = 0;
  let pending: Buffer = Buffer.alloc(0);
  let state = 'header' as string; // 'header' | 'data' | 'end'
  let cur: (TarEntry & { left: number; pad: number; hash?: ReturnType<typeof createHash>; meta?: Buffer[] }) | undefined;
  let pax = new Map<string, string>();
  let longName: string | undefined;
  let longLink: string | undefined;
  for await (const chunk of chunks) {
    whole.update(chunk);
    bytes += chunk.length;
    if (state === 'end') continue;
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    let off = 0;
    while (state !== 'end') {
      if (state === 'header') {
        if (pending.length - off < BLOCK) break;
        const h = pending.subarray(off, off + BLOCK);
        off += BLOCK;
        if (h.every((b) => b === 0)) {
          state = 'end';
          break;
        }
        const type = String.fromCharCode(h[156] || 0x30);
        let name = cstr(h, 0, 100);
        const prefix = h.toString('latin1', 257, 262) === 'ustar' ? cstr(h, 345, 155) : '';
        if (prefix) name = `${prefix}/${name}`;
        const size = octal(h, 124, 12);
        cur = { path: name, type, size, linkname: cstr(h, 157, 100), left: size, pad: (BLOCK - (size % BLOCK)) % BLOCK };
        if (type === 'x' || type === 'g' || type === 'L' || type === 'K') cur.meta = [];
        else {
          if (pax.has('path')) cur.path = pax.get('path')!;
          if (pax.has('linkpath')) cur.linkname = pax.get('linkpath')!;
          if (pax.has('size')) cur = { ...cur, size: Number(pax.get('size')), left: Number(pax.get('size')), pad: (BLOCK - (Number(pax.get('size')) % BLOCK)) % BLOCK };
          if (longName !== undefined) cur.path = longName;
          if (longLink !== undefined) cur.linkname = longLink;
          pax = new Map();
          longName = longLink = undefined;
          if (type === '0' || type === '7') cur.hash = createHash('sha256');
          // header-only types carry no data, whatever their size field says (as Go's archive/tar reads them)
          else if ('123456'.includes(type)) cur = { ...cur, size: 0, left: 0, pad: 0 };
        }
        state = 'data';
      }
      if (state === 'data' && cur) {
        const take = Math.min(cur.left, pending.length - off);
        if (take > 0) {
          const part = pending.subarray(off, off + take);
          cur.hash?.update(part);
          cur.meta?.push(Buffer.from(part));
          cur.left -= take;
          off += take;
        }
        if (cur.left > 0) break;
        if (pending.length - off < cur.pad) break;
        off += cur.pad;
        const e = cur;
        cur = undefined;
        state = 'header';
        if (e.meta) {
          const data = Buffer.concat(e.meta);
          if (e.type === 'x') pax = paxRecords(data);
          else if (e.type === 'L') longName = data.toString('utf8').replace(/\0+$/, '');
          else if (e.type === 'K') longLink = data.toString('utf8').replace(/\0+$/, '');
          continue;
        }
        await onEntry({ path: e.path, type: e.type, size: e.size, linkname: e.linkname }, e.hash?.digest('hex'));
      }
    }
    pending = pending.subarray(off);
  }
  if (state !== 'end' && (cur || pending.length)) throw new Error('the tar stream ends in the middle of an entry');
  return { sha256: whole.digest('hex'), bytes };
}

async function readJsonBlob(path: string): Promise<unknown> {
  const fh = await fs.open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.size > MAX_JSON) throw new Error('not a small regular file');
    return JSON.parse((await fh.readFile()).toString('utf8'));
  } finally {
    await fh.close();
  }
}

/** never through a symlink, never blocking on a FIFO; the stream closes the handle */
const openRead = (path: string) => fs.open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);

async function sha256Of(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of (await openRead(path)).createReadStream()) h.update(c as Buffer);
  return h.digest('hex');
}

/** Compare one unpacked layer (its fs dir) with its blob; the problems found, at most a few. */
async function checkLayer(fsDir: string, blob: string, mediaType: string, diffId: string, stats?: LayerVerifyStats): Promise<{ problems: string[]; bytes: number } | { unverifiable: string }> {
  const zstd = /zstd/.test(mediaType);
  if (zstd && !hasCommand('zstd')) return { unverifiable: 'zstd-compressed, no zstd command here: install zstd' };
  const problems: string[] = [];
  const add = (p: string) => {
    if (problems.length < 5) problems.push(p);
  };
  const dirsOk = new Set<string>(['']);
  const lst = async (p: string): Promise<Stats | null> => fs.lstat(p).catch(() => null);
  /** the entry's path inside fsDir, every parent a real directory (never through a symlink) */
  const resolve = async (rel: string): Promise<string | undefined> => {
    const parts = rel.split('/').filter((x) => x && x !== '.');
    if (parts.some((x) => x === '..')) return undefined;
    let sofar = '';
    for (const part of parts.slice(0, -1)) {
      const next = sofar ? `${sofar}/${part}` : part;
      if (!dirsOk.has(next)) {
        const st = await lst(`${fsDir}/${next}`);
        if (!st?.isDirectory()) return undefined;
        dirsOk.add(next);
      }
      sofar = next;
    }
    return parts.length ? `${fsDir}/${parts.join('/')}` : fsDir;
  };
  /** every path the tar names, and their parent dirs (an applier makes those it lacks) */
  const named = new Set<string>();
  const name = (rel: string) => {
    const parts = rel.split('/').filter((x) => x && x !== '.');
    for (let i = 1; i <= parts.length; i++) named.add(parts.slice(0, i).join('/'));
  };
  const fh = await openRead(blob);
  let stream: AsyncIterable<Buffer>;
  if (zstd) stream = zstdStream(fh.fd);
  else {
    const src = fh.createReadStream();
    const gz = /gzip/.test(mediaType);
    const s = gz ? src.pipe(createGunzip()) : src;
    src.on('error', (err) => s.destroy(err));
    stream = s as AsyncIterable<Buffer>;
  }
  let walked: { sha256: string; bytes: number };
  try {
    walked = await walkTar(stream, async (e, contentSha) => {
      e.path = e.path.replace(/^(\.\/)+/, '').replace(/^\/+/, '');
      const base = e.path.replace(/\/+$/, '').split('/').pop() ?? '';
      if (base === '.wh..wh..opq') {
        // an opaque dir: overlay's opaque xattr on the dir, which hides everything below it
        const rel = e.path.replace(/\/?\.wh\.\.wh\.\.opq\/*$/, '');
        name(rel);
        const p = await resolve(rel);
        const st = p === undefined ? null : await lst(p);
        if (!st?.isDirectory()) return add(`${rel || '/'} should be an opaque directory`);
        const o = isOpaque(p!);
        if (o === null && stats) stats.opaqueUnchecked = (stats.opaqueUnchecked ?? 0) + 1;
        else if (o === false) add(`${rel || '/'} should be opaque (the overlay opaque xattr "y"): the layers below show through it`);
        return;
      }
      const whiteout = base.startsWith('.wh.');
      const rel = whiteout ? e.path.replace(/\.wh\.([^/]*)$/, '$1') : e.path;
      name(rel);
      return check(e, rel, whiteout, contentSha);
    });
  } finally {
    await fh.close().catch(() => undefined);
  }
  const { sha256, bytes } = walked;
  const extra = (await listTree(fsDir)).filter((r) => !named.has(r));
  if (extra.length) add(`${extra.length} entr${extra.length === 1 ? 'y' : 'ies'} the layer's tar does not have: ${extra.slice(0, 3).join(', ')}${extra.length > 3 ? ', …' : ''}`);
  if (`sha256:${sha256}` !== diffId) problems.unshift(`its blob's uncompressed bytes hash to sha256:${sha256}, not the diff ID ${diffId} the image config names`);
  return { problems, bytes };

  async function check(e: TarEntry, rel: string, whiteout: boolean, contentSha: string | undefined): Promise<void> {
    const p = await resolve(rel);
    if (p === undefined) return add(`${e.path}: its path leaves the layer or goes through something that is not a directory`);
    const st = await lst(p);
    if (!st) return add(`${rel} is missing`);
    if (whiteout) {
      if (!st.isCharacterDevice() || st.rdev !== 0) add(`${rel} should be a whiteout (a 0/0 character device)`);
    } else if (e.type === '5') {
      if (!st.isDirectory()) add(`${rel} should be a directory`);
    } else if (e.type === '2') {
      if (!st.isSymbolicLink() || (await fs.readlink(p)) !== e.linkname) add(`${rel} should be a symlink to ${e.linkname}`);
    } else if (e.type === '1') {
      const target = await resolve(e.linkname);
      const t = target ? await lst(target) : null;
      if (!t || t.ino !== st.ino) add(`${rel} should be a hard link of ${e.linkname}`);
    } else if (e.type === '0' || e.type === '7') {
      if (!st.isFile()) add(`${rel} should be a regular file`);
      else if (st.size !== e.size) add(`${rel} is ${st.size} bytes, the layer says ${e.size}`);
      else if ((await sha256Of(p)) !== contentSha) add(`${rel}: its content differs from the layer's`);
    } else if (e.type === '3' && !st.isCharacterDevice()) add(`${rel} should be a character device`);
    else if (e.type === '4' && !st.isBlockDevice()) add(`${rel} should be a block device`);
    else if (e.type === '6' && !st.isFIFO()) add(`${rel} should be a FIFO`);
  }
}

/** Each unpacked image layer of moby's namespaces, checked once. */
export async function verifyUnpackedLayers(s: ContainerdStore, stats?: LayerVerifyStats, damagedBlobs: ReadonlySet<string> = new Set()): Promise<Finding[]> {
  const affectsOf = usersOf(s, new GcGraph(s.meta, s.now));
  const moby = new Set(s.loc.mobyNamespaces);
  const blobPath = (d: string) => s.disk.blobs.get(d)?.path;
  const done = new Set<string>();
  const out: Finding[] = [];
  for (const ns of s.meta.namespaces) {
    if (!moby.has(ns.name)) continue;
    const snaps = new Map(ns.snapshots.filter((x) => x.snapshotter === s.loc.snapshotter).map((x) => [x.key, x]));
    for (const img of ns.images) {
      const mp = img.target ? blobPath(img.target) : undefined;
      if (!mp) continue;
      let manifests: { layers?: { digest?: string; mediaType?: string }[]; config?: { digest?: string } }[] = [];
      try {
        const m = (await readJsonBlob(mp)) as { manifests?: { digest?: string }[]; layers?: unknown; config?: unknown };
        // an index: the platform manifests whose blobs are here (the ones that were pulled or loaded)
        if (Array.isArray(m.manifests)) {
          for (const d of m.manifests) {
            const p = d.digest ? blobPath(d.digest) : undefined;
            if (p) manifests.push((await readJsonBlob(p)) as (typeof manifests)[number]);
          }
        } else manifests = [m as (typeof manifests)[number]];
      } catch {
        continue; // a damaged manifest is blob verify's to report
      }
      for (const m of manifests) {
        const cp = m.config?.digest ? blobPath(m.config.digest) : undefined;
        if (!cp || !Array.isArray(m.layers)) continue;
        let diffIds: string[];
        try {
          const c = (await readJsonBlob(cp)) as { rootfs?: { diff_ids?: unknown } };
          diffIds = Array.isArray(c.rootfs?.diff_ids) ? (c.rootfs.diff_ids as string[]) : [];
        } catch {
          continue;
        }
        if (diffIds.length !== m.layers.length) continue;
        const chains = chainIds(diffIds);
        for (const [i, layer] of m.layers.entries()) {
          const sn = snaps.get(chains[i]);
          const rec = sn ? s.backend.records.get(sn.name) : undefined;
          if (!rec || done.has(rec.key)) continue; // not unpacked (or checked already)
          done.add(rec.key);
          if (stats) stats.layers++;
          const dir = `${s.loc.snapshotterRoot}/snapshots/${rec.id}`;
          // a blob that is gone, or damaged (blob verify names it), cannot vouch for the layer
          const bp = layer.digest && !damagedBlobs.has(layer.digest) ? blobPath(layer.digest) : undefined;
          if (!bp) {
            notVerified(stats, layer.digest && damagedBlobs.has(layer.digest) ? 'whose blob is damaged, see its finding' : 'whose blob is gone');
            continue;
          }
          let r: Awaited<ReturnType<typeof checkLayer>>;
          try {
            r = await checkLayer(`${dir}/fs`, bp, layer.mediaType ?? '', diffIds[i], stats);
          } catch (err) {
            r = { problems: [`its blob cannot be read as a tar: ${(err as Error).message}`], bytes: 0 };
          }
          if ('unverifiable' in r) {
            notVerified(stats, r.unverifiable);
            continue;
          }
          if (stats) stats.bytes += r.bytes;
          if (!r.problems.length) {
            if (stats) stats.ok++;
            continue;
          }
          out.push({
            kind: 'containerd-layer-mismatch',
            severity: 'error',
            paths: [dir],
            bytes: 0,
            reclaimable: false,
            reason: `the unpacked layer ${short(diffIds[i])} (snapshot ${JSON.stringify(sn!.key)}, id ${rec.id}) does not match its blob ${short(layer.digest!)}: ${r.problems.join('; ')}; containers of its images see damaged files (remove and re-pull or re-load them)`,
            affects: affectsOf([snapshotNode(ns.name, s.loc.snapshotter, sn!.key)]),
            containerd: { snapshot: rec.key, digest: layer.digest! },
          });
        }
      }
    }
  }
  return out;
}
