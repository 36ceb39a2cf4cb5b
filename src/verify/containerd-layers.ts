// verify of the containerd image store's unpacked layers (overlayfs): for each image layer whose blob
// is there, the blob is decompressed as a stream; its bytes must hash to the layer's diff ID from
// the image config (the uncompressed digest), and every entry of that tar must be in the layer's
// snapshot dir (snapshots/<id>/fs, found through the chain ID) as the tar says: regular files with
// the same size and sha256, directories, symlinks with the same target, hard links to the same
// inode, whiteouts as overlay's 0/0 character devices. So the snapshot is proven to hold the bytes
// whose digest the image names. A layer whose blob is gone or zstd-compressed cannot be checked
// this way and is counted as such (as is one whose blob verify found damaged: that one is named). Nothing is written; files are opened O_NOFOLLOW, and a tar path
// through a symlink or with `..` is itself a mismatch (never followed).
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
async function checkLayer(fsDir: string, blob: string, mediaType: string, diffId: string): Promise<{ problems: string[]; bytes: number } | { unverifiable: string }> {
  if (/zstd/.test(mediaType)) return { unverifiable: 'zstd-compressed blob' };
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
  const src = (await openRead(blob)).createReadStream();
  const gz = /gzip/.test(mediaType);
  const stream = gz ? src.pipe(createGunzip()) : src;
  src.on('error', (err) => stream.destroy(err));
  const { sha256, bytes } = await walkTar(stream as AsyncIterable<Buffer>, async (e, contentSha) => {
    e.path = e.path.replace(/^(\.\/)+/, '').replace(/^\/+/, '');
    const base = e.path.replace(/\/+$/, '').split('/').pop() ?? '';
    if (base === '.wh..wh..opq') return; // an opaque dir: an xattr of its dir
    const whiteout = base.startsWith('.wh.');
    const rel = whiteout ? e.path.replace(/\.wh\.([^/]*)$/, '$1') : e.path;
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
  });
  if (`sha256:${sha256}` !== diffId) problems.unshift(`its blob's uncompressed bytes hash to sha256:${sha256}, not the diff ID ${diffId} the image config names`);
  return { problems, bytes };
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
            if (stats) stats.unverifiable++;
            continue;
          }
          let r: Awaited<ReturnType<typeof checkLayer>>;
          try {
            r = await checkLayer(`${dir}/fs`, bp, layer.mediaType ?? '', diffIds[i]);
          } catch (err) {
            r = { problems: [`its blob cannot be read as a tar: ${(err as Error).message}`], bytes: 0 };
          }
          if ('unverifiable' in r) {
            if (stats) stats.unverifiable++;
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
