// missing-parent: a layer whose `parent` names a chain that is not in the layer store.
import { short } from '../store/digest.js';
import { affectedBy } from './affects.js';
import type { Finding, FindingModule } from './types.js';

export const missingParents: FindingModule = async (ctx) => {
  const out: Finding[] = [];
  const { layers } = ctx.store.layerdb;
  for (const l of layers.values()) {
    if (l.problems.length || !l.parent || layers.has(l.parent)) continue;
    out.push({
      kind: 'missing-parent',
      severity: 'error',
      layer: l.chainId,
      cacheId: l.cacheId,
      paths: [`${l.dir}/parent`],
      bytes: 0,
      reclaimable: false,
      reason: `its parent layer ${short(l.parent)} is not in the layer store, so the daemon cannot load this layer or any above it`,
      affects: affectedBy(ctx, [l.chainId]),
    });
  }
  return out;
};
