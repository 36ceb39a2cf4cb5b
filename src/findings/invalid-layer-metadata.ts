// invalid-layer-metadata: a layerdb entry the daemon's loadLayer rejects: it is silently absent
// after a restart, its images vanish, and a re-pull fails with "rename ... file exists" (moby#44909).
import { affectedBy } from './affects.js';
import { layerPaths } from './layer-paths.js';
import { measure } from './measure.js';
import type { Finding, FindingModule } from './types.js';

export const invalidLayerMetadata: FindingModule = async (ctx) => {
  const out: Finding[] = [];
  for (const l of ctx.store.layerdb.layers.values()) {
    if (!l.problems.length) continue;
    const empty = ['diff', 'size', 'cache-id'].every((n) => l.problems.includes(`${n} is missing`)) && !l.parent && !l.hasTarSplit;
    const reason = empty
      ? 'the layer directory is empty (a crash before the rename reached the disk): the daemon cannot load it, and a re-pull fails with "rename … file exists" (moby#44909)'
      : `the daemon cannot load this layer: ${l.problems.join('; ')}`;
    const paths = await layerPaths(ctx, l);
    const m = measure(ctx, paths);
    out.push({
      kind: 'invalid-layer-metadata',
      severity: 'error',
      layer: l.chainId,
      cacheId: l.cacheId,
      paths,
      bytes: m.bytes,
      reclaimable: false,
      reason,
      affects: affectedBy(ctx, [l.chainId]),
      newestMs: m.newestMs,
    });
  }
  return out;
};
