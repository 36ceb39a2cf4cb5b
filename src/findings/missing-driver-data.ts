// missing-driver-data: a layer whose cache-id dir is gone (deleted by hand, a partial removal
// before Docker 20.10). Pulls say "Already exists" and then fail to mount.
import { affectedBy } from './affects.js';
import type { Finding, FindingModule } from './types.js';

export const missingDriverData: FindingModule = async (ctx) => {
  const out: Finding[] = [];
  const { driver } = ctx.store;
  if (!driver.dataVisibleOffline) return out; // a missing path says nothing
  for (const l of ctx.store.layerdb.layers.values()) {
    if (!l.cacheId || driver.typeOf(l.cacheId)) continue;
    out.push({
      kind: 'missing-driver-data',
      severity: 'error',
      layer: l.chainId,
      cacheId: l.cacheId,
      paths: [l.dir, driver.dirOf(l.cacheId)],
      bytes: 0,
      reclaimable: false,
      reason: `the layer's driver dir ${driver.dirOf(l.cacheId)} does not exist: containers of its images fail to start ("no such file or directory") and pulls say "Already exists"`,
      affects: affectedBy(ctx, [l.chainId]),
    });
  }
  return out;
};
