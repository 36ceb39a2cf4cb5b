// npm run build's second step: tsc's output (dist/) bundled into a few files under dist/bundle/,
// which bin/layergc.js loads. Node resolves and compiles one module per file; the CLI's ~110
// modules cost it ~60 ms before any work, a few bundled chunks a fraction of that.
// Entries: the CLI, and the two modules that are also the entries of their worker threads, verify's
// worker pool (verify/pool.js) and sizing (fsx/size.js): each starts workers from its own file, so it
// must stay a chunk of its own, not part of the CLI's.
// Dynamic imports (the containerd store, ...) stay separate chunks, loaded only when used.
import { rmSync } from 'node:fs';
import { rolldown } from 'rolldown';

const dist = new URL('../dist/', import.meta.url).pathname;
const out = `${dist}bundle`;
rmSync(out, { recursive: true, force: true });
const bundle = await rolldown({
  input: { layergc: `${dist}cli/program/main.js`, verify: `${dist}verify/pool.js`, size: `${dist}fsx/size.js` },
  platform: 'node',
  external: [/^node:/],
  logLevel: 'warn',
});
// dist/bundle/ is two levels below the package root, as dist/cli/ is: '../../package.json' still resolves
await bundle.write({ dir: out, format: 'esm', entryFileNames: '[name].js', chunkFileNames: '[name]-[hash].js' });
await bundle.close();
