// unreferenced-layer: a layer that loads but that no image, mount or BuildKit snapshot uses
// (a "dangling layer"; e.g. the parents of a layer whose removal failed). Reported, not purged
// by default: `purge --include unreferenced-layer` removes them, children first.
import { measure } from './measure.js';
import { layerPaths } from './layer-paths.js';
import { noAffects, type Finding, type FindingModule } from './types.js';

export const unreferencedLayers: FindingModule = async (ctx) => {
  const out: Finding[] = [];
  if (ctx.refs.buildkitUnknown) return out; // BuildKit may hold any of them
  if (ctx.refs.imagesUnknown.length) return out; // so may an image whose config cannot be read
  if (ctx.store.unknownSources.length) return out; // images, mounts or entries that cannot be read may hold any of them
  const { layers } = ctx.store.layerdb;
  for (const l of layers.values()) {
    if (!ctx.refs.loadable.get(l.chainId) || ctx.refs.live.has(l.chainId)) continue;
    const paths = await layerPaths(ctx, l);
    const m = measure(ctx, paths);
    out.push({
      kind: 'unreferenced-layer',
      severity: 'warning',
      layer: l.chainId,
      cacheId: l.cacheId,
      paths,
      bytes: m.bytes,
      reclaimable: false,
      reason: 'no image, container or BuildKit snapshot uses this layer or any layer above it; the daemon keeps it forever',
      affects: noAffects(),
      // data a driver keeps out of sight (a zfs dataset) is there all the same: never drop the entry alone
      removal: { type: 'entry', dir: l.dir, driverId: paths.length > 1 || !ctx.store.driver.dataVisibleOffline ? l.cacheId : undefined },
      newestMs: m.newestMs,
      mountsInside: m.mountsInside,
    });
  }
  return out;
};
