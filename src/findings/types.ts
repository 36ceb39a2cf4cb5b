// A finding: one thing wrong in the store, why, what it costs and what it breaks. Kind names are
// part of layergc's interface (README, docs/scan.schema.json).
import type { Store } from '../store/model.js';
import type { References } from '../store/references.js';
import type { SizeAccounting } from '../fsx/size.js';
import { keepingClaims } from '../store/references.js';
import { STAGED_SUFFIX } from '../layout.js';
import type { Held, HeldCause, InferredKeep } from './kept.js';
import { CONTAINERD_KINDS } from './containerd-kinds.js';

export const FINDING_KINDS = [
  'removing-orphan',
  'stale-write-set',
  'unreferenced-driver-dir',
  'dangling-link',
  'unreferenced-layer',
  'missing-driver-data',
  'invalid-layer-metadata',
  'missing-parent',
  'chain-id-mismatch',
  'driver-data-damaged',
  'broken-mount',
  'image-missing-layers',
  'invalid-image',
  'unsafe-path',
  'content-mismatch',
  'tar-split-missing',
  'tar-split-corrupt',
  'sparse-unverifiable',
  ...CONTAINERD_KINDS,
] as const;

export type FindingKind = (typeof FINDING_KINDS)[number];

/** Garbage that `layergc purge` removes by default. */
export const GARBAGE_KINDS: readonly FindingKind[] = ['removing-orphan', 'stale-write-set', 'unreferenced-driver-dir', 'dangling-link'];

export interface Affects {
  images: string[];
  containers: string[];
}

/** How purge removes a finding's data; never part of the JSON. */
export type RemovalPlan =
  | { type: 'driver-dir'; driverId: string }
  | { type: 'link'; path: string }
  | { type: 'entry'; dir: string; driverId?: string } // a layerdb entry and the driver dir it names, driver first
  | { type: 'paths'; paths: string[]; driverIds?: string[] }; // files and trees in order, then driver dirs (repair: images, containers)

/** Whether carrying out a removal asks the storage driver to remove something (a report-only driver cannot). */
export function needsDriver(r: RemovalPlan): boolean {
  return r.type === 'driver-dir' || r.type === 'link' || (r.type === 'entry' && !!r.driverId) || (r.type === 'paths' && !!r.driverIds?.length);
}

export interface Finding {
  kind: FindingKind;
  severity: 'error' | 'warning';
  layer?: string;
  cacheId?: string;
  paths: string[];
  bytes: number;
  reclaimable: boolean;
  reason: string;
  affects: Affects;
  /** verify: the files that differ, are missing, or are shorter or longer than recorded. */
  files?: { name: string; problem: string; detail?: string }[];
  /** What to do about it (scan: under each broken finding, the repair command and per image how to get it back). */
  remedy?: string[];
  /** containerd image store: the namespace, lease, snapshot key or blob digest it is about. */
  containerd?: { namespace?: string; lease?: string; snapshot?: string; digest?: string };
  /** Internal: how to remove it, how recently it was written, mounts inside it. */
  removal?: RemovalPlan;
  newestMs?: number;
  mountsInside?: string[];
  /** Renamed for removal by an earlier purge that did not finish: finished first. */
  staged?: boolean;
  /** Why purge keeps it although it is reported (it may be live, or the only copy of a layer's data). */
  kept?: { why: string; cause: HeldCause };
}

export interface ScanContext {
  store: Store;
  refs: References;
  /** Driver IDs kept although nothing claims them (findings/kept.ts), with why. */
  kept: InferredKeep;
  /** Of those, the ones reported as unreferenced-driver-dir but not purged by default (may be live or an only copy). */
  held: Held;
  sizes: SizeAccounting;
  /** Driver IDs whose bytes a finding already counted, so a dir shared by two findings counts once. */
  counted: Set<string>;
}

export type FindingModule = (ctx: ScanContext) => Promise<Finding[]>;

export const noAffects = (): Affects => ({ images: [], containers: [] });

/** Whether a driver dir must stay although some garbage names it: claimed, or kept by inference. */
export function driverDirKept(ctx: ScanContext, id: string): boolean {
  // its staging name too: removing <id> renames it there, and a dir of that name that something claims is not ours
  return [id, `${id}${STAGED_SUFFIX}`].some((x) => keepingClaims(ctx.refs.claims.get(x)).length > 0 || ctx.kept.has(x));
}
