// image-missing-layers: an image whose layer chain does not load: the daemon skips it at start
// ("not restoring image ... layer does not exist") and it vanishes from `docker images`.
import { imageLabel } from '../store/images.js';
import { short } from '../store/digest.js';
import type { Finding, FindingModule } from './types.js';

export const imagesMissingLayers: FindingModule = async (ctx) => {
  const out: Finding[] = [];
  const { layers } = ctx.store.layerdb;
  for (const img of ctx.store.images.images) {
    if (img.problem || !img.chainIds.length) continue;
    const i = img.chainIds.findIndex((c) => !ctx.refs.loadable.get(c));
    if (i < 0) continue;
    const c = img.chainIds[i];
    const containers = ctx.store.containers
      .filter((x) => x.image === img.id)
      .map((x) => x.name)
      .sort();
    out.push({
      kind: 'image-missing-layers',
      severity: 'error',
      layer: c,
      paths: [img.path],
      bytes: 0,
      reclaimable: false,
      reason: `layer ${i + 1} of ${img.chainIds.length} (${short(c)}) ${layers.has(c) ? 'does not load' : 'is missing'}: the daemon skips this image at start ("layer does not exist")`,
      affects: { images: [imageLabel(img)], containers },
    });
  }
  return out;
};
