// Step 1 of a repair: restore what the evidence proves. A layerdb entry that lost its cache-id gets
// it back when exactly one driver dir nobody claims rebuilds the entry's DiffID through its
// tar-split (verify's engine); an overlay2 l/<LID> link is recreated from the layer's `link` file,
// and a missing `link` file from the one l/ symlink that names the layer.
import { listDir, lstatOrNull } from '../fsx/read.js';
import { ancestors, type References } from '../store/references.js';
import { verifyLayer, readTarSplit } from '../verify/index.js';
import { cleanName } from '../verify/tar-names.js';
import type { Store } from '../store/model.js';
import type { LayerRecord } from '../store/model.js';
import { cacheIdPath, tarSplitPath } from '../layout.js';

export type RepairKind = 'cache-id' | 'link' | 'link-file';

export interface Repair {
  kind: RepairKind;
  /** The layer the repair is for (cache-id), or the driver dir (links). */
  layer?: string;
  cacheId: string;
  /** The file or symlink written. */
  path: string;
  /** What it holds afterwards: the cache-id, the link target, the LID. */
  value: string;
  /** Why this is proven, in one sentence. */
  evidence: string;
  /** What was there before: 'missing', 'empty', or a backup path. */
  previous: string;
  status: 'planned' | 'done' | 'failed';
  reason?: string;
}

/** The problems readLayer records for a cache-id that is lost; the rest of the entry must be whole. */
const LOST_CACHE_ID = /^cache-id (is missing|is empty|cannot be read)/;
/** Files compared by name and size before a whole rebuild is tried. */
const PREFILTER_FILES = 16;

function lostCacheId(l: LayerRecord): boolean {
  return !l.cacheId && !!l.diffId && l.hasTarSplit && l.problems.length > 0 && l.problems.every((p) => LOST_CACHE_ID.test(p));
}

/** The first regular files the tar-split records, with their sizes: a cheap first test of a candidate. */
async function sampleFiles(tarSplitPath: string): Promise<{ name: string; size: number }[]> {
  const out: { name: string; size: number }[] = [];
  try {
    for await (const e of readTarSplit(tarSplitPath)) {
      if (e.type !== 1 || e.size <= 0) continue;
      const name = cleanName(e.nameLatin1);
      if (name) out.push({ name: Buffer.from(name, 'latin1').toString(), size: e.size });
      if (out.length >= PREFILTER_FILES) break;
    }
  } catch {
    /* an unreadable tar-split proves nothing; verifyLayer says why */
  }
  return out;
}

async function looksLike(root: string, files: { name: string; size: number }[]): Promise<boolean> {
  for (const f of files) {
    const st = await lstatOrNull(`${root}/${f.name}`);
    // overlay2 metacopy or redirect files may differ in size; only a missing file rules it out
    if (!st) return false;
  }
  return true;
}

/** How many paths the tar-split names, their parent dirs included (the root aside); undefined when it cannot be read. */
async function entryCount(tarSplitPath: string): Promise<number | undefined> {
  const names = new Set<string>();
  try {
    for await (const e of readTarSplit(tarSplitPath)) {
      // a name's parent dirs exist on disk whether or not the tar has entries for them
      const name = e.type === 1 ? cleanName(e.nameLatin1) : null;
      for (let n = name; n; n = n.includes('/') ? n.slice(0, n.lastIndexOf('/')) : '') names.add(n);
    }
  } catch {
    return undefined;
  }
  return names.size;
}

/**
 * Whether `root` holds more entries than the tar-split names: a rebuild reads only the names it
 * lists, so a dir holding those files and more (a bigger layer on the same parent) would pass it.
 */
async function holdsMore(root: string, limit: number): Promise<boolean> {
  let n = 0;
  const walk = async (dir: string): Promise<boolean> => {
    for (const e of await listDir(dir)) {
      if (++n > limit) return true;
      if (e.stat.isDirectory() && (await walk(e.path))) return true;
    }
    return false;
  };
  return walk(root);
}

