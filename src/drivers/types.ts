// The storage-driver adapter interface: everything layergc knows about one graph driver's home
// (<data-root>/<driver>) sits behind it, one file per driver.
import type { Remover } from '../fsx/remove.js';
import type { EntryType } from '../fsx/read.js';

export interface DriverEntry {
  id: string; // the driver layer ID (a cache-id, mount-id or <mount-id>-init)
  path: string;
  /** What the listing of the home says it is (a dirent type, or an lstat). */
  stat: EntryType;
  /** Left renamed by an interrupted layergc purge: its removal is to be finished. */
  staged?: boolean;
}

export interface DanglingLink {
  path: string;
  target: string;
  reason: string;
}

/** A piece of driver bookkeeping the daemon never recreates, rebuilt from what is left (overlay2). */
export interface LinkRepair {
  kind: 'link' | 'link-file';
  cacheId: string;
  /** The symlink or file written, and what it holds. */
  path: string;
  value: string;
  /** Why this is proven, in one sentence. */
  evidence: string;
  previous: 'missing' | 'empty';
}

/** A driver entry that leads out of the home: reported as unsafe-path, never followed. */
export interface UnsafeLink {
  path: string;
  reason: string;
}

export type RemovalMode =
  | 'files' // plain file operations once unmounted (overlay2, vfs, aufs, fuse-overlayfs)
  | 'tool' // needs an external tool (btrfs subvolume delete)
  | 'report-only'; // cannot be removed safely offline by layergc (zfs, devicemapper, windowsfilter)

export interface DriverAdapter {
  readonly name: string;
  readonly home: string;
  readonly removal: RemovalMode;
  /** One sentence on why removal is limited, when it is. */
  readonly removalNote?: string;
  /**
   * Whether a layer's data shows as a path under the home offline. False where it lives in a pool
   * (zfs datasets, devicemapper thin devices): a missing dirOf(id) then says nothing.
   */
  readonly dataVisibleOffline: boolean;
  /** The dirs that hold its layer dirs and links: one that is a symlink is unsafe, and nothing in it is read. */
  readonly layerDirs: readonly string[];

  /** Entries of the home that stand for driver layers; driver bookkeeping (overlay2 l/) excluded. */
  listEntries(): Promise<DriverEntry[]>;
  /** Where a layer ID's data lives, whether or not it exists. */
  dirOf(id: string): string;
  /** What dirOf(id) is (null: nothing): as the home's one listing saw it when it lists it, else by an lstat now. */
  typeOf(id: string): EntryType | null;
  /** Every existing path that belongs to `id`: its directory, and links or files naming it. */
  pathsOf(id: string): Promise<string[]>;
  /**
   * Reads now what checkLayer, parentsOf and lowersUnknown will ask of the dirs `ids` (overlay2:
   * each one's diff/, link and lower), so that opening the store does all of a scan's reading and
   * the checks after it only look things up.
   */
  preload?(ids: string[]): void;
  /** Why the data of a layer the store uses is unusable; [] when it looks whole. */
  checkLayer(id: string, opts: { hasParent: boolean }): Promise<string[]>;
  /** Driver bookkeeping that points nowhere (overlay2 l/<LID> links). */
  danglingLinks(): Promise<DanglingLink[]>;
  /** Driver bookkeeping that points out of the layer dirs (overlay2 l/<LID> links elsewhere). */
  unsafeLinks(): Promise<UnsafeLink[]>;
  /**
   * Driver IDs whose data `id` reads through (overlay2 `lower`, aufs `layers/<id>`): a dir a live
   * one stacks on is in use even when no layerdb entry names it any more.
   */
  parentsOf?(id: string): Promise<string[]>;
  /** Why `id`'s own list of lowers cannot be read whole (then any dir may be one of them); undefined when it can. */
  lowersUnknown?(id: string, hasParent: boolean): Promise<string | undefined>;
  /** Bookkeeping of the layer dirs `ids` the daemon never recreates and the driver can rebuild (overlay2 links). */
  linkRepairs?(ids: string[]): Promise<LinkRepair[]>;
  /** Roots a layer's files are read from for verify: its own first, then fallbacks (nearest lower first). */
  contentRoots(id: string): Promise<string[]>;
  /**
   * Remove a layer's data: stage (rename) first, then delete, so an interrupted run is finished later.
   * A report-only driver refuses (the purge plan skips its items before anything is renamed).
   */
  remove(id: string, rm: Remover): Promise<void>;
  /** Remove one dangling bookkeeping entry. */
  removeLink(path: string, rm: Remover): Promise<void>;
}
