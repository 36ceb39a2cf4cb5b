// The read-only model of one Docker data root: everything scan, explain, purge and verify need,
// read once.
import type { LayerDb } from './layerdb.js';
import type { ImageDb } from './images.js';
import type { ContainerRecord } from './containers.js';
import type { BuildkitOwnership } from './buildkit.js';
import type { DaemonInfo } from './daemon.js';
import type { DriverAdapter, DriverEntry } from '../drivers/types.js';
import type { UnknownSource } from './sources.js';

/** Something that would lead out of the data root: reported, never followed. */
export interface Unsafe { path: string; reason: string }

export interface StoreLocation {
  dataRoot: string;        // real path, no trailing slash
  driver: string;
  imageDir: string;        // <root>/image/<driver>
  layerdb: string;         // <root>/image/<driver>/layerdb
  driverHome: string;      // <root>/<driver>
  configFile?: string;     // the daemon config that was read, if any
  notes: string[];         // how the location was decided, for --verbose and explain
}

export interface Store {
  loc: StoreLocation;
  layerdb: LayerDb;
  images: ImageDb;
  containers: ContainerRecord[];
  buildkit: BuildkitOwnership;
  driver: DriverAdapter;
  driverEntries: DriverEntry[];
  daemon: DaemonInfo;
  unsafe: Unsafe[];
  /** Reference sources that cannot be read: every driver dir they could claim is kept. */
  unknownSources: UnknownSource[];
}
