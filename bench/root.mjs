// A minimal valid overlay2 data root for benchmarks: one image of one layer, plus one leaked
// driver dir of `files` files (with its l/ link). Returns the leaked dir's path.
import { mkdirSync, writeFileSync, symlinkSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { makeTree } from './mktree.mjs';

export function makeRoot(root, files) {
  const diff = `sha256:${createHash('sha256').update('layer').digest('hex')}`;
  const cfg = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [diff] } }));
  const imgId = createHash('sha256').update(cfg).digest('hex');
  const live = 'a'.repeat(64);
  const ldb = `${root}/image/overlay2/layerdb/sha256/${diff.slice(7)}`;
  mkdirSync(ldb, { recursive: true });
  writeFileSync(`${ldb}/diff`, diff);
  writeFileSync(`${ldb}/size`, '0');
  writeFileSync(`${ldb}/cache-id`, live);
  mkdirSync(`${root}/image/overlay2/imagedb/content/sha256`, { recursive: true });
  writeFileSync(`${root}/image/overlay2/imagedb/content/sha256/${imgId}`, cfg);
  mkdirSync(`${root}/overlay2/${live}/diff`, { recursive: true });
  writeFileSync(`${root}/overlay2/${live}/link`, 'AAAAAAAAAAAAAAAAAAAAAAAAAA');
  mkdirSync(`${root}/overlay2/l`, { recursive: true });
  symlinkSync(`../${live}/diff`, `${root}/overlay2/l/AAAAAAAAAAAAAAAAAAAAAAAAAA`);
  const leaked = randomBytes(32).toString('hex');
  makeTree(`${root}/overlay2/${leaked}/diff`, files);
  return `${root}/overlay2/${leaked}`;
}
