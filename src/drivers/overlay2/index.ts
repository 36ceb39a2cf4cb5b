// overlay2 (and fuse-overlayfs, which keeps the same layout): home/<id>/{diff,link,lower,work},
// home/l/<LID> -> ../<id>/diff. Layout facts: daemon/graphdriver/overlay2/overlay.go.
import { listDir, lstatOrNull, readlinkOrNull, readSmallFile, type SmallFile } from '../../fsx/read.js';
import { fs } from '../../fsx/fs.js';
import type { Remover } from '../../fsx/remove.js';
import { unsafeDriverId } from '../../store/layerdb.js';
import { STAGED_SUFFIX, type DanglingLink, type DriverAdapter, type DriverEntry } from '../types.js';

const LID = /^[A-Z2-7]{26}$/;

interface LinkEntry { path: string; target?: string; id?: string }

export class Overlay2Driver implements DriverAdapter {
  readonly removal = 'files' as const;
  readonly links: string;

  constructor(readonly name: 'overlay2' | 'fuse-overlayfs', readonly home: string) {
    this.links = `${home}/l`;
  }

  async listEntries(): Promise<DriverEntry[]> {
    const out: DriverEntry[] = [];
    for (const e of await listDir(this.home)) {
      if (e.name === 'l') continue;
      if (!e.stat.isDirectory() && !e.stat.isSymbolicLink()) continue;
      const staged = e.name.endsWith(STAGED_SUFFIX);
      out.push({ id: staged ? e.name.slice(0, -STAGED_SUFFIX.length) : e.name, path: e.path, stat: e.stat, staged });
    }
    return out;
  }

  dirOf(id: string): string {
    return `${this.home}/${id}`;
  }

  /** The LID a layer dir's `link` file names, if it is readable and well formed. */
  private async lidOf(dir: string): Promise<string | undefined> {
    const f = await readSmallFile(`${dir}/link`);
    return f.state === 'ok' && LID.test(f.text.trim()) ? f.text.trim() : undefined;
  }

  /** l/<LID> when it is a symlink to ../<id>/diff. */
  private async ownLink(id: string, dir: string): Promise<string | undefined> {
    const lid = await this.lidOf(dir);
    const l = lid ? (await this.linkIndex()).get(lid) : undefined;
    return l?.target === `../${id}/diff` ? l.path : undefined;
  }

  /** A dir's `lower` file, read once per adapter: the damage check and the lower chain both need it. */
  private readonly lowers = new Map<string, Promise<SmallFile>>();
  private lowerOf(id: string): Promise<SmallFile> {
    let f = this.lowers.get(id);
    if (!f) this.lowers.set(id, (f = readSmallFile(`${this.dirOf(id)}/lower`)));
    return f;
  }

  async pathsOf(id: string): Promise<string[]> {
    if (id === 'l') return []; // the link dir is bookkeeping, never a layer's data
    const dir = this.dirOf(id);
    const st = await lstatOrNull(dir);
    if (!st || st.isSymbolicLink()) return []; // a symlink here is unsafe-path, never data
    const link = st.isDirectory() ? await this.ownLink(id, dir) : undefined;
    return link ? [dir, link] : [dir];
  }

  async checkLayer(id: string, opts: { hasParent: boolean }): Promise<string[]> {
    const dir = this.dirOf(id);
    const problems: string[] = [];
    const links = await this.linkIndex();
    const diff = await lstatOrNull(`${dir}/diff`);
    if (!diff) problems.push('diff/ is missing');
    else if (!diff.isDirectory()) problems.push('diff is not a directory');
    const link = await readSmallFile(`${dir}/link`);
    if (link.state !== 'ok') problems.push(`link file is ${link.state === 'missing' ? 'missing' : `not readable (${link.state})`}`);
    else if (!link.text.trim()) problems.push('link file is empty (a crash before Docker 25 wrote it non-atomically)');
    else if (!LID.test(link.text.trim())) problems.push(`link file holds ${JSON.stringify(link.text.slice(0, 40))}, not a link ID`);
    else {
      const lid = link.text.trim();
      const l = links.get(lid);
      if (!l) problems.push(`l/${lid} is missing (moby never recreates it; mounts of this layer and its children fail)`);
      else if (l.target === undefined) problems.push(`l/${lid} is not a symlink`);
      else if (l.target !== `../${id}/diff`) problems.push(`l/${lid} points to ${l.target}, not ../${id}/diff`);
    }
    const lower = await this.lowerOf(id);
    if (lower.state === 'ok') {
      if (!lower.text.trim()) problems.push('lower file is empty (a crash before Docker 25 wrote it non-atomically)');
      for (const part of lower.text.trim().split(':').filter(Boolean)) {
        const m = /^l\/([A-Z2-7]{26})$/.exec(part);
        if (!m) problems.push(`lower names ${JSON.stringify(part)}, not l/<link ID>`);
        else if (!links.has(m[1])) problems.push(`lower names ${part}, which does not exist`);
      }
    } else if (lower.state === 'missing' && opts.hasParent) problems.push('lower file is missing although the layer has a parent');
    else if (lower.state !== 'missing') problems.push(`lower file is not readable (${lower.state})`);
    return problems;
  }

