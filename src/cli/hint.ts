// Hints that suggest a next command keep the flags that located the data root, so a copied hint
// acts on the same root, driver and daemon config.
import type { CommonOptions } from './common.js';

const shellWord = (s: string) => (/^[A-Za-z0-9_/.,:@%+=-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/** `layergc <sub> [--data-root …] [--driver …] [--daemon-config …]`, as the user located the root. */
export function againWith(opts: Pick<CommonOptions, 'dataRoot' | 'driver' | 'daemonConfig'>): (sub: string) => string {
  const flags: string[] = [];
  if (opts.dataRoot !== undefined) flags.push('--data-root', shellWord(opts.dataRoot));
  if (opts.driver !== undefined) flags.push('--driver', shellWord(opts.driver));
  if (opts.daemonConfig !== undefined) flags.push('--daemon-config', shellWord(opts.daemonConfig));
  return (sub) => ['layergc', sub, ...flags].join(' ');
}
