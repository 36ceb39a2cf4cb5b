#!/usr/bin/env node
// `--version` alone is answered before anything is loaded: a monitoring probe or an install check
// costs one Node start-up, not the whole CLI (commander, node:child_process, the store, ...).
import { readFileSync, statSync } from 'node:fs';

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  process.stdout.write(`${JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version}\n`);
} else {
  // the bundle `npm run build` makes (scripts/bundle.mjs) loads in a fraction of the time of tsc's
  // ~110 modules; it is used only when it is newer than tsc's output, so a bare `tsc` never runs stale code
  const mtime = (p) => statSync(new URL(p, import.meta.url), { throwIfNoEntry: false })?.mtimeMs ?? -1;
  // verify hashes on a worker thread that takes tens of ms to boot: it boots on the other core while the CLI loads
  if (args[0] === 'verify')
    import('../dist/verify/hasher.js').then(
      (h) => h.prestartHasher(),
      () => {},
    );
  await import(mtime('../dist/bundle/layergc.js') >= mtime('../dist/cli/program/main.js') ? '../dist/bundle/layergc.js' : '../dist/cli/program/main.js');
}
