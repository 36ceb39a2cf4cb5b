// layergc df: every byte under the data root, split into categories that add up to what
// `du -sx -B1 <root>` counts. One size accounting for the whole run, shared with the scan: each
// inode counted once, no mount point crossed, and the garbage categories are scan's own bytes.
//
// Order, and so who a shared thing is counted for: (1) scan's findings, as scan measures them;
// (2) the layers of images, then containers' mounts, then the other layers, then any driver dir
// left, by what claims it; (3) a walk of the rest of the root, classified by where it lies.
// A hard-linked file counts where its last link is found; one with links outside the root (or
// behind a mount point) counts once, in linked-outside.
import type { Stats } from 'node:fs';
import { fs } from '../fsx/fs.js';
import { scanStore } from '../findings/index.js';
import { driverPaths } from '../findings/driver-paths.js';
import { keepingClaims } from '../store/references.js';
import { imageLabel, readImageParents } from '../store/images.js';
import { imageMetadataDir, mightBeBuildkit } from '../layout.js';
import type { ImageRecord, LayerRecord, Store } from '../store/model.js';
import type { MountTable } from '../fsx/mounts.js';
import { SizeAccounting } from '../fsx/size.js';
import { DF_CATEGORIES, FINDING_CATEGORIES, type DfCategory } from './categories.js';

export interface DfCategoryBytes {
  category: DfCategory;
  bytes: number;
  /** `other` only: the path (relative to the data root) these bytes lie under. */
  path?: string;
}

export interface DfImage {
  /** first tag, else the image ID */
  image: string;
  id: string;
  tags: string[];
  /**
   * What `docker rmi` of it frees: its layers no other image, container or BuildKit snapshot uses,
   * and the config and metadata of it and of the untagged parents deleted with it
   */
  uniqueBytes: number;
  /** layers this image shares with others, counted whole (as `docker system df` does) */
  sharedBytes: number;
}

export interface DfReport {
  dataRoot: string;
  driver: string;
  daemonRunning: boolean;
  /** the sum of the categories */
  total: number;
  categories: DfCategoryBytes[];
  images: DfImage[];
  /** what `purge --yes` would free now: scan's reclaimable bytes */
  reclaimableBytes: number;
  /** mount points under the data root, not counted (as `du -x` does not) */
  mountsSkipped: string[];
}

