// invalid-image: an image config the daemon rejects ("invalid image": content does not match its
// digest, no rootfs), or a repositories.json it cannot parse (the daemon will not start).
import { imageLabel } from '../store/images.js';
import { repositoriesJson } from '../layout.js';
import type { Finding, FindingModule } from './types.js';

export const invalidImages: FindingModule = async (ctx) => {
  const out: Finding[] = [];
  const { images, repositoriesProblem } = ctx.store.images;
  if (repositoriesProblem) {
    out.push({
      kind: 'invalid-image',
      severity: 'error',
      paths: [repositoriesJson(ctx.store.loc.imageDir)],
      bytes: 0,
      reclaimable: false,
      reason: repositoriesProblem,
      affects: { images: [], containers: [] },
    });
  }
  for (const img of images) {
    if (!img.problem) continue;
    out.push({ kind: 'invalid-image', severity: 'error', paths: [img.path], bytes: 0, reclaimable: false, reason: img.problem, affects: { images: [imageLabel(img)], containers: [] } });
  }
  return out;
};
