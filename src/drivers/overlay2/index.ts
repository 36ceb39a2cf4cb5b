// overlay2 (and fuse-overlayfs, which keeps the same layout): home/<id>/{diff,link,lower,work},
// home/l/<LID> -> ../<id>/diff. Layout facts: daemon/graphdriver/overlay2/overlay.go.
import { listTyped, lstatOrNull, lstatOrNullSync, readlinkOrNull, readSmallFileSync, type EntryType, type SmallFile } from '../../fsx/read.js';
import { fs } from '../../fsx/fs.js';
import type { Remover } from '../../fsx/remove.js';
import { unsafeDriverId } from '../../layout.js';
import type { DanglingLink, DriverEntry, LinkRepair, UnsafeLink } from '../types.js';
import { DirPerLayerDriver } from '../base.js';
import { stageAndDelete } from '../stage.js';
import { LID, LinkDir, linkRepairs } from './links.js';

export class Overlay2Driver extends DirPerLayerDriver {
  readonly removal = 'files' as const;
  readonly links: LinkDir;

  constructor(
    readonly name: 'overlay2' | 'fuse-overlayfs',
    home: string,
  ) {
    super(home);
    this.links = new LinkDir(`${home}/l`);
  }

  /**
   * l/ is read before the home: a dir the home's listing shows existed after every link was read,
   * so danglingLinks takes it from the listing; one it does not show is looked up again.
   */
  override async listEntries(): Promise<DriverEntry[]> {
    this.links.index();
    return super.listEntries();
  }

  /** l/ holds the links, never a layer. */
  protected override isBookkeeping(name: string): boolean {
    return name === 'l';
  }

  override get layerDirs(): readonly string[] {
    return [this.home, this.links.dir];
  }

  /** l/<LID> when it is a symlink to ../<id>/diff. */
  private ownLink(id: string, dir: string): string | undefined {
    const lid = this.links.lidOf(dir);
    const l = lid ? this.links.index().get(lid) : undefined;
    return l?.target === `../${id}/diff` ? l.path : undefined;
  }

  /** A dir's `lower` file, read once per adapter: the damage check and the lower chain both need it. */
  private readonly lowers = new Map<string, SmallFile>();
  private lowerOf(id: string): SmallFile {
    let f = this.lowers.get(id);
    if (!f) this.lowers.set(id, (f = readSmallFileSync(`${this.dirOf(id)}/lower`)));
    return f;
  }

  /** A dir's `link` file and what its diff/ is, read once per adapter (preload reads them with the store). */
  private readonly linkTexts = new Map<string, SmallFile>();
  private linkOf(id: string): SmallFile {
    let f = this.linkTexts.get(id);
    if (!f) this.linkTexts.set(id, (f = readSmallFileSync(`${this.dirOf(id)}/link`)));
    return f;
  }
  private readonly diffs = new Map<string, EntryType | null>();
  private diffOf(id: string): EntryType | null {
    let d = this.diffs.get(id);
    if (d === undefined) this.diffs.set(id, (d = lstatOrNullSync(`${this.dirOf(id)}/diff`)));
    return d;
  }

  preload(ids: string[]): void {
    for (const id of ids) {
      if (unsafeDriverId(id) || !this.typeOf(id)?.isDirectory()) continue;
      try {
        this.diffOf(id);
      } catch {
        // unmemoized: only a check that needs this dir's diff/ reads it again and fails, as before preload
      }
      this.linkOf(id);
      this.lowerOf(id);
    }
  }

  /** The parts of a `lower` file ("l/A:l/B"), split once per dir. */
  private readonly lowerParts = new Map<string, string[]>();
  private partsOf(id: string, text: string): string[] {
    let parts = this.lowerParts.get(id);
    if (!parts) this.lowerParts.set(id, (parts = text.trim().split(':')));
    return parts;
  }

  override async pathsOf(id: string): Promise<string[]> {
    if (id === 'l') return []; // the link dir is bookkeeping, never a layer's data
    const dir = this.dirOf(id);
    const st = await lstatOrNull(dir);
    if (!st || st.isSymbolicLink()) return []; // a symlink here is unsafe-path, never data
    const link = st.isDirectory() ? this.ownLink(id, dir) : undefined;
    return link ? [dir, link] : [dir];
  }

