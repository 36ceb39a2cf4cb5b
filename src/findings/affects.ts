// What a broken layer breaks: every image whose chain runs through it, every container whose
// mount sits on it.
import { imageLabel } from '../store/images.js';
import { ancestors } from '../store/references.js';
import type { Affects, ScanContext } from './types.js';

export function affectedBy(ctx: Pick<ScanContext, 'store' | 'refs'>, chainIds: string[]): Affects {
  const want = new Set(chainIds);
  const images = new Set<string>();
  const containers = new Set<string>();
  const imageIds = new Set<string>();
  for (const img of ctx.store.images.images) {
    if (img.chainIds.some((c) => want.has(c))) {
      images.add(imageLabel(img));
      imageIds.add(img.id);
    }
  }
  for (const m of ctx.store.layerdb.mounts) {
    if (!m.parent) continue;
    if (ancestors(ctx.store.layerdb.layers, m.parent).some((c) => want.has(c)) || want.has(m.parent)) {
      const c = ctx.refs.containerByMount.get(m.name);
      containers.add(c?.name ?? m.name);
    }
  }
  for (const c of ctx.store.containers) {
    if (c.image && imageIds.has(c.image)) containers.add(c.name);
  }
  return { images: [...images].sort(), containers: [...containers].sort() };
}