  /**
   * Every entry of l/, read once per adapter (a scan asks for each layer's link and lower, for
   * dangling links and for unsafe ones): LID -> its path, its target when it is a symlink, and the
   * layer ID it names when it has the ../<id>/diff form. Removal never uses it: it looks again.
   */
  private linkMap?: Promise<Map<string, LinkEntry>>;
  private linkIndex(): Promise<Map<string, LinkEntry>> {
    this.linkMap ??= (async () => {
      const out = new Map<string, LinkEntry>();
      for (const e of await listDir(this.links)) {
        if (!e.stat.isSymbolicLink()) {
          out.set(e.name, { path: e.path });
          continue;
        }
        const target = readlinkOrNull(e.path);
        if (target === null) continue; // gone since it was listed
        const m = /^\.\.\/([^/]+)\/diff$/.exec(target);
        out.set(e.name, { path: e.path, target, id: m && m[1] !== '..' && m[1] !== '.' ? m[1] : undefined });
      }
      return out;
    })();
    return this.linkMap;
  }

  private async linkEntries(): Promise<LinkEntry[]> {
    return [...(await this.linkIndex()).values()].filter((l) => l.target !== undefined);
  }

  async danglingLinks(): Promise<DanglingLink[]> {
    const out: DanglingLink[] = [];
    for (const l of await this.linkEntries()) {
      if (!l.id) continue; // links elsewhere are unsafe, reported by the scan
      // a layer dir that lost diff/ still owns its link: moby never recreates one, and a restored diff/ needs it
      if ((await lstatOrNull(`${this.home}/${l.id}`))?.isDirectory()) continue;
      out.push({ path: l.path, target: l.target!, reason: `points to ${l.target}, which does not exist` });
    }
    return out;
  }

  /** l/ entries that point out of the driver home: reported as unsafe, never followed. */
  async unsafeLinks(): Promise<{ path: string; reason: string }[]> {
    return (await this.linkEntries())
      .filter((l) => !l.id)
      .map((l) => ({ path: l.path, reason: `points to ${l.target}, outside the layer dirs of ${this.home}; it is never followed` }));
  }

  async parentsOf(id: string): Promise<string[]> {
    const lower = await this.lowerOf(id);
    if (lower.state !== 'ok') return [];
    const links = await this.linkIndex();
    const out: string[] = [];
    for (const part of lower.text.trim().split(':').filter(Boolean)) {
      const m = /^l\/([^/]+)$/.exec(part);
      const parent = m ? links.get(m[1])?.id : undefined;
      if (parent) out.push(parent);
    }
    return out;
  }

  async contentRoots(id: string): Promise<string[]> {
    return [`${this.dirOf(id)}/diff`, ...(await this.parentsOf(id)).map((p) => `${this.dirOf(p)}/diff`)];
  }

  async remove(id: string, rm: Remover): Promise<void> {
    if (id === 'l' || unsafeDriverId(id)) throw new Error(`refusing to remove ${JSON.stringify(id)}: not a layer ID of ${this.home}`);
    const dir = this.dirOf(id);
    const staged = `${dir}${STAGED_SUFFIX}`;
    const st = await lstatOrNull(dir);
    if (st?.isDirectory()) {
      await rm.rename(dir, staged);
    } else if (st?.isSymbolicLink()) {
      throw new Error(`${dir} is a symlink; layergc never follows or removes one in the driver home`);
    } else if (st) {
      await rm.unlink(dir); // a stray file in the home: remove the entry itself
      return;
    }
    // the l/ link names ../<id>/diff; after the rename it points nowhere, and it goes first
    const stagedSt = await lstatOrNull(staged);
    const from = rm.dryRun && st?.isDirectory() ? dir : staged;
    if (stagedSt?.isDirectory() || (rm.dryRun && st?.isDirectory())) {
      const lid = await this.lidOf(from);
      if (lid) {
        const lp = `${this.links}/${lid}`;
        const lst = await lstatOrNull(lp);
        if (lst?.isSymbolicLink() && (await fs.readlink(lp)) === `../${id}/diff`) await rm.unlink(lp);
      }
      await rm.removeTree(staged);
    }
  }

  async removeLink(path: string, rm: Remover): Promise<void> {
    await rm.unlink(path);
  }
}
