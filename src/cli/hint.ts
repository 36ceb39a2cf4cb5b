// Hints that suggest a next command keep the flags that located the data root, so a copied hint
// acts on the same root, driver and daemon config.
import type { CommonOptions } from './common.js';
import { locatingFlags } from '../escape.js';

/** `layergc <sub> [--data-root …] [--driver …] [--daemon-config …] [--containerd-root …]`, as the user located the root. */
export function againWith(opts: Pick<CommonOptions, 'dataRoot' | 'driver' | 'daemonConfig' | 'containerdRoot'>): (sub: string) => string {
  const flags = locatingFlags(opts);
  return (sub) => ['layergc', sub, ...flags].join(' ');
}
