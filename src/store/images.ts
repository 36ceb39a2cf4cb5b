// Image configs (imagedb/content/sha256/<id>) and tags (repositories.json), read as
// image/fs.go and reference/store.go do.
import { chainIds, parseDigest, sha256Hex, trimSpace } from './digest.js';
import { HEX64, imagedbPaths, repositoriesJson } from '../layout.js';
import { listNames, listTyped, readSmallFileIfThere, readSmallFileSync, smallFileProblem, withFileBytes } from '../fsx/read.js';
import type { ImageDb, ImageRecord, Unsafe } from './model.js';

export async function readImages(imageDir: string, unsafe: Unsafe[]): Promise<ImageDb> {
  const tags = new Map<string, string[]>();
  let repositoriesProblem: string | undefined;
  const repo = readSmallFileSync(repositoriesJson(imageDir));
  if (repo.state === 'ok') {
    let j: unknown;
    try {
      j = JSON.parse(repo.text);
    } catch (err) {
      repositoriesProblem = `repositories.json is not valid JSON: the daemon refuses to start (${(err as Error).message})`;
    }
    if (!repositoriesProblem) {
      // json.Unmarshal into map[string]map[string]digest.Digest: anything else fails the daemon's start
      const repos = isObject(j) ? (j.Repositories ?? {}) : null;
      const ok = isObject(repos) && Object.values(repos).every((refs) => refs === null || (isObject(refs) && Object.values(refs).every((id) => typeof id === 'string')));
      if (!ok) repositoriesProblem = 'repositories.json does not hold a map of repositories to tags and image IDs: the daemon refuses to start';
      else {
        for (const refs of Object.values(repos as Record<string, Record<string, string> | null>)) {
          for (const [ref, id] of Object.entries(refs ?? {})) {
            const list = tags.get(id) ?? [];
            list.push(ref);
            tags.set(id, list);
          }
        }
      }
    }
  } else if (repo.state === 'symlink') {
    unsafe.push({ path: repositoriesJson(imageDir), reason: `is a symlink (to ${repo.target}); it is never followed` });
  } else if (repo.state !== 'missing') {
    repositoriesProblem = `repositories.json ${smallFileProblem(repo)}: the daemon cannot load its tags`;
  }

  const images: ImageRecord[] = [];
  const contentDir = imagedbPaths(imageDir).content;
  const seen = new Set<string>();
  for (const e of listTyped(contentDir, (path, target) => unsafe.push({ path, reason: `is a symlink (to ${target}) where moby keeps image configs; it is never followed` }))) {
    if (!HEX64.test(e.name)) continue; // fs.Walk skips names that are not digests
    const id = `sha256:${e.name}`;
    if (e.type.isSymbolicLink()) {
      unsafe.push({ path: e.path, reason: 'is a symlink where moby keeps an image config; it is never followed' });
      // a tag naming it has a config layergc cannot read: its layers are unknown
      if (tags.has(id)) {
        seen.add(id);
        images.push({
          id,
          path: e.path,
          tags: tags.get(id)!.sort(),
          diffIds: [],
          chainIds: [],
          problem: 'config is a symlink, not a file (never followed): its layers are unknown',
          layersUnknown: true,
        });
      }
      continue;
    }
    if (!e.type.isFile() && !tags.has(id)) continue; // an untagged non-file is nothing the daemon loads
    seen.add(id);
    images.push(readImage(id, e.path, (tags.get(id) ?? []).sort()));
  }
  // A tag whose config is not there: the daemon drops the tag at start, but what it pointed at is
  // unknown to layergc (deleted by hand, a lost write), so its layers may still be wanted.
  for (const [id, refs] of tags) {
    if (seen.has(id)) continue;
    const hex = id.startsWith('sha256:') ? id.slice(7) : '';
    if (!HEX64.test(hex)) continue; // not an image ID moby would store
    images.push({
      id,
      path: `${contentDir}/${hex}`,
      tags: refs.sort(),
      diffIds: [],
      chainIds: [],
      problem: 'config is missing: the tag names an image the store does not hold, and its layers are unknown',
      layersUnknown: true,
    });
  }
  return { images, repositoriesProblem };
}

