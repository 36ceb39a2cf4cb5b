// Step 2 and 3 of a repair: what cannot be repaired goes, with everything that needs it. Broken
// layers, every layer built on them (children first), the images whose chains run through them,
// their tags and digests, the distribution cache entries of their diff IDs, and the layers only
// those images kept. A container on a doomed chain holds that chain (and its images) back unless
// containers are included.
import { ancestors, keepingClaims, type DriverClaim } from '../store/references.js';
import { inferKept } from '../findings/kept.js';
import { imageLabel } from '../store/images.js';
import { short } from '../store/digest.js';
import { containerDir, distributionPaths, HEX64, imageMetadataDir, STAGED_SUFFIX } from '../layout.js';
import { listDir, readSmallFile } from '../fsx/read.js';
import { SOURCE_CLAIMS } from '../store/sources.js';
import type { ContainerRecord, ImageRecord, MountRecord, Store } from '../store/model.js';
import type { Finding, FindingKind, ScanResult } from '../findings/index.js';
import { clearedByLinks, type Repair } from './evidence.js';

/** Finding kinds that make a layer broken: it and everything on it go. */
const BROKEN_LAYER_KINDS: readonly FindingKind[] = ['missing-driver-data', 'invalid-layer-metadata', 'missing-parent', 'chain-id-mismatch', 'driver-data-damaged'];

/** Kinds a repair's actions carry besides the garbage kinds (docs/purge.schema.json). */
export const REPAIR_ACTION_KINDS: readonly FindingKind[] = [...BROKEN_LAYER_KINDS, 'broken-mount', 'image-missing-layers'];

export interface DoomedLayer {
  chainId: string;
  kind: FindingKind;
  why: string;
  cacheId?: string;
  removeDriverDir: boolean;
  diffId?: string;
}
export interface DoomedImage {
  image: ImageRecord;
  why: string;
  remedy: string;
  metadataDir: string;
}
export interface DoomedContainer {
  container?: ContainerRecord;
  mount: MountRecord;
  name: string;
  driverIds: string[];
  containerDir?: string;
}
/** What keeps a broken chain (and the images on it) from going: a container on it, or BuildKit's cache. */
export interface HeldBack {
  holder: 'container' | 'buildkit';
  container?: string;
  chains: string[];
  images: string[];
  reason: string;
}

export interface RepairPlan {
  /** Children before parents. */
  layers: DoomedLayer[];
  images: DoomedImage[];
  containers: DoomedContainer[];
  heldBack: HeldBack[];
  /** Why layers the removed images used are kept, when what else uses them cannot be known. */
  notes: string[];
  /** Nothing could be removed safely (an unreadable reference source): exit 1. */
  blocked?: boolean;
  /** Tags and digests that go from repositories.json. */
  refs: string[];
  /** distribution/diffid-by-digest and v2metadata-by-diffid files of the removed diff IDs. */
  distribution: { path: string; diffId: string }[];
}

/** What to do about an image that had to go: pull it by digest when one is known, else rebuild it. */
export function remedyFor(img: Pick<ImageRecord, 'tags' | 'id'>): string {
  const digest = img.tags.find((t) => t.includes('@'));
  if (digest) return `docker pull ${digest}`;
  const tag = img.tags[0];
  return `no registry digest is known: it was built or loaded here; rebuild it (docker build${tag ? ` -t ${tag}` : ''}) or docker load it again`;
}

export interface PlanOptions {
  containers: boolean;
  repairs: Repair[];
}