  override async checkLayer(id: string, opts: { hasParent: boolean }): Promise<string[]> {
    const problems: string[] = [];
    const links = this.links.index();
    const diff = this.diffOf(id);
    if (!diff) problems.push('diff/ is missing');
    else if (!diff.isDirectory()) problems.push('diff is not a directory');
    const link = this.linkOf(id);
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
    const lower = this.lowerOf(id);
    if (lower.state === 'ok') {
      if (!lower.text.trim()) problems.push('lower file is empty (a crash before Docker 25 wrote it non-atomically)');
      for (const part of this.partsOf(id, lower.text)) {
        if (!part) continue;
        const lid = part.startsWith('l/') ? part.slice(2) : '';
        if (!LID.test(lid)) problems.push(`lower names ${JSON.stringify(part)}, not l/<link ID>`);
        else if (!links.has(lid)) problems.push(`lower names ${part}, which does not exist`);
      }
    } else if (lower.state === 'missing' && opts.hasParent) problems.push('lower file is missing although the layer has a parent');
    else if (lower.state !== 'missing') problems.push(`lower file is not readable (${lower.state})`);
    return problems;
  }

  override async danglingLinks(): Promise<DanglingLink[]> {
    const out: DanglingLink[] = [];
    for (const l of this.links.symlinks()) {
      if (!l.id) continue; // links elsewhere are unsafe, reported by the scan
      // a layer dir that lost diff/ still owns its link: moby never recreates one, and a restored diff/ needs it
      if (this.typeOf(l.id)?.isDirectory()) continue;
      // moby removes a layer's link before its dir: a link listed before such a removal and gone now
      // was never dangling (a container removed while the scan ran)
      if (readlinkOrNull(l.path) !== l.target) continue;
      out.push({ path: l.path, target: l.target!, reason: `points to ${l.target}, which does not exist` });
    }
    return out;
  }

  override async unsafeLinks(): Promise<UnsafeLink[]> {
    return this.links.unsafe(this.home);
  }

  async parentsOf(id: string): Promise<string[]> {
    const lower = this.lowerOf(id);
    if (lower.state !== 'ok') return [];
    const out: string[] = [];
    const links = this.links.index();
    for (const part of this.partsOf(id, lower.text)) {
      // the dir a `lower` entry names: by its l/ link, or, when that link is lost, by the dir's own `link` file
      const lid = part.startsWith('l/') ? part.slice(2) : '';
      if (!lid || lid.includes('/')) continue;
      const l = links.get(lid);
      const parent = l ? l.id : this.linkFiles().get(lid);
      if (parent) out.push(parent);
    }
    return out;
  }

  /** LID -> dir, from every layer dir's `link` file: read only when a lower names a lost link. */
  private linkFileIndex?: Map<string, string>;
  private linkFiles(): Map<string, string> {
    if (this.linkFileIndex) return this.linkFileIndex;
    this.linkFileIndex = new Map();
    for (const e of listTyped(this.home)) {
      const lid = e.type.isDirectory() && e.name !== 'l' ? this.links.lidOf(e.path) : undefined;
      if (lid) this.linkFileIndex.set(lid, e.name);
    }
    return this.linkFileIndex;
  }

  async lowersUnknown(id: string, hasParent: boolean): Promise<string | undefined> {
    const lower = this.lowerOf(id);
    if (lower.state === 'missing') return hasParent ? 'lower file is missing' : undefined;
    if (lower.state !== 'ok') return `lower file is not readable (${lower.state})`;
    // moby writes no lower for a base layer: an empty one was cut by a crash, whatever it named
    if (!lower.text.trim()) return 'lower file is empty';
    const links = this.links.index();
    for (const part of this.partsOf(id, lower.text)) {
      // a well-formed LID whose link and dir are both gone names nothing left to keep
      const lid = part.startsWith('l/') ? part.slice(2) : '';
      if (!LID.test(lid) || (links.has(lid) && !links.get(lid)!.id)) return `lower file names ${JSON.stringify(part.slice(0, 40))}, not a layer's link`;
    }
    return undefined;
  }

  async linkRepairs(ids: string[]): Promise<LinkRepair[]> {
    return linkRepairs(this.links.dir, (id) => this.dirOf(id), ids);
  }

  override async contentRoots(id: string): Promise<string[]> {
    return [`${this.dirOf(id)}/diff`, ...(await this.parentsOf(id)).map((p) => `${this.dirOf(p)}/diff`)];
  }

  override async remove(id: string, rm: Remover): Promise<void> {
    if (id === 'l' || unsafeDriverId(id)) throw new Error(`refusing to remove ${JSON.stringify(id)}: not a layer ID of ${this.home}`);
    await stageAndDelete(this.dirOf(id), rm, {
      refuseSymlink: true,
      // the l/ link names ../<id>/diff; once the dir is staged it points nowhere, and it goes first
      staged: async (at) => {
        const lid = this.links.lidOf(at);
        if (!lid) return;
        const lp = `${this.links.dir}/${lid}`;
        if ((await lstatOrNull(lp))?.isSymbolicLink() && (await fs.readlink(lp)) === `../${id}/diff`) await rm.unlink(lp);
      },
    });
  }
}
