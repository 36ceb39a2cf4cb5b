// overlay2's link dir: home/l/<LID> -> ../<id>/diff, a short name per layer so the mount options of a
// deep chain fit in a page; each layer dir's `link` file names its LID, its `lower` file the LIDs below.
import { listDir, listTyped, lstatOrNull, readlinkOrNull, readSmallFile, readSmallFileSync } from '../../fsx/read.js';
import { fs } from '../../fsx/fs.js';
import { faultPoint } from '../../fsx/fault.js';
import type { LinkRepair, UnsafeLink } from '../types.js';

/** A link ID: 26 chars of base32 (moby's generateID(idLength)). */
export const LID = /^[A-Z2-7]{26}$/;

export interface LinkEntry {
  path: string;
  target?: string;
  id?: string;
}

export class LinkDir {
  constructor(readonly dir: string) {}

  /** The LID a layer dir's `link` file names, if it is readable and well formed. */
  lidOf(layerDir: string): string | undefined {
    const f = readSmallFileSync(`${layerDir}/link`);
    return f.state === 'ok' && LID.test(f.text.trim()) ? f.text.trim() : undefined;
  }

  /**
   * Every entry of l/, read once (a scan asks for each layer's link and lower, for dangling links
   * and for unsafe ones): LID -> its path, its target when it is a symlink, and the layer ID it names
   * when it has the ../<id>/diff form. Removal never uses it: it looks again.
   */
  private map?: Map<string, LinkEntry>;
  index(): Map<string, LinkEntry> {
    if (this.map) return this.map;
    this.map = new Map();
    // the dirent types say which entries are symlinks: one readlink each, no lstat
    for (const e of listTyped(this.dir)) {
      if (!e.type.isSymbolicLink()) {
        this.map.set(e.name, { path: e.path });
        continue;
      }
      const target = readlinkOrNull(e.path);
      if (target === null) continue; // gone since it was listed
      const m = /^\.\.\/([^/]+)\/diff$/.exec(target);
      this.map.set(e.name, { path: e.path, target, id: m && m[1] !== '..' && m[1] !== '.' ? m[1] : undefined });
    }
    faultPoint('links-listed');
    return this.map;
  }

  /** The entries that are symlinks. */
  symlinks(): LinkEntry[] {
    return [...this.index().values()].filter((l) => l.target !== undefined);
  }

  /** Links that point out of the driver home: reported as unsafe, never followed. */
  unsafe(home: string): UnsafeLink[] {
    return this.symlinks()
      .filter((l) => !l.id)
      .map((l) => ({ path: l.path, reason: `points to ${l.target}, outside the layer dirs of ${home}; it is never followed` }));
  }
}

/**
 * The l/<LID> links and `link` files of the layer dirs `ids` that the daemon never recreates, proven
 * by what is left: a link from the dir's `link` file, a `link` file from the one l/ symlink naming
 * the dir. Reads l/ afresh: a repair runs on a store it may have changed.
 */
export async function linkRepairs(links: string, dirOf: (id: string) => string, ids: string[]): Promise<LinkRepair[]> {
  const byTarget = new Map<string, string[]>(); // ../<id>/diff -> LIDs
  const existing = new Set<string>();
  for (const e of await listDir(links)) {
    existing.add(e.name);
    if (!e.stat.isSymbolicLink() || !LID.test(e.name)) continue;
    const t = await fs.readlink(e.path);
    byTarget.set(t, [...(byTarget.get(t) ?? []), e.name]);
  }
  const out: LinkRepair[] = [];
  for (const id of ids) {
    const dir = dirOf(id);
    const st = await lstatOrNull(dir);
    const diff = await lstatOrNull(`${dir}/diff`);
    if (!st?.isDirectory() || !diff?.isDirectory()) continue;
    const link = await readSmallFile(`${dir}/link`);
    const lid = link.state === 'ok' ? link.text.trim() : '';
    if (LID.test(lid)) {
      if (!existing.has(lid)) {
        out.push({ kind: 'link', cacheId: id, path: `${links}/${lid}`, value: `../${id}/diff`, evidence: `${dir}/link names ${lid}`, previous: 'missing' });
        existing.add(lid);
      }
    } else if (link.state === 'missing' || (link.state === 'ok' && !lid)) {
      const named = byTarget.get(`../${id}/diff`) ?? [];
      if (named.length === 1) {
        out.push({
          kind: 'link-file',
          cacheId: id,
          path: `${dir}/link`,
          value: named[0],
          evidence: `l/${named[0]} is the one link to ../${id}/diff`,
          previous: link.state === 'missing' ? 'missing' : 'empty',
        });
      }
    }
  }
  return out;
}
