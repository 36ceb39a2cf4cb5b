// Bytes and age of a finding's paths, through the scan's shared accounting.
import type { ScanContext } from './types.js';

export function measure(ctx: ScanContext, paths: string[]): { bytes: number; newestMs: number; mountsInside: string[] } {
  let bytes = 0;
  let newestMs = 0;
  const mountsInside: string[] = [];
  for (const p of paths) {
    const s = ctx.sizes.measure(p);
    bytes += s.bytes;
    newestMs = Math.max(newestMs, s.newestMs);
    mountsInside.push(...s.mountsInside);
  }
  return { bytes, newestMs, mountsInside };
}
