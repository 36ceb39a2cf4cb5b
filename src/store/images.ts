// Image configs (imagedb/content/sha256/<id>) and tags (repositories.json), read as
// image/fs.go and reference/store.go do.
import { chainIds, HEX64, parseDigest, sha256Hex } from './digest.js';
import { listDir, readSmallFile } from '../fsx/read.js';
import { fs } from '../fsx/fs.js';
import type { Unsafe } from './model.js';

export interface ImageRecord {
  id: string;            // "sha256:<hex>"
  path: string;
  tags: string[];        // familiar references from repositories.json
  diffIds: string[];
  chainIds: string[];    // bottom to top
  /** Why the daemon skips this image at restore ("invalid image"), if it does. */
  problem?: string;
}

export interface ImageDb {
  images: ImageRecord[];
  /** repositories.json could not be parsed: the daemon will not start. */
  repositoriesProblem?: string;
}

export async function readImages(imageDir: string, unsafe: Unsafe[]): Promise<ImageDb> {
  const tags = new Map<string, string[]>();
  let repositoriesProblem: string | undefined;
  const repo = await readSmallFile(`${imageDir}/repositories.json`);
  if (repo.state === 'ok') {
    try {
      const j = JSON.parse(repo.text) as { Repositories?: Record<string, Record<string, string>> };
      for (const refs of Object.values(j.Repositories ?? {})) {
        for (const [ref, id] of Object.entries(refs)) {
          const list = tags.get(id) ?? [];
          list.push(ref);
          tags.set(id, list);
        }
      }
    } catch (err) {
      repositoriesProblem = `repositories.json is not valid JSON: the daemon refuses to start (${(err as Error).message})`;
    }
  } else if (repo.state === 'symlink') {
    unsafe.push({ path: `${imageDir}/repositories.json`, reason: `is a symlink (to ${repo.target}); it is never followed` });
  }

  const images: ImageRecord[] = [];
  const contentDir = `${imageDir}/imagedb/content/sha256`;
  for (const e of await listDir(contentDir, (path, target) => unsafe.push({ path, reason: `is a symlink (to ${target}) where moby keeps image configs; it is never followed` }))) {
    if (!HEX64.test(e.name)) continue; // fs.Walk skips names that are not digests
    if (e.stat.isSymbolicLink()) {
      unsafe.push({ path: e.path, reason: 'is a symlink where moby keeps an image config; it is never followed' });
      continue;
    }
    if (!e.stat.isFile()) continue;
    const id = `sha256:${e.name}`;
    const rec: ImageRecord = { id, path: e.path, tags: (tags.get(id) ?? []).sort(), diffIds: [], chainIds: [] };
    let bytes: Buffer;
    try {
      bytes = await fs.readFile(e.path);
    } catch (err) {
      rec.problem = `config cannot be read: ${(err as Error).message}`;
      images.push(rec);
      continue;
    }
    if (sha256Hex(bytes) !== e.name) rec.problem = 'config content does not match its digest (the daemon logs "invalid image" and skips it)';
    else {
      try {
        const cfg = JSON.parse(bytes.toString('utf8')) as { rootfs?: { diff_ids?: unknown } };
        const ids = Array.isArray(cfg.rootfs?.diff_ids) ? cfg.rootfs!.diff_ids as unknown[] : null;
        if (!cfg.rootfs) rec.problem = 'config has no rootfs';
        else if (!ids || !ids.every((d) => typeof d === 'string' && parseDigest(d))) rec.problem = 'config rootfs.diff_ids is not a list of digests';
        else {
          rec.diffIds = ids as string[];
          rec.chainIds = chainIds(rec.diffIds);
        }
      } catch {
        rec.problem = 'config is not valid JSON';
      }
    }
    images.push(rec);
  }
  return { images, repositoriesProblem };
}

/** How a person names an image: its first tag, else its short ID. */
export function imageLabel(img: ImageRecord): string {
  const tag = img.tags.find((t) => !t.includes('@')) ?? img.tags[0];
  return tag ?? img.id;
}
