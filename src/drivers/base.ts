// What most adapters answer alike, written once: DriverBase for every driver, DirPerLayerDriver for
// the drivers whose layer is one directory <layersDir>/<id> (vfs, overlay2, btrfs, windowsfilter).
import { ExitCode, LayergcError } from '../errors.js';
import { listTyped, lstatOrNull, lstatOrNullSync, type EntryType } from '../fsx/read.js';
import type { Remover } from '../fsx/remove.js';
import { stageAndDelete } from './stage.js';
import { STAGED_SUFFIX } from '../layout.js';
import type { DanglingLink, DriverAdapter, DriverEntry, RemovalMode, UnsafeLink } from './types.js';

export abstract class DriverBase implements DriverAdapter {
  abstract readonly name: string;
  abstract readonly removal: RemovalMode;
  readonly dataVisibleOffline: boolean = true;

  constructor(readonly home: string) {}

  get layerDirs(): readonly string[] {
    return [this.home];
  }

  abstract listEntries(): Promise<DriverEntry[]>;
  abstract dirOf(id: string): string;

  typeOf(id: string): EntryType | null {
    return lstatOrNullSync(this.dirOf(id));
  }

  abstract pathsOf(id: string): Promise<string[]>;
  abstract checkLayer(id: string, opts: { hasParent: boolean }): Promise<string[]>;
  abstract remove(id: string, rm: Remover): Promise<void>;

  async danglingLinks(): Promise<DanglingLink[]> {
    return [];
  }

  async unsafeLinks(): Promise<UnsafeLink[]> {
    return [];
  }

  async contentRoots(id: string): Promise<string[]> {
    return [this.dirOf(id)];
  }

  async removeLink(path: string, rm: Remover): Promise<void> {
    if (this.removal === 'report-only') throw new LayergcError(`${path}: the ${this.name} driver keeps no links; nothing to remove`, ExitCode.UNSUPPORTED);
    await rm.unlink(path);
  }

  /** A report-only adapter's answer to remove (removalNote is each adapter's own: zfs answers it with a getter): the purge plan skips its items before this is reached. */
  protected refuse(what: string): never {
    throw new LayergcError(`${what} is not removed by layergc (report-only): ${(this as DriverAdapter).removalNote}`, ExitCode.UNSUPPORTED);
  }
}

export interface DirPerLayerOptions {
  /** The dir holding the layer dirs; the home itself when absent. */
  layersDir?: string;
  /** How checkLayer names a layer dir: `dir/<id>`, `subvolumes/<id>`, `<id>`. */
  label?: string;
  /** What a layer dir is, for "is a symlink, not ...". */
  noun?: string;
  /** The staging suffix its entries carry after an interrupted removal. */
  stagedSuffix?: string;
}

export abstract class DirPerLayerDriver extends DriverBase {
  readonly layersDir: string;
  protected readonly label: string;
  protected readonly noun: string;
  protected readonly stagedSuffix: string;

  constructor(home: string, opts: DirPerLayerOptions = {}) {
    super(home);
    this.layersDir = opts.layersDir ?? home;
    this.label = opts.label ?? '';
    this.noun = opts.noun ?? 'a directory';
    this.stagedSuffix = opts.stagedSuffix ?? STAGED_SUFFIX;
  }

  /** Names in layersDir that are the driver's own bookkeeping (overlay2's l/). */
  protected isBookkeeping(_name: string): boolean {
    return false;
  }

  /** layersDir's listing, name -> type, kept when layersDir is a real directory: typeOf answers from it. */
  private listed?: Map<string, EntryType>;

  /** Each dir (or symlink: unsafe-path reports it) in layersDir; staged ones by their id. */
  async listEntries(): Promise<DriverEntry[]> {
    const out: DriverEntry[] = [];
    const listing = listTyped(this.layersDir);
    // an empty listing may be a missing, symlinked or unlistable dir: then typeOf looks each path up
    this.listed = listing.length ? new Map(listing.map((e) => [e.name, e.type])) : undefined;
    for (const e of listing) {
      if (this.isBookkeeping(e.name) || (!e.type.isDirectory() && !e.type.isSymbolicLink())) continue;
      const staged = e.name.endsWith(this.stagedSuffix);
      out.push({ id: staged ? e.name.slice(0, -this.stagedSuffix.length) : e.name, path: e.path, stat: e.type, staged });
    }
    return out;
  }

  dirOf(id: string): string {
    return `${this.layersDir}/${id}`;
  }

  /**
   * From the listing a scan made anyway (asking each of 10,000 layers' dirs again was 10,000 lstats
   * per question) for what it lists; what it does not list is looked up now, since a running daemon
   * may have made it since (it makes a layer's dir before anything names it).
   */
  override typeOf(id: string): EntryType | null {
    const listed = this.listed && !id.includes('/') ? this.listed.get(id) : undefined;
    return listed ?? super.typeOf(id);
  }

  async pathsOf(id: string): Promise<string[]> {
    return (await lstatOrNull(this.dirOf(id))) ? [this.dirOf(id)] : [];
  }

  /** Whether the layer dir is there and is a directory. */
  async checkLayer(id: string, _opts?: { hasParent: boolean }): Promise<string[]> {
    const st = await lstatOrNull(this.dirOf(id));
    const name = `${this.label}${id}`;
    if (!st) return [`${name} is missing`];
    if (st.isSymbolicLink()) return [`${name} is a symlink, not ${this.noun}`];
    if (!st.isDirectory()) return [`${name} is not a directory`];
    return [];
  }

  async remove(id: string, rm: Remover): Promise<void> {
    if (this.removal === 'report-only') this.refuse(`${this.name} layer ${id}`);
    await stageAndDelete(this.dirOf(id), rm);
  }
}
