// The remedy scan prints under each broken finding: the repair command with the flags that located
// this store, and, for every image the repair would remove, how to get it back.
import { imageLabel } from '../store/images.js';
import { imagesThrough } from '../findings/affects.js';
import type { Store } from '../store/model.js';
import type { References } from '../store/references.js';
import type { Finding } from '../findings/types.js';
import type { LocateOptions } from '../store/locate.js';
import { REPAIR_ACTION_KINDS, remedyFor } from './plan.js';
import { locatingFlags } from '../escape.js';

/** The purge --include broken command for the store `opts` located. */
function repairCommand(opts: LocateOptions, containers: boolean): string {
  return ['layergc purge --include', containers ? 'broken,containers' : 'broken', '--dry-run', ...locatingFlags(opts)].join(' ');
}

export function addRemedies(findings: Finding[], store: Store, refs: References, opts: LocateOptions): void {
  for (const f of findings) {
    if (!REPAIR_ACTION_KINDS.includes(f.kind)) continue;
    // a container whose own files are broken is not the repair's to remove: only one on a broken chain
    if (f.kind === 'broken-mount' && !(f.layer && !refs.loadable.get(f.layer))) continue;
    const candidates = f.kind === 'broken-mount' ? [] : f.kind === 'image-missing-layers' ? store.images.images.filter((i) => i.path === f.paths[0]) : f.layer ? imagesThrough(store, f.layer) : [];
    const images = candidates.filter((i) => !i.problem);
    const lines = [`${repairCommand(opts, f.affects.containers.length > 0)} (then --yes): repairs what the evidence proves, removes the rest and what needs it`];
    for (const i of images) lines.push(`then for image ${imageLabel(i)}: ${remedyFor(i)}`);
    f.remedy = lines;
  }
}
