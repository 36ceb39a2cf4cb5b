// The storage-driver adapter interface: everything layergc knows about one graph driver's home
// (<data-root>/<driver>) sits behind it, one file per driver.
import type { Stats } from 'node:fs';
import type { Remover } from '../fsx/remove.js';

export interface DriverEntry {
  id: string;          // the driver layer ID (a cache-id, mount-id or <mount-id>-init)
  path: string;
  stat: Stats;
  /** Left renamed by an interrupted layergc purge: its removal is to be finished. */
  staged?: boolean;
}

export interface DanglingLink { path: string; target: string; reason: string }

export type RemovalMode =
  | 'files'        // plain file operations once unmounted (overlay2, vfs, aufs, fuse-overlayfs)
  | 'tool'         // needs an external tool (btrfs subvolume delete)
  | 'report-only'; // cannot be removed safely offline by layergc (zfs, devicemapper, windowsfilter)

export interface DriverAdapter {
  readonly name: string;
  readonly home: string;
  readonly removal: RemovalMode;
  /** One sentence on why removal is limited, when it is. */
  readonly removalNote?: string;

  /** Entries of the home that stand for driver layers; driver bookkeeping (overlay2 l/) excluded. */
  listEntries(): Promise<DriverEntry[]>;
  /** Where a layer ID's data lives, whether or not it exists. */
  dirOf(id: string): string;
  /** Every existing path that belongs to `id`: its directory, and links or files naming it. */
  pathsOf(id: string): Promise<string[]>;
  /** Why the data of a layer the store uses is unusable; [] when it looks whole. */
  checkLayer(id: string, opts: { hasParent: boolean }): Promise<string[]>;
  /** Driver bookkeeping that points nowhere (overlay2 l/<LID> links). */
  danglingLinks(): Promise<DanglingLink[]>;
  /**
   * Driver IDs whose data `id` reads through (overlay2 `lower`, aufs `layers/<id>`): a dir a live
   * one stacks on is in use even when no layerdb entry names it any more.
   */
  parentsOf?(id: string): Promise<string[]>;
  /** Roots a layer's files are read from for verify: its own first, then fallbacks (nearest lower first). */
  contentRoots(id: string): Promise<string[]>;
  /** Remove a layer's data: stage (rename) first, then delete, so an interrupted run is finished later. */
  remove(id: string, rm: Remover): Promise<void>;
  /** Remove one dangling bookkeeping entry. */
  removeLink(path: string, rm: Remover): Promise<void>;
}

/** The name layergc renames a driver dir to before deleting it; the next run finishes it. */
export const STAGED_SUFFIX = '-layergc-removing';