export async function diskUsage(store: Store, opts: { mounts?: MountTable } = {}): Promise<DfReport> {
  const { findings, refs, kept, sizes, mounts } = await scanStore(store, { mounts: opts.mounts });
  const root = store.loc.dataRoot;
  const bytes = new Map<string, { category: DfCategory; path?: string; bytes: number }>();
  const add = (category: DfCategory, n: number, path?: string) => {
    const key = path === undefined ? category : `${category}\0${path}`;
    const e = bytes.get(key) ?? { category, path, bytes: 0 };
    e.bytes += n;
    bytes.set(key, e);
  };
  const skipped = new Set<string>();
  const rel = (p: string) => (p === root ? '' : p.slice(root.length + 1));

  // (1) the findings, with the bytes scan reports for them
  for (const f of findings) {
    for (const m of f.mountsInside ?? []) skipped.add(m);
    if (f.bytes) add((FINDING_CATEGORIES as readonly string[]).includes(f.kind) ? (f.kind as DfCategory) : 'broken-layer', f.bytes);
  }

  /** Measure what no one measured yet; returns the bytes counted. */
  const take = (paths: string[], category: DfCategory): number => {
    let n = 0;
    for (const p of paths) {
      if (sizes.measured.has(p) || mounts.isMountPoint(p)) continue;
      const s = sizes.measure(p);
      n += s.bytes;
      for (const m of s.mountsInside) skipped.add(m);
      if (category === 'other') add('other', s.bytes, rel(p));
    }
    if (category !== 'other') add(category, n);
    return n;
  };
  const dataOf = async (id: string | undefined) => (id ? driverPaths({ store }, id) : []);

  // (2) layers, mounts, driver dirs
  const layerCategory = (l: LayerRecord): DfCategory => {
    if (!refs.loadable.get(l.chainId)) return 'broken-layer';
    const owners = refs.live.get(l.chainId);
    if (!owners) return refs.buildkitUnknown ? 'buildkit-snapshots' : 'unreferenced-layer';
    return owners.some((o) => o.kind !== 'buildkit') ? 'image-layers' : 'buildkit-snapshots';
  };
  const layers = [...store.layerdb.layers.values()].sort((a, b) => a.chainId.localeCompare(b.chainId));
  const layerBytes = new Map<string, number>();
  for (const l of layers.filter((x) => layerCategory(x) === 'image-layers')) {
    layerBytes.set(l.chainId, take([l.dir, ...(await dataOf(l.cacheId))], 'image-layers'));
  }
  for (const m of store.layerdb.mounts) {
    // as references.ts: either id stands for the pair when the other file is empty
    const mountId = m.mountId ?? m.initId?.replace(/-init$/, '');
    const initId = m.initId ?? (m.mountId ? `${m.mountId}-init` : undefined);
    take([m.dir, ...(await dataOf(mountId)), ...(await dataOf(initId))], 'container-layers');
  }
  for (const l of layers) {
    const c = layerCategory(l);
    // a finding category keeps exactly the bytes scan gave it
    if (c !== 'image-layers' && !FINDING_CATEGORIES.includes(c)) take([l.dir, ...(await dataOf(l.cacheId))], c);
  }
  for (const e of [...store.driverEntries].sort((a, b) => a.path.localeCompare(b.path))) {
    if (e.stat.isSymbolicLink()) continue; // never followed: the walk below counts the link itself
    const paths = e.staged ? [e.path] : await store.driver.pathsOf(e.id);
    const claims = keepingClaims(refs.claims.get(e.id));
    const layer = claims.find((c) => c.kind === 'layer');
    let category: DfCategory = 'other';
    if (e.staged) category = 'other';
    else if (claims.some((c) => c.kind === 'mount')) category = 'container-layers';
    else if (claims.some((c) => c.kind === 'buildkit')) category = 'buildkit-snapshots';
    else if (layer?.kind === 'layer') category = layer.live ? 'image-layers' : layer.loadable ? 'unreferenced-layer' : 'broken-layer';
    else if (kept.has(e.id)) category = refs.buildkitUnknown && mightBeBuildkit(e.id) ? 'buildkit-snapshots' : 'kept-driver-dir';
    take(paths, category);
  }

  // (3) the rest of the root, by where it lies
  const mixed = new Set<string>([root]);
  for (const p of sizes.measured) {
    if (!p.startsWith(`${root}/`)) continue;
    for (let d = p.slice(0, p.lastIndexOf('/')); d.length > root.length && !mixed.has(d); d = d.slice(0, d.lastIndexOf('/'))) mixed.add(d);
  }
  const place = new Placement(store);
  let rootDev: number;
  try {
    rootDev = fs.lstatSync(root).dev;
  } catch {
    rootDev = -1;
  }
  const walk = (p: string) => {
    let st: Stats;
    try {
      st = fs.lstatSync(p);
    } catch {
      return; // gone since it was listed (a live daemon)
    }
    // as du -x: another filesystem is not crossed; a bind mount of this one (dockerd may bind the
    // driver home onto itself) is walked like the dir it is
    if (p !== root && st.dev !== rootDev) {
      skipped.add(p);
      return;
    }
    if (sizes.measured.has(p)) return;
    const r = rel(p);
    if (st.isDirectory() && (mixed.has(p) || place.split(r))) {
      const own = place.ownInode(r);
      add(own.category, st.blocks * 512, own.path);
      let names: string[];
      try {
        names = fs.readdirSync(p) as string[];
      } catch {
        return;
      }
      for (const n of names.sort()) walk(`${p}/${n}`);
      return;
    }
    const c = place.leaf(r);
    const s = sizes.measure(p);
    for (const m of s.mountsInside) skipped.add(m);
    add(c.category, s.bytes, c.path);
  };
  walk(root);
  add('linked-outside', sizes.unfinishedBytes());

  // per image: its layers, unique when nothing but what `docker rmi` of it deletes uses the layer or its driver dir
  const images: DfImage[] = [];
  const rmi = deletedWith(store);
  // an image's own files are image-metadata's bytes already: measured apart, for the per-image view only
  const own = new SizeAccounting(mounts);
  const ownBytes = (i: ImageRecord) => own.measure(i.path).bytes + own.measure(imageMetadataDir(store.loc.imageDir, i.id)).bytes;
  for (const img of store.images.images) {
    if (img.problem) continue; // the daemon skips it: it holds nothing
    const gone = rmi(img);
    let unique = [...gone].reduce((t, i) => t + ownBytes(i), 0);
    let shared = 0;
    for (const chain of img.chainIds) {
      const b = layerBytes.get(chain);
      if (b === undefined) continue;
      const l = store.layerdb.layers.get(chain);
      const owners = refs.live.get(chain) ?? [];
      const claims = l?.cacheId ? keepingClaims(refs.claims.get(l.cacheId)) : [];
      const only = owners.every((o) => o.kind === 'image' && gone.has(o.image)) && claims.every((c) => c.kind === 'layer' && c.chainId === chain);
      if (only) unique += b;
      else shared += b;
    }
    images.push({ image: imageLabel(img), id: img.id, tags: img.tags, uniqueBytes: unique, sharedBytes: shared });
  }
  images.sort((a, b) => b.uniqueBytes - a.uniqueBytes || b.sharedBytes - a.sharedBytes || a.image.localeCompare(b.image));

  const categories: DfCategoryBytes[] = DF_CATEGORIES.filter((c) => c !== 'other').map((c) => ({ category: c, bytes: bytes.get(c)?.bytes ?? 0 }));
  for (const e of bytes.values()) if (e.category === 'other') categories.push({ category: 'other', bytes: e.bytes, path: e.path ?? '' });
  const order = (c: DfCategory) => DF_CATEGORIES.indexOf(c);
  categories.sort((a, b) => b.bytes - a.bytes || order(a.category) - order(b.category) || (a.path ?? '').localeCompare(b.path ?? ''));

  return {
    dataRoot: root,
    driver: store.loc.driver,
    daemonRunning: store.daemon.running,
    total: categories.reduce((s, c) => s + c.bytes, 0),
    categories,
    images,
    reclaimableBytes: findings.filter((f) => f.reclaimable).reduce((s, f) => s + f.bytes, 0),
    mountsSkipped: [...skipped].sort(),
  };
}

