// Opening a store: locate it, then read every part of it once.
import { locate, type LocateOptions } from './locate.js';
import { readLayerDb } from './layerdb.js';
import { readImages } from './images.js';
import { readContainers } from './containers.js';
import { readBuildkitOwnership } from './buildkit.js';
import { findDaemons } from './daemon.js';
import { createDriver } from '../drivers/registry/index.js';
import { unsafeDriverId } from '../layout.js';
import { unknownSources } from './sources.js';
import type { Store, StoreLocation, Unsafe } from './model.js';

/** Read the store; `located` skips locating again when the caller already did (purge, for its lock). */
export async function openStore(opts: LocateOptions, located?: StoreLocation): Promise<Store> {
  const loc = located ?? (await locate(opts));
  const unsafe: Unsafe[] = [];
  const driver = createDriver(loc.driver, loc.driverHome);
  const [layerdb, images, containers, buildkit, listed] = await Promise.all([
    readLayerDb(loc.layerdb),
    readImages(loc.imageDir, unsafe),
    readContainers(loc.dataRoot, unsafe),
    readBuildkitOwnership(loc.dataRoot),
    driver.listEntries(),
  ]);
  unsafe.push(...layerdb.unsafe);
  // ids are validated once, here: a name that is no layer ID (empty, a bookkeeping dir) is never an item
  const driverEntries = listed.filter((e) => !unsafeDriverId(e.id));
  driver.preload?.(driverEntries.filter((e) => !e.staged).map((e) => e.id));
  const unknown = await unknownSources(loc, driverEntries.length);
  return { loc, layerdb, images, containers, buildkit, driver, driverEntries, daemon: findDaemons(loc.dataRoot), unsafe, unknownSources: unknown };
}
