// stale-write-set: layerdb/tmp/write-set-*: a layer registration that never committed (a killed
// pull or load, a crash). moby never cleans layerdb/tmp.
import { measure } from './measure.js';
import { driverPaths } from './driver-paths.js';
import { driverDirKept, noAffects, type Finding, type FindingModule } from './types.js';

export const staleWriteSets: FindingModule = async (ctx) => {
  const out: Finding[] = [];
  for (const w of ctx.store.layerdb.writeSets) {
    const paths = [w.dir];
    let reason = 'a layer registration that never committed (killed pull or load, crash, power loss) left this transaction dir; moby never cleans layerdb/tmp';
    let driverId: string | undefined;
    if (w.cacheId && !driverDirKept(ctx, w.cacheId) && !ctx.counted.has(w.cacheId)) {
      const dp = await driverPaths(ctx, w.cacheId);
      if (dp.length && ctx.store.driver.removal !== 'report-only') {
        paths.push(...dp);
        driverId = w.cacheId;
        ctx.counted.add(w.cacheId);
        reason += `; its driver dir ${ctx.store.driver.dirOf(w.cacheId)} was never registered`;
      }
    }
    const m = measure(ctx, paths);
    out.push({
      kind: 'stale-write-set',
      severity: 'warning',
      cacheId: driverId,
      paths,
      bytes: m.bytes,
      reclaimable: true,
      reason,
      affects: noAffects(),
      removal: { type: 'entry', dir: w.dir, driverId },
      newestMs: m.newestMs,
      mountsInside: m.mountsInside,
    });
  }
  return out;
};
