// removing-orphan: layerdb/sha256/<chain>-<random>-removing. moby renamed the layer there before
// driver.Remove failed (EPERM, EBUSY, an immutable file) and retries only at a clean shutdown.
import { keepingClaims } from '../store/references.js';
import { short } from '../store/digest.js';
import { STAGED_SUFFIX } from '../layout.js';
import { describeClaim } from './describe.js';
import { measure } from './measure.js';
import { driverPaths } from './driver-paths.js';
import { noAffects, type Finding, type FindingModule } from './types.js';

export const removingOrphans: FindingModule = async (ctx) => {
  const out: Finding[] = [];
  const { driver } = ctx.store;
  for (const r of ctx.store.layerdb.removing) {
    const paths = [r.dir];
    let reason = `layer ${short(r.chainId)} was renamed for removal but its driver data was not removed; moby retries only at a clean daemon shutdown`;
    let driverId: string | undefined;
    let reportOnly = false;
    if (!r.cacheId) {
      reason = `layer ${short(r.chainId)} was renamed for removal and ${r.cacheIdProblem ?? 'has no cache-id'}, so moby skips it forever`;
    } else {
      const keeping = keepingClaims(ctx.refs.claims.get(r.cacheId));
      const inferred = ctx.kept.get(r.cacheId);
      const dataPaths = await driverPaths(ctx, r.cacheId);
      if (keeping.length) reason += `; its cache-id ${r.cacheId} is still used by ${describeClaim(ctx, keeping[0])}, so that driver dir is kept`;
      else if (inferred) reason += `; its driver dir ${r.cacheId} is kept: ${inferred}`;
      else if (!dataPaths.length) reason += `; its driver data (${driver.dirOf(r.cacheId)}) is already gone`;
      else if (ctx.counted.has(r.cacheId)) reason += `; its driver dir is shared with another -removing entry`;
      else {
        const state = dataPaths.some((p) => p.endsWith(STAGED_SUFFIX)) ? 'staged for removal by an earlier layergc purge that did not finish' : 'left behind';
        reason += `; its driver dir ${driver.dirOf(r.cacheId)} is ${state}`;
        // on a report-only driver the purge plan skips it, metadata too: it ties the data to the layer for the driver's own tools
        reportOnly = driver.removal === 'report-only';
        if (reportOnly) reason += ` (${driver.removalNote ?? 'this driver is report-only'})`;
        driverId = r.cacheId;
        paths.push(...dataPaths);
        ctx.counted.add(r.cacheId);
      }
    }
    const m = measure(ctx, paths);
    out.push({
      kind: 'removing-orphan',
      severity: 'warning',
      layer: r.chainId,
      cacheId: r.cacheId,
      paths,
      bytes: m.bytes,
      reclaimable: !reportOnly,
      reason,
      affects: noAffects(),
      removal: { type: 'entry', dir: r.dir, driverId },
      newestMs: m.newestMs,
      mountsInside: m.mountsInside,
    });
  }
  return out;
};
