// Opening a containerd image store: locate it, then read both databases and the directories once.
import { ExitCode, LayergcError } from '../../errors.js';
import type { LocateOptions } from '../locate.js';
import { locateContainerd, findHolders } from './locate.js';
import { readMetaDb } from './meta.js';
import { readSnapshotterDb } from './overlayfs.js';
import { readContainerdDisk } from './disk.js';
import { lstatOrNull } from '../../fsx/read.js';
import type { ContainerdStore, SnapshotterDb } from './model.js';

export async function openContainerdStore(opts: LocateOptions, now = Date.now()): Promise<ContainerdStore> {
  const loc = await locateContainerd(opts);
  const meta = await readMetaDb(loc.metaDb);
  for (const ns of meta.namespaces) {
    if (!loc.mobyNamespaces.includes(ns.name)) continue;
    const other = ns.snapshots.find((s) => s.snapshotter !== loc.snapshotter);
    if (other) throw new LayergcError(`namespace ${ns.name} has snapshots of snapshotter ${other.snapshotter}; layergc handles only overlayfs`, ExitCode.UNSUPPORTED);
  }
  const backendDb = `${loc.snapshotterRoot}/metadata.db`;
  const backend: SnapshotterDb = (await lstatOrNull(backendDb)) ? await readSnapshotterDb(backendDb) : { records: new Map(), byId: new Map() };
  const disk = await readContainerdDisk(loc);
  return { loc, meta, backend, disk, holders: findHolders(loc), now };
}

export { storeKind } from './locate.js';
export type { ContainerdStore } from './model.js';