/**
 * Each image's parent image (imagedb/metadata/<id>/parent), which only `layergc df` needs: docker
 * rmi deletes an untagged parent with its last child (df's unique bytes). Read on demand, since
 * every image built or pulled has a metadata dir, mostly without a parent.
 */
export function readImageParents(imageDir: string, images: ImageRecord[]): void {
  const metadata = imagedbPaths(imageDir).metadata;
  // a file is opened only where a metadata dir is listed
  const withMetadata = listNames(metadata);
  for (const rec of images) {
    const hex = rec.id.slice(7);
    if (withMetadata?.has(hex) === false) continue;
    const parent = readSmallFileIfThere(`${metadata}/${hex}/parent`);
    if (parent.state === 'ok' && parseDigest(trimSpace(parent.text))) rec.parent = trimSpace(parent.text);
  }
}

/** How a person names an image: its first tag, else its short ID. */
export function imageLabel(img: ImageRecord): string {
  const tag = img.tags.find((t) => !t.includes('@')) ?? img.tags[0];
  return tag ?? img.id;
}

/** An image config is read whole to check its digest; real ones are a few KiB, history included. */
const MAX_CONFIG = 8 << 20;

function readImage(id: string, path: string, tags: string[]): ImageRecord {
  const rec: ImageRecord = { id, path, tags, diffIds: [], chainIds: [] };
  const f = withFileBytes(path, MAX_CONFIG, (bytes) => ({ hex: sha256Hex(bytes), text: bytes.toString('utf8') }));
  if (f.state !== 'ok') {
    rec.problem = `config ${smallFileProblem(f)}: its layers are unknown`;
    rec.layersUnknown = true;
    return rec;
  }
  if (f.value.hex !== id.slice(7)) {
    rec.problem = 'config content does not match its digest (the daemon logs "invalid image" and skips it)';
    rec.layersUnknown = true;
    return rec;
  }
  let cfg: { rootfs?: { diff_ids?: unknown } };
  try {
    cfg = JSON.parse(f.value.text) as typeof cfg;
  } catch {
    rec.problem = 'config is not valid JSON';
    rec.layersUnknown = true;
    return rec;
  }
  const rootfs = isObject(cfg) ? goField(cfg, 'rootfs') : undefined;
  const diffIds = isObject(rootfs) ? goField(rootfs, 'diff_ids') : undefined;
  const ids = Array.isArray(diffIds) ? (diffIds as unknown[]) : null;
  if (!rootfs) rec.problem = 'config has no rootfs';
  else if (!ids?.every((d) => typeof d === 'string' && parseDigest(d))) {
    rec.problem = 'config rootfs.diff_ids is not a list of digests';
    rec.layersUnknown = true;
  } else {
    rec.diffIds = ids as string[];
    rec.chainIds = chainIds(rec.diffIds);
  }
  return rec;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Go's key folding: case-insensitive, with the long s (U+017F) and the Kelvin sign (U+212A). */
const goFold = (k: string) =>
  k
    .replace(/\u017f/g, 's')
    .replace(/\u212a/g, 'k')
    .toLowerCase();

/**
 * The value moby's json.Unmarshal puts in struct field `name`: keys match it case-insensitively
 * ("RootFS", "DIFF_IDS" load), a later key overrides an earlier one, and objects decode into the
 * same struct, so they merge. Reading only the exact key would miss the layers of such an image.
 */
function goField(obj: Record<string, unknown>, name: string): unknown {
  let v: unknown;
  for (const [k, x] of Object.entries(obj)) if (goFold(k) === name) v = isObject(x) && isObject(v) ? { ...v, ...x } : x;
  return v;
}
