// Containers (containers/<id>/config.v2.json): only what names them and ties them to a driver.
import { listTyped, readSmallFileSync, smallFileProblem } from '../fsx/read.js';
import type { ContainerRecord, Unsafe } from './model.js';
import { CONTAINER_CONFIG, containersDir } from '../layout.js';

export async function readContainers(dataRoot: string, unsafe: Unsafe[]): Promise<ContainerRecord[]> {
  const out: ContainerRecord[] = [];
  for (const e of listTyped(containersDir(dataRoot), (path, target) => unsafe.push({ path, reason: `is a symlink (to ${target}) where moby keeps containers; it is never followed` }))) {
    if (e.type.isSymbolicLink()) {
      unsafe.push({ path: e.path, reason: 'is a symlink where moby keeps a container directory; it is never followed' });
      continue;
    }
    if (!e.type.isDirectory()) continue;
    const rec: ContainerRecord = { id: e.name, name: e.name.slice(0, 12) };
    const f = readSmallFileSync(`${e.path}/${CONTAINER_CONFIG}`);
    if (f.state !== 'ok') rec.problem = `config.v2.json ${smallFileProblem(f)}`;
    else {
      let j: unknown;
      try {
        j = JSON.parse(f.text);
      } catch {
        rec.problem = 'config.v2.json is not valid JSON';
      }
      if (!rec.problem) {
        const o = typeof j === 'object' && j !== null && !Array.isArray(j) ? (j as Record<string, unknown>) : {};
        const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
        if (str(o.Name)) rec.name = str(o.Name)!.replace(/^\//, '');
        rec.image = str(o.Image);
        rec.driver = str(o.Driver);
        if (o !== j) rec.problem = 'config.v2.json is not a JSON object';
      }
    }
    out.push(rec);
  }
  return out;
}
