// The paths of a layerdb entry and, when nothing else keeps it, its driver data.
import { keepingClaims } from '../store/references.js';
import type { LayerRecord } from '../store/model.js';
import type { ScanContext } from './types.js';
import { driverPaths } from './driver-paths.js';

export async function layerPaths(ctx: ScanContext, l: LayerRecord): Promise<string[]> {
  const paths = [l.dir];
  if (!l.cacheId) return paths;
  const others = keepingClaims(ctx.refs.claims.get(l.cacheId)).filter((c) => !(c.kind === 'layer' && c.chainId === l.chainId));
  if (others.length || ctx.counted.has(l.cacheId)) return paths;
  ctx.counted.add(l.cacheId);
  return [...paths, ...(await driverPaths(ctx, l.cacheId))];
}