export async function planRepair(store: Store, scan: ScanResult, opts: PlanOptions): Promise<RepairPlan> {
  // unknown is not empty: with a reference source unreadable, what needs a broken layer cannot be known
  if (store.unknownSources.length) {
    const notes = store.unknownSources.map((u) => `${u.path} ${u.why}: ${SOURCE_CLAIMS[u.source]} cannot be known, so no broken layer, image or container is removed`);
    return { layers: [], images: [], containers: [], heldBack: [], refs: [], distribution: [], notes, blocked: true };
  }
  const layers = store.layerdb.layers;
  const fixed = new Set(opts.repairs.filter((r) => r.kind === 'cache-id').map((r) => r.layer!));
  const broken = new Map<string, { kind: FindingKind; why: string }>();
  for (const f of scan.findings) {
    if (!f.layer || !BROKEN_LAYER_KINDS.includes(f.kind) || !layers.has(f.layer)) continue;
    if (f.kind === 'invalid-layer-metadata' && fixed.has(f.layer)) continue;
    if (f.kind === 'driver-data-damaged' && f.cacheId && clearedByLinks(await store.driver.checkLayer(f.cacheId, { hasParent: !!layers.get(f.layer)!.parent }), opts.repairs, f.cacheId)) continue;
    if (!broken.has(f.layer)) broken.set(f.layer, { kind: f.kind, why: f.reason });
  }
  // every layer whose chain runs through a broken one
  const doomedChains = new Map<string, { kind: FindingKind; why: string }>();
  for (const id of layers.keys()) {
    const chain = ancestors(layers, id);
    const b = chain.find((c) => broken.has(c));
    if (b) doomedChains.set(id, b === id ? broken.get(b)! : { kind: broken.get(b)!.kind, why: `it is built on broken layer ${short(b)}` });
  }
  const chainDoomed = (c: string) => doomedChains.has(c) || !layers.has(c);

  // containers on a doomed chain: removed with --include containers, else they hold their chain back
  const held = new Set<string>();
  const heldBack: HeldBack[] = [];
  const containers: DoomedContainer[] = [];
  const containerById = new Map(store.containers.map((c) => [c.id, c]));
  for (const m of store.layerdb.mounts) {
    if (!m.parent) continue;
    const chain = ancestors(layers, m.parent);
    const onDoomed = !layers.has(m.parent) || chain.some((c) => chainDoomed(c)) || !scan.refs.loadable.get(m.parent);
    if (!onDoomed) continue;
    const c = containerById.get(m.name);
    const name = c?.name ?? m.name;
    if (opts.containers) {
      const mountId = m.mountId ?? m.initId?.replace(/-init$/, '');
      const driverIds = [mountId, m.initId ?? (mountId ? `${mountId}-init` : undefined)].filter((x): x is string => !!x);
      containers.push({ container: c, mount: m, name, driverIds, containerDir: c ? containerDir(store.loc.dataRoot, c.id) : undefined });
    } else {
      const chains = chain.filter((x) => doomedChains.has(x));
      for (const x of chains) held.add(x);
      heldBack.push({
        holder: 'container',
        container: name,
        chains,
        images: [],
        reason: `container ${name} sits on ${chains.length ? `broken chain ${short(chains[chains.length - 1])}` : `layer ${short(m.parent)}, which does not load`}; remove it (docker rm) or pass --include broken,containers`,
      });
    }
  }
  // BuildKit's cache records chains too: those stay until BuildKit lets go of them
  const buildkitHeld = new Set<string>();
  for (const c of store.buildkit.chainIds) for (const x of ancestors(layers, c)) if (doomedChains.has(x)) buildkitHeld.add(x);
  if (buildkitHeld.size) {
    const chains = [...buildkitHeld].sort((a, b) => ancestors(layers, b).length - ancestors(layers, a).length || a.localeCompare(b));
    for (const x of chains) held.add(x);
    heldBack.push({
      holder: 'buildkit',
      chains,
      images: [],
      reason: `BuildKit's build cache uses broken chain ${short(chains[chains.length - 1])}; clear it (docker builder prune), then run this again`,
    });
  }

  const images: DoomedImage[] = [];
  for (const img of store.images.images) {
    if (img.problem || !img.chainIds.length) continue;
    const i = img.chainIds.findIndex(chainDoomed);
    if (i < 0) continue;
    if (img.chainIds.some((c) => held.has(c))) {
      for (const h of heldBack) if (img.chainIds.some((c) => h.chains.includes(c))) h.images.push(imageLabel(img));
      continue;
    }
    const c = img.chainIds[i];
    images.push({
      image: img,
      why: `layer ${i + 1} of ${img.chainIds.length} (${short(c)}) ${layers.has(c) ? (doomedChains.get(c)?.why ?? 'is broken') : 'is missing'}`,
      remedy: remedyFor(img),
      metadataDir: imageMetadataDir(store.loc.imageDir, img.id),
    });
  }
  const doomedImages = new Set(images.map((d) => d.image));
  const doomedMounts = new Set(containers.map((d) => d.mount));

  // layers that only removed images and containers kept go with them, as docker rmi releases them
  const released = new Map<string, { kind: FindingKind; why: string }>();
  const notes: string[] = [];
  // unknown is not empty: while a config or BuildKit's databases cannot be read, they may use any layer
  const unknown = scan.refs.imagesUnknown.length ? `${scan.refs.imagesUnknown.length} image config(s) cannot be read` : scan.refs.buildkitUnknown ? "BuildKit's databases cannot be read" : undefined;
  if (unknown && images.length) notes.push(`the layers only the removed images used are kept: ${unknown}, and they may use them`);
  for (const [id, owners] of unknown ? [] : scan.refs.live) {
    // a chain the layer store does not hold (an image's missing layer) has nothing to release
    if (doomedChains.has(id) || !owners.length || !layers.has(id)) continue;
    const gone = owners.every((o) => (o.kind === 'image' && doomedImages.has(o.image)) || (o.kind === 'mount' && doomedMounts.has(o.mount)));
    if (gone)
      released.set(id, {
        kind: 'unreferenced-layer',
        why: `only ${owners.map((o) => (o.kind === 'image' ? `image ${imageLabel(o.image)}` : `container ${containers.find((d) => d.mount === (o as { mount: MountRecord }).mount)?.name}`)).join(', ')}, removed here, used it`,
      });
  }

  const depth = (id: string) => ancestors(layers, id).length;
  const doomed: DoomedLayer[] = [];
  const gone = new Set<string>();
  for (const [id] of [...doomedChains, ...released]) {
    if (held.has(id)) continue;
    gone.add(id);
  }
  // a driver dir goes only when nothing that stays claims it, stacks on it, or may own it (BuildKit)
  const goes = (c: DriverClaim) => (c.kind === 'layer' && gone.has(c.chainId)) || (c.kind === 'mount' && doomedMounts.has(c.mount));
  const kept = await inferKept(store, scan.refs, goes);
  const needed = (id: string) => [id, `${id}${STAGED_SUFFIX}`].some((x) => keepingClaims(scan.refs.claims.get(x)).some((c) => !goes(c)) || kept.has(x));
  for (const c of containers) c.driverIds = c.driverIds.filter((id) => !needed(id));
  for (const id of [...gone].sort((a, b) => depth(b) - depth(a) || a.localeCompare(b))) {
    const l = layers.get(id)!;
    const d = doomedChains.get(id) ?? released.get(id)!;
    const cacheId = l.cacheId;
    doomed.push({ chainId: id, kind: d.kind, why: d.why, cacheId, removeDriverDir: !!cacheId && !needed(cacheId), diffId: l.diffId });
  }

  // tags and digests of the removed images
  const refs = images.flatMap((d) => d.image.tags);

  // distribution cache entries of diff IDs no surviving layer has
  const goneDiffs = new Set<string>();
  for (const d of doomed) if (d.diffId) goneDiffs.add(d.diffId);
  for (const d of images)
    d.image.chainIds.forEach((c, i) => {
      if (gone.has(c) || !layers.has(c)) goneDiffs.add(d.image.diffIds[i]);
    });
  for (const l of layers.values()) if (!gone.has(l.chainId) && l.diffId && scan.refs.loadable.get(l.chainId)) goneDiffs.delete(l.diffId);
  const distribution = await distributionEntries(store.loc.imageDir, goneDiffs);
  return { layers: doomed, images, containers, heldBack, refs, distribution, notes };
}

