// broken-mount: a container's layerdb/mounts/<id> the daemon cannot use: a bad mount-id or
// init-id, a parent chain that does not load, or driver dirs that are gone. The container fails
// with "failed to load container mount" / "RWLayer ... unexpectedly nil".
import { lstatOrNull } from '../fsx/read.js';
import { short } from '../store/digest.js';
import { containerDir } from '../layout.js';
import type { Finding, FindingModule } from './types.js';

export const brokenMounts: FindingModule = async (ctx) => {
  const out: Finding[] = [];
  const { driver } = ctx.store;
  const visible = driver.dataVisibleOffline;
  const mountNames = new Set(ctx.store.layerdb.mounts.map((m) => m.name));
  for (const m of ctx.store.layerdb.mounts) {
    const problems = [...m.problems];
    if (m.parent && !ctx.refs.loadable.get(m.parent)) problems.push(`its image layer ${short(m.parent)} is missing or does not load`);
    for (const [id, role] of [
      [m.mountId, 'mount-id'],
      [m.initId, 'init-id'],
    ] as const) {
      if (id && visible && !(await lstatOrNull(driver.dirOf(id)))) problems.push(`its ${role} dir ${driver.dirOf(id)} does not exist`);
    }
    if (!problems.length) continue;
    const c = ctx.refs.containerByMount.get(m.name);
    out.push({
      kind: 'broken-mount',
      severity: 'error',
      layer: m.parent,
      cacheId: m.mountId,
      paths: [m.dir],
      bytes: 0,
      reclaimable: false,
      reason: `${c ? `container ${c.name}` : `mount ${m.name}`} cannot be used: ${problems.join('; ')}`,
      affects: { images: [], containers: [c?.name ?? m.name] },
    });
  }
  for (const c of ctx.store.containers) {
    if (c.driver && c.driver !== driver.name) continue; // the daemon restores only its own driver's containers
    if (mountNames.has(c.id)) continue;
    out.push({
      kind: 'broken-mount',
      severity: 'error',
      paths: [containerDir(ctx.store.loc.dataRoot, c.id)],
      bytes: 0,
      reclaimable: false,
      reason: `container ${c.name} has no layer mount (layerdb/mounts/${c.id} is missing): the daemon logs "failed to load container mount" and it cannot start`,
      affects: { images: [], containers: [c.name] },
    });
  }
  return out;
};
