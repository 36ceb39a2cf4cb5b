// `purge --include broken`: restore what the evidence proves, plan again, remove what cannot be
// repaired with everything that needs it, plan again, and purge the garbage that is left (dirs
// that were kept only because a cache-id was unknown, links of removed layers).
import { openStore } from '../store/index.js';
import { scanStore, type Finding, type FindingKind, type ScanResult } from '../findings/index.js';
import { imageLabel } from '../store/images.js';
import { liveMounts, Remover } from '../fsx/remove.js';
import { lstatOrNull } from '../fsx/read.js';
import { AtomicWriter } from '../fsx/atomic.js';
import type { Quarantine } from '../fsx/quarantine.js';
import { SizeAccounting } from '../fsx/size.js';
import type { MountTable } from '../fsx/mounts.js';
import { planPurge, type Action } from '../purge/plan.js';
import { executePlan } from '../purge/execute.js';
import type { Journal } from '../purge/journal.js';
import { ancestors } from '../store/references.js';
import type { Store, StoreLocation } from '../store/model.js';
import type { LocateOptions } from '../store/locate.js';
import { cacheIdRepairs, linkRepairs, type Repair } from './evidence.js';
import { layerFinding, planRepair, type HeldBack, type RepairPlan } from './plan.js';
import { applyRepairs, editRepositories, quarantinePlan, type Edit } from './execute.js';

export interface RemovedImage {
  id: string;
  tags: string[];
  why: string;
  remedy: string;
  status: Action['status'];
}

export interface RepairRun {
  store: Store;
  /** The first scan: metrics and the report's header count these. */
  findings: Finding[];
  mounts: MountTable;
  repairs: Repair[];
  unproven: { layer: string; reason: string }[];
  edit?: Edit;
  actions: Action[];
  images: RemovedImage[];
  heldBack: HeldBack[];
  notes: string[];
  /** An unreadable reference source stopped every removal of broken things. */
  blocked: boolean;
}

export interface RepairOptions {
  locate: LocateOptions;
  loc: StoreLocation;
  dryRun: boolean;
  containers: boolean;
  /** Garbage kinds purged after the repair (the defaults, and unreferenced-layer when included). */
  kinds: readonly FindingKind[];
  journal: Journal;
  quarantine?: Quarantine;
  /** SIGINT or SIGTERM: nothing new is begun */
  signal?: AbortSignal;
}

const action = (finding: Finding, depth = 0): Action => ({ finding, status: 'planned', depth });

/** Actions of a repair plan, in the order they run: containers, images, distribution entries, layers children first. */
async function repairActions(store: Store, plan: RepairPlan): Promise<Action[]> {
  const { driver } = store;
  const out: Action[] = [];
  const none = { images: [], containers: [] };
  for (const c of plan.containers) {
    const paths = [c.containerDir, c.mount.dir].filter((p): p is string => !!p);
    const driverPaths = (await Promise.all(c.driverIds.map((id) => driver.pathsOf(id)))).flat();
    out.push(
      action({
        kind: 'broken-mount',
        severity: 'error',
        cacheId: c.mount.mountId,
        layer: c.mount.parent,
        paths: [...paths, ...driverPaths],
        bytes: 0,
        reclaimable: true,
        reason: `container ${c.name} sits on a layer chain that is removed`,
        affects: { images: [], containers: [c.name] },
        removal: { type: 'paths', paths, driverIds: c.driverIds },
      }),
    );
  }
  const claimed = new Set<string>();
  for (const d of plan.images) {
    const own = plan.distribution.filter((e) => !claimed.has(e.path) && d.image.diffIds.includes(e.diffId)).map((e) => e.path);
    for (const p of own) claimed.add(p);
    // an imported or pulled image may have no metadata dir: only what exists is listed
    const paths = [...((await lstatOrNull(d.metadataDir)) ? [d.metadataDir] : []), d.image.path, ...own];
    out.push(
      action({
        kind: 'image-missing-layers',
        severity: 'error',
        paths,
        bytes: 0,
        reclaimable: true,
        reason: d.why,
        affects: { images: [imageLabel(d.image)], containers: [] },
        removal: { type: 'paths', paths },
      }),
    );
  }
  const rest = plan.distribution.map((e) => e.path).filter((p) => !claimed.has(p));
  if (rest.length) {
    out.push(
      action({
        kind: plan.layers[0]?.kind ?? 'invalid-layer-metadata',
        severity: 'error',
        paths: rest,
        bytes: 0,
        reclaimable: true,
        reason: 'distribution cache entries of diff IDs whose layers are removed',
        affects: none,
        removal: { type: 'paths', paths: rest },
      }),
    );
  }
  for (const l of plan.layers) {
    const dir = store.layerdb.layers.get(l.chainId)!.dir;
    const paths = [dir, ...(l.removeDriverDir && l.cacheId ? await driver.pathsOf(l.cacheId) : [])];
    out.push(action(layerFinding(store, l, paths), ancestors(store.layerdb.layers, l.chainId).length));
  }
  return out;
}