/** Lost cache-ids the driver dirs prove, parents before children so a child can check its lower. */
export async function cacheIdRepairs(store: Store, refs: References): Promise<{ repairs: Repair[]; unproven: { layer: string; reason: string }[] }> {
  const { driver } = store;
  const layers = store.layerdb.layers;
  const lost = [...layers.values()].filter(lostCacheId).sort((a, b) => ancestors(layers, a.chainId).length - ancestors(layers, b.chainId).length);
  const repairs: Repair[] = [];
  const unproven: { layer: string; reason: string }[] = [];
  if (!lost.length || driver.removal === 'report-only') {
    for (const l of lost) unproven.push({ layer: l.chainId, reason: `no driver data can be read offline with ${driver.name}` });
    return { repairs, unproven };
  }
  const candidates = store.driverEntries.filter((e) => !e.staged && e.stat.isDirectory() && !e.id.endsWith('-init') && !refs.claims.has(e.id)).map((e) => e.id);
  const assigned = new Map<string, string>(); // chain -> cache-id proven in this pass
  const taken = new Set<string>();
  for (const l of lost) {
    const tarSplit = tarSplitPath(l.dir);
    const sample = await sampleFiles(tarSplit);
    const parentCache = l.parent ? (layers.get(l.parent)?.cacheId ?? assigned.get(l.parent)) : undefined;
    const matches: string[] = [];
    for (const id of candidates) {
      if (taken.has(id)) continue;
      const roots = await driver.contentRoots(id);
      if (!(await looksLike(roots[0], sample))) continue;
      if (driver.parentsOf) {
        // the dir must stack on the parent's dir (or on nothing, for a base layer): two chains may share a DiffID
        const lowers = await driver.parentsOf(id);
        if (!l.parent && lowers.length) continue;
        if (l.parent && parentCache && lowers[0] !== parentCache) continue;
      }
      const r = await verifyLayer({ chainId: l.chainId, diffId: l.diffId!, tarSplitPath: tarSplit, contentRoots: roots });
      const names = r.ok ? await entryCount(tarSplit) : undefined;
      if (names !== undefined && !(await holdsMore(roots[0], names))) matches.push(id);
    }
    const was = l.problems.find((p) => LOST_CACHE_ID.test(p))!;
    if (matches.length === 1) {
      const id = matches[0];
      taken.add(id);
      assigned.set(l.chainId, id);
      repairs.push({
        kind: 'cache-id',
        layer: l.chainId,
        cacheId: id,
        path: cacheIdPath(l.dir),
        value: id,
        evidence: `driver dir ${id}, which nothing else claims, rebuilds the layer's DiffID ${l.diffId} through its tar-split`,
        previous: /is missing/.test(was) ? 'missing' : /is empty/.test(was) ? 'empty' : 'unreadable',
        status: 'planned',
      });
    } else {
      unproven.push({
        layer: l.chainId,
        reason: matches.length ? `${matches.length} driver dirs rebuild its DiffID (${matches.join(', ')}); layergc does not guess` : 'no unclaimed driver dir rebuilds its DiffID',
      });
    }
  }
  return { repairs, unproven };
}

/** Driver bookkeeping the daemon never recreates (overlay2: l/<LID> links and `link` files), rebuilt from what is left. */
export async function linkRepairs(store: Store): Promise<Repair[]> {
  const { driver } = store;
  if (!driver.linkRepairs) return [];
  const ids = new Set<string>();
  for (const l of store.layerdb.layers.values()) if (l.cacheId) ids.add(l.cacheId);
  for (const m of store.layerdb.mounts) for (const id of [m.mountId, m.initId]) if (id) ids.add(id);
  return (await driver.linkRepairs([...ids].sort())).map((r) => ({ ...r, status: 'planned' }));
}

/** Problems of checkLayer that the planned link repairs clear (a dry run's prediction). */
export function clearedByLinks(problems: string[], repairs: Repair[], id: string): boolean {
  const lids = new Set(repairs.filter((r) => r.kind === 'link').map((r) => r.path.slice(r.path.lastIndexOf('/') + 1)));
  const linkFile = repairs.some((r) => r.kind === 'link-file' && r.cacheId === id);
  return problems.every((p) => {
    const m = /^l\/([A-Z2-7]{26}) is missing/.exec(p) ?? /^lower names l\/([A-Z2-7]{26}), which does not exist/.exec(p);
    if (m) return lids.has(m[1]);
    return linkFile && /^link file is (missing|empty)/.test(p);
  });
}
