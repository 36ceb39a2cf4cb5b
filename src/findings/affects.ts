// What a broken layer breaks: every image whose chain runs through it, every container whose
// mount sits on it.
import { imageLabel } from '../store/images.js';
import { ancestors } from '../store/references.js';
import type { ImageRecord, MountRecord, Store } from '../store/model.js';
import type { Affects, ScanContext } from './types.js';

/** Chain ID -> the images whose chain runs through it and the mounts that sit on it. */
interface Dependents {
  images: Map<string, ImageRecord[]>;
  mounts: Map<string, MountRecord[]>;
}

// Built once per store: a scan of thousands of layers asks for hundreds of findings, and walking
// every image and every mount's ancestry per finding grew with their product.
const dependentsOf = new WeakMap<Store, Dependents>();

function dependents(store: Store): Dependents {
  let d = dependentsOf.get(store);
  if (d) return d;
  d = { images: new Map(), mounts: new Map() };
  const add = <T>(m: Map<string, T[]>, chainId: string, v: T) => {
    const list = m.get(chainId);
    if (list) list.push(v);
    else m.set(chainId, [v]);
  };
  for (const img of store.images.images) for (const c of new Set(img.chainIds)) add(d.images, c, img);
  for (const m of store.layerdb.mounts) if (m.parent) for (const c of ancestors(store.layerdb.layers, m.parent)) add(d.mounts, c, m);
  dependentsOf.set(store, d);
  return d;
}

/** The images whose chain runs through `chainId`, in store order. */
export function imagesThrough(store: Store, chainId: string): ImageRecord[] {
  return dependents(store).images.get(chainId) ?? [];
}

export function affectedBy(ctx: Pick<ScanContext, 'store' | 'refs'>, chainIds: string[]): Affects {
  const d = dependents(ctx.store);
  const images = new Set<string>();
  const containers = new Set<string>();
  const imageIds = new Set<string>();
  for (const chainId of new Set(chainIds)) {
    for (const img of d.images.get(chainId) ?? []) {
      images.add(imageLabel(img));
      imageIds.add(img.id);
    }
    for (const m of d.mounts.get(chainId) ?? []) containers.add(ctx.refs.containerByMount.get(m.name)?.name ?? m.name);
  }
  for (const c of ctx.store.containers) {
    if (c.image && imageIds.has(c.image)) containers.add(c.name);
  }
  return { images: [...images].sort(), containers: [...containers].sort() };
}