function measure(actions: Action[], mounts: MountTable): void {
  const sizes = new SizeAccounting(mounts);
  for (const a of actions) if (!a.finding.bytes) a.finding.bytes = a.finding.paths.reduce((t, p) => t + sizes.measure(p).bytes, 0);
}

export async function runRepair(o: RepairOptions): Promise<RepairRun> {
  let store = await openStore(o.locate, o.loc);
  let scan: ScanResult = await scanStore(store, { sizes: o.dryRun });
  const first = scan;
  const writer = new AtomicWriter(o.loc.dataRoot, o.dryRun);
  const rm = new Remover(o.loc.dataRoot, liveMounts, o.dryRun, o.signal); // the mount table as it is at each removal

  // 1. restore what the evidence proves
  const proven = await cacheIdRepairs(store, scan.refs);
  const repairs = [...proven.repairs, ...(await linkRepairs(store))];
  await applyRepairs(repairs, writer, o.journal);
  if (!o.dryRun && repairs.some((r) => r.status === 'done')) {
    store = await openStore(o.locate, o.loc);
    scan = await scanStore(store, { sizes: false, mounts: scan.mounts });
  }

  // 2, 3. remove what cannot be repaired, and what needs it
  const plan = await planRepair(store, scan, { containers: o.containers, repairs: o.dryRun ? repairs : [] });
  const actions = await repairActions(store, plan);
  if (o.dryRun) measure(actions, scan.mounts);
  const edit = await editRepositories(store, plan.refs, plan.images.length > 0, writer, o.journal, o.quarantine);
  if (edit?.status !== 'failed') {
    if (o.quarantine) await quarantinePlan(actions, store.driver, o.quarantine, o.journal, o.signal);
    else await executePlan(actions, { driver: store.driver, rm, journal: o.journal, signal: o.signal });
  } else {
    for (const a of actions) {
      a.status = 'skipped';
      a.reason = `repositories.json could not be rewritten first (${edit.reason}); nothing that its tags name is removed`;
    }
  }

  // then the garbage, planned again: dirs kept while a cache-id was unknown, links of removed layers
  if (!o.dryRun) {
    store = await openStore(o.locate, o.loc);
    scan = await scanStore(store, { sizes: false, mounts: scan.mounts });
  }
  const repaired = new Set(repairs.filter((r) => r.kind === 'cache-id').map((r) => r.cacheId));
  const gone = new Set(actions.flatMap((a) => a.finding.paths));
  const garbage = planPurge(scan.findings, { kinds: o.kinds, daemonRunning: false, minAgeMs: 0, now: Date.now(), driver: store.driver }, () => 0).filter(
    (a) => !(a.finding.kind === 'unreferenced-driver-dir' && a.finding.cacheId && repaired.has(a.finding.cacheId)) && !a.finding.paths.every((p) => gone.has(p)),
  );
  if (o.dryRun) {
    // dirs kept while a cache-id is lost are what this run resolves: the dry run plans them as the real run will
    for (const a of garbage) if (a.status === 'skipped' && a.finding.kept?.cause === 'lost-cache-id') Object.assign(a, { status: 'planned', reason: undefined });
    measure(garbage, scan.mounts);
  }
  if (o.quarantine) await quarantinePlan(garbage, store.driver, o.quarantine, o.journal, o.signal);
  else await executePlan(garbage, { driver: store.driver, rm, journal: o.journal, signal: o.signal });

  const images: RemovedImage[] = plan.images.map((d, i) => {
    const a = actions[plan.containers.length + i];
    return { id: d.image.id, tags: d.image.tags, why: d.why, remedy: d.remedy, status: a.status };
  });
  return {
    store,
    findings: first.findings,
    mounts: first.mounts,
    repairs,
    unproven: proven.unproven,
    edit,
    actions: [...actions, ...garbage],
    images,
    heldBack: plan.heldBack,
    notes: plan.notes,
    blocked: !!plan.blocked,
  };
}
