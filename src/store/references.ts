// Who keeps what alive. Live layers: every chain-ID prefix of every image's rootfs.diff_ids, the
// parent chain of every mount, every chain BuildKit names, and their ancestors. Driver IDs are
// claimed by layer cache-ids, mount-ids, init-ids and BuildKit snapshots.
import type { ContainerRecord, ImageRecord, LayerRecord, MountRecord, Store } from './model.js';

/** Why a layer is live: the first owner found is enough to keep it. */
export type LayerOwner = { kind: 'image'; image: ImageRecord } | { kind: 'mount'; mount: MountRecord; container?: ContainerRecord } | { kind: 'buildkit' };

/** A claim on a driver dir. */
export type DriverClaim =
  | { kind: 'layer'; chainId: string; live: boolean; loadable: boolean }
  | { kind: 'mount'; mount: MountRecord; role: 'mount-id' | 'init-id'; container?: ContainerRecord }
  | { kind: 'buildkit' }
  | { kind: 'removing'; dir: string }
  | { kind: 'write-set'; dir: string };

export interface References {
  /** Live chain ID -> its direct owners (images, mounts, BuildKit) and, via `childOf`, its children. */
  live: Map<string, LayerOwner[]>;
  /** Whether a layer would load in the daemon (its files and every ancestor's are valid). */
  loadable: Map<string, boolean>;
  claims: Map<string, DriverClaim[]>;
  /** True when BuildKit's DB could not be read: every ID it might own counts as owned. */
  buildkitUnknown: boolean;
  /** Images whose config could not be read or trusted: any layer may be theirs. */
  imagesUnknown: ImageRecord[];
  containerByMount: Map<string, ContainerRecord>;
}

export function ancestors(layers: Map<string, LayerRecord>, chainId: string): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  let cur: string | undefined = chainId;
  while (cur && !seen.has(cur)) {
    seen.add(cur);
    out.push(cur);
    cur = layers.get(cur)?.parent;
  }
  return out;
}

export function computeReferences(store: Store): References {
  const { layers } = store.layerdb;
  const containerById = new Map(store.containers.map((c) => [c.id, c]));
  const containerByMount = new Map<string, ContainerRecord>();
  for (const m of store.layerdb.mounts) {
    const c = containerById.get(m.name);
    if (c) containerByMount.set(m.name, c);
  }

  const loadable = new Map<string, boolean>();
  const loads = (id: string, depth = 0): boolean => {
    const known = loadable.get(id);
    if (known !== undefined) return known;
    const rec = layers.get(id);
    loadable.set(id, false); // a parent cycle never loads
    const ok = !!rec && rec.problems.length === 0 && depth < 1000 && (!rec.parent || loads(rec.parent, depth + 1));
    loadable.set(id, ok);
    return ok;
  };
  for (const id of layers.keys()) loads(id);

  const live = new Map<string, LayerOwner[]>();
  // an owner is added to a chain's list once in a row (an image's own chain IDs are mostly its top's ancestors too)
  const own = (id: string, owner: LayerOwner) => {
    const list = live.get(id);
    if (!list) live.set(id, [owner]);
    else if (list[list.length - 1] !== owner) list.push(owner);
  };
  const keep = (chainId: string, owner: LayerOwner) => {
    for (const id of ancestors(layers, chainId)) own(id, owner);
  };
  for (const img of store.images.images) {
    if (img.problem) continue; // the daemon skips an invalid image: it keeps nothing
    const owner: LayerOwner = { kind: 'image', image: img };
    for (const c of img.chainIds) own(c, owner);
    if (img.chainIds.length) keep(img.chainIds[img.chainIds.length - 1], owner);
  }
  for (const m of store.layerdb.mounts) {
    if (m.parent) keep(m.parent, { kind: 'mount', mount: m, container: containerByMount.get(m.name) });
  }
  for (const c of store.buildkit.chainIds) keep(c, { kind: 'buildkit' });
  for (const [id, owners] of live) if (owners.length > 1) live.set(id, dedupe(owners));

  const claims = new Map<string, DriverClaim[]>();
  const claim = (id: string | undefined, c: DriverClaim) => {
    if (!id) return;
    const list = claims.get(id) ?? [];
    list.push(c);
    claims.set(id, list);
  };
  for (const l of layers.values()) claim(l.cacheId ?? l.namesDir, { kind: 'layer', chainId: l.chainId, live: live.has(l.chainId), loadable: loadable.get(l.chainId) ?? false });
  for (const m of store.layerdb.mounts) {
    // both files are written without fsync: one may be empty after a crash, so each also claims
    // the other's dir (init-id is always <mount-id>-init)
    const mountId = m.mountId ?? m.initId?.replace(/-init$/, '');
    const initId = m.initId ?? (m.mountId ? `${m.mountId}-init` : undefined);
    claim(mountId, { kind: 'mount', mount: m, role: 'mount-id', container: containerByMount.get(m.name) });
    claim(initId, { kind: 'mount', mount: m, role: 'init-id', container: containerByMount.get(m.name) });
  }
  for (const id of store.buildkit.driverIds) claim(id, { kind: 'buildkit' });
  for (const r of store.layerdb.removing) claim(r.cacheId, { kind: 'removing', dir: r.dir });
  for (const w of store.layerdb.writeSets) claim(w.cacheId, { kind: 'write-set', dir: w.dir });

  const imagesUnknown = store.images.images.filter((i) => i.layersUnknown);
  return { live, loadable, claims, buildkitUnknown: store.buildkit.state === 'unreadable', imagesUnknown, containerByMount };
}

function dedupe(owners: LayerOwner[]): LayerOwner[] {
  const seen = new Set<unknown>();
  return owners.filter((o) => {
    const key = o.kind === 'image' ? o.image : o.kind === 'mount' ? o.mount : 'buildkit';
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** Claims that keep a driver dir in use: anything but the garbage that names it. */
export function keepingClaims(claims: DriverClaim[] | undefined): DriverClaim[] {
  return (claims ?? []).filter((c) => c.kind !== 'removing' && c.kind !== 'write-set');
}
