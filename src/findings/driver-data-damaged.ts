// driver-data-damaged: the driver dir of a layer or mount exists but is unusable (overlay2: diff/
// missing, link missing or empty, l/<link> missing or elsewhere, lower naming missing links).
import { lstatOrNullSync } from '../fsx/read.js';
import { affectedBy } from './affects.js';
import type { Affects, Finding, FindingModule } from './types.js';

export const driverDataDamaged: FindingModule = async (ctx) => {
  const out: Finding[] = [];
  const { driver } = ctx.store;
  const check = async (id: string, hasParent: boolean, base: Omit<Finding, 'kind' | 'severity' | 'paths' | 'bytes' | 'reclaimable' | 'reason' | 'affects'>, affects: () => Affects) => {
    if (!driver.typeOf(id)?.isDirectory()) return;
    const problems = await driver.checkLayer(id, { hasParent });
    if (!problems.length) return;
    // the listing may be older than the check: a dir a running daemon removed since is no damage
    if (!lstatOrNullSync(driver.dirOf(id))?.isDirectory()) return;
    out.push({
      ...base,
      kind: 'driver-data-damaged',
      severity: 'error',
      paths: [driver.dirOf(id)],
      bytes: 0,
      reclaimable: false,
      reason: `driver dir ${id}: ${problems.join('; ')}`,
      affects: affects(),
    });
  };
  for (const l of ctx.store.layerdb.layers.values()) {
    if (l.cacheId) await check(l.cacheId, !!l.parent, { layer: l.chainId, cacheId: l.cacheId }, () => affectedBy(ctx, [l.chainId]));
  }
  for (const m of ctx.store.layerdb.mounts) {
    const container = ctx.refs.containerByMount.get(m.name)?.name ?? m.name;
    const affects = () => ({ images: [], containers: [container] });
    if (m.mountId) await check(m.mountId, !!(m.initId || m.parent), { cacheId: m.mountId }, affects);
    if (m.initId) await check(m.initId, !!m.parent, { cacheId: m.initId }, affects);
  }
  return out;
};
