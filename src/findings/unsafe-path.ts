// unsafe-path: anything that would lead out of the data root (a symlink where a dir or file
// belongs, a cache-id with "/" or ".."). Reported, never followed, never removed.
import { lstatOrNull } from '../fsx/read.js';
import { noAffects, type Finding, type FindingModule } from './types.js';

export const unsafePaths: FindingModule = async (ctx) => {
  const { driver } = ctx.store;
  const items = [...ctx.store.unsafe];
  for (const e of ctx.store.driverEntries) {
    if (e.stat.isSymbolicLink()) items.push({ path: e.path, reason: 'is a symlink where the driver keeps a layer dir; it is never followed' });
  }
  for (const dir of driver.layerDirs) {
    if ((await lstatOrNull(dir))?.isSymbolicLink())
      items.push({ path: dir, reason: 'is a symlink where the driver keeps its layers; layergc never follows a link out of the data root, so nothing in it is scanned or removed' });
  }
  items.push(...(await driver.unsafeLinks()));
  return items.map((u): Finding => ({ kind: 'unsafe-path', severity: 'error', paths: [u.path], bytes: 0, reclaimable: false, reason: u.reason, affects: noAffects() }));
};
