// chain-id-mismatch: the directory name is not the chain ID of `parent` and `diff`. The daemon
// never checks this; it means the entry was edited or copied by hand.
import { chainIdOf, short } from '../store/digest.js';
import { affectedBy } from './affects.js';
import type { Finding, FindingModule } from './types.js';

export const chainIdMismatches: FindingModule = async (ctx) => {
  const out: Finding[] = [];
  for (const l of ctx.store.layerdb.layers.values()) {
    if (!l.diffId || l.problems.length) continue;
    const expected = chainIdOf(l.parent, l.diffId);
    if (expected === l.chainId) continue;
    out.push({
      kind: 'chain-id-mismatch',
      severity: 'warning',
      layer: l.chainId,
      cacheId: l.cacheId,
      paths: [l.dir],
      bytes: 0,
      reclaimable: false,
      reason: `the directory is named ${short(l.chainId)} but its diff${l.parent ? ' and parent give' : ' gives'} chain ID ${short(expected)}: the entry was edited or copied by hand`,
      affects: affectedBy(ctx, [l.chainId]),
    });
  }
  return out;
};