async function distributionEntries(imageDir: string, diffIds: Set<string>): Promise<{ path: string; diffId: string }[]> {
  if (!diffIds.size) return [];
  const out: { path: string; diffId: string }[] = [];
  const dist = distributionPaths(imageDir);
  for (const e of await listDir(dist.diffidByDigest)) {
    if (!e.stat.isFile() || !HEX64.test(e.name)) continue;
    const f = await readSmallFile(e.path);
    if (f.state === 'ok' && diffIds.has(f.text.trim())) out.push({ path: e.path, diffId: f.text.trim() });
  }
  for (const e of await listDir(dist.v2metadataByDiffid)) {
    if (e.stat.isFile() && diffIds.has(`sha256:${e.name}`)) out.push({ path: e.path, diffId: `sha256:${e.name}` });
  }
  return out.sort((a, b) => a.path.localeCompare(b.path));
}

/** The repositories.json text without `drop`, or null when nothing in it changes. */
export function withoutRefs(text: string, drop: Set<string>): string | null {
  const j = JSON.parse(text) as { Repositories?: Record<string, Record<string, string>> };
  let changed = false;
  for (const [repo, refs] of Object.entries(j.Repositories ?? {})) {
    for (const ref of Object.keys(refs)) {
      if (drop.has(ref)) {
        delete refs[ref];
        changed = true;
      }
    }
    if (!Object.keys(refs).length) delete j.Repositories![repo];
  }
  return changed ? JSON.stringify(j) : null;
}

/** The doomed layers as findings, for the shared action list, report and metrics. */
export function layerFinding(store: Store, d: DoomedLayer, paths: string[]): Finding {
  return {
    kind: d.kind,
    severity: d.kind === 'unreferenced-layer' ? 'warning' : 'error',
    layer: d.chainId,
    cacheId: d.cacheId,
    paths,
    bytes: 0,
    reclaimable: true,
    reason: d.why,
    affects: { images: [], containers: [] },
    removal: { type: 'entry', dir: store.layerdb.layers.get(d.chainId)!.dir, driverId: d.removeDriverDir ? d.cacheId : undefined },
  };
}