/**
 * What `docker rmi` of an image (all its tags) deletes, as moby's imageDeleteHelper: nothing when a
 * child image or a container needs it (rmi refuses); else the image, then each parent in turn
 * while it is untagged, no container uses it and it has no other child.
 */
function deletedWith(store: Store): (img: ImageRecord) => Set<ImageRecord> {
  readImageParents(store.loc.imageDir, store.images.images);
  const byId = new Map(store.images.images.map((i) => [i.id, i]));
  const children = new Map<string, number>();
  for (const i of store.images.images) if (i.parent) children.set(i.parent, (children.get(i.parent) ?? 0) + 1);
  const inUse = new Set(store.containers.map((c) => c.image));
  return (img) => {
    if (children.has(img.id) || inUse.has(img.id)) return new Set();
    const gone = new Set([img]);
    for (let p = byId.get(img.parent ?? ''); p && !gone.has(p) && !p.tags.length && !inUse.has(p.id) && children.get(p.id) === 1; p = byId.get(p.parent ?? '')) gone.add(p);
    return gone;
  };
}

/** Where a path the layer model did not claim belongs, from where it lies in the root. */
class Placement {
  private readonly driverRel: string;
  private readonly imageRel: string;
  private readonly layerdbRel: string;

  constructor(store: Store) {
    const r = (p: string) => p.slice(store.loc.dataRoot.length + 1);
    this.driverRel = r(store.loc.driverHome);
    this.imageRel = r(store.loc.imageDir);
    this.layerdbRel = r(store.loc.layerdb);
  }

  private under(rel: string, dir: string): boolean {
    return rel === dir || rel.startsWith(`${dir}/`);
  }

  /** Dirs whose entries belong to different categories. */
  split(rel: string): boolean {
    return rel === '' || rel === 'containers' || /^containers\/[^/]+$/.test(rel) || rel === 'image' || rel === this.imageRel;
  }

  /** The category of a split dir's own inode. */
  ownInode(rel: string): { category: DfCategory; path?: string } {
    if (rel === '' || this.under(rel, this.layerdbRel) || this.under(rel, this.driverRel)) return { category: 'store-bookkeeping' };
    if (rel === 'image' || this.under(rel, this.imageRel)) return { category: 'image-metadata' };
    return this.leaf(rel);
  }

  leaf(rel: string): { category: DfCategory; path?: string } {
    const parts = rel.split('/');
    switch (parts[0]) {
      case 'layergc':
        return { category: 'layergc' };
      case 'buildkit':
        return { category: 'buildkit' };
      case 'volumes':
        return { category: 'volumes' };
      case 'containers':
        // json-file logs (and their rotations) and the local driver's dir
        if (parts.length === 3 && (parts[2].startsWith(`${parts[1]}-json.log`) || parts[2] === 'local-logs')) return { category: 'container-logs' };
        return { category: 'container-files' };
    }
    if (this.under(rel, this.layerdbRel)) {
      // its own subdirs, empty; anything else in it is no layer, mount or write-set: named
      return parts.length <= this.layerdbRel.split('/').length + 1 && ['sha256', 'mounts', 'tmp', 'layerdb'].includes(parts[parts.length - 1])
        ? { category: 'store-bookkeeping' }
        : { category: 'other', path: rel };
    }
    if (this.under(rel, this.imageRel) || rel === 'image') return { category: 'image-metadata' };
    if (rel === this.driverRel || this.under(rel, `${this.driverRel}/l`)) return { category: 'store-bookkeeping' };
    return { category: 'other', path: rel };
  }
}
