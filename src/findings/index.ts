// Scan: every finding module over one store, in the documented kind order.
import { computeReferences, type References } from '../store/references.js';
import { SizeAccounting } from '../fsx/size.js';
import { MountTable } from '../fsx/mounts.js';
import type { Store } from '../store/model.js';
import { FINDING_KINDS, type Finding, type FindingModule, type ScanContext } from './types.js';
import { removingOrphans } from './removing-orphan.js';
import { staleWriteSets } from './stale-write-set.js';
import { unreferencedDriverDirs } from './unreferenced-driver-dir.js';
import { danglingLinks } from './dangling-link.js';
import { unreferencedLayers } from './unreferenced-layer.js';
import { missingDriverData } from './missing-driver-data.js';
import { invalidLayerMetadata } from './invalid-layer-metadata.js';
import { missingParents } from './missing-parent.js';
import { chainIdMismatches } from './chain-id-mismatch.js';
import { driverDataDamaged } from './driver-data-damaged.js';
import { brokenMounts } from './broken-mount.js';
import { imagesMissingLayers } from './image-missing-layers.js';
import { invalidImages } from './invalid-image.js';
import { unsafePaths } from './unsafe-path.js';
import { inferHeld, inferKept, type InferredKeep } from './kept.js';

// Order matters for byte accounting: a driver dir goes with the first finding that claims it.
const MODULES: FindingModule[] = [
  unsafePaths,
  removingOrphans,
  staleWriteSets,
  unreferencedDriverDirs,
  danglingLinks,
  invalidLayerMetadata,
  unreferencedLayers,
  missingParents,
  chainIdMismatches,
  missingDriverData,
  driverDataDamaged,
  brokenMounts,
  imagesMissingLayers,
  invalidImages,
];

export interface ScanResult {
  findings: Finding[];
  refs: References;
  mounts: MountTable;
  kept: InferredKeep;
  sizes: SizeAccounting;
}

export interface ScanOptions {
  mounts?: MountTable;
  /** Walk every finding's tree for bytes and age (default). A purge that needs neither skips it. */
  sizes?: boolean;
}

export async function scanStore(store: Store, opts: ScanOptions = {}): Promise<ScanResult> {
  const mounts = opts.mounts ?? MountTable.read();
  const refs = computeReferences(store);
  const kept = await inferKept(store, refs);
  const held = await inferHeld(store, refs, kept);
  const sizes = new SizeAccounting(mounts, opts.sizes !== false);
  const ctx: ScanContext = { store, refs, kept, held, sizes, counted: new Set() };
  const findings: Finding[] = [];
  for (const m of MODULES) findings.push(...(await m(ctx)));
  const order = (k: Finding['kind']) => FINDING_KINDS.indexOf(k);
  findings.sort((a, b) => order(a.kind) - order(b.kind) || (a.paths[0] ?? '').localeCompare(b.paths[0] ?? ''));
  return { findings, refs, mounts, kept, sizes };
}

export * from './types.js';
