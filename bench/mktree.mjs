// Make a tree of N small files (dirs of 1000 files each) quickly: bench input.
import { mkdirSync, writeFileSync } from 'node:fs';
export function makeTree(root, n, { perDir = 1000, bytes = 0 } = {}) {
  mkdirSync(root, { recursive: true });
  const data = Buffer.alloc(bytes, 120);
  for (let d = 0; d * perDir < n; d++) {
    const dir = `${root}/d${d}`;
    mkdirSync(dir);
    for (let i = 0; i < perDir && d * perDir + i < n; i++) writeFileSync(`${dir}/f${i}`, data);
  }
}
