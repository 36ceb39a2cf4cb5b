// purge on the containerd image store: with containerd and dockerd stopped, removes the
// record-less snapshot dirs, blobs and ingest dirs and the config-less container dirs, through the
// same plan, lock, journal and pinned remover as the graph-driver purge; then drops the dead and
// orphan leases by an offline rewrite of meta.db (store/containerd/rewrite.ts), whose backup
// `layergc restore` puts back.
import { randomBytes } from 'node:crypto';
import { ExitCode, LayergcError } from '../errors.js';
import { liveMounts, Remover } from '../fsx/remove.js';
import { acquireLock } from '../purge/lock.js';
import { Journal } from '../purge/journal.js';
import { planPurge, type Action } from '../purge/plan.js';
import { executePlan, freeBytes, type ExecuteContext } from '../purge/execute.js';
import { openContainerdStore } from '../store/containerd/index.js';
import { findHolders } from '../store/containerd/locate.js';
import { removeLeases, type LeaseRewrite } from '../store/containerd/rewrite.js';
import { shellQuote } from '../escape.js';
import { scanContainerd } from '../findings/containerd/scan.js';
import { CONTAINERD_GARBAGE } from '../findings/containerd-kinds.js';
import type { FindingKind } from '../findings/types.js';
import { human } from '../units.js';
import { quietLog } from './hooks.js';
import { interruptedBy, logTakeover, type PurgeHooks, type PurgeOptions } from './purge-run.js';
import { purgeReport, type LeaseReport, type PurgeReport } from './report.js';

export async function purgeContainerd(opts: PurgeOptions, hooks: PurgeHooks, started: number): Promise<PurgeReport> {
  const store = await openContainerdStore(opts);
  const dryRun = !!opts.dryRun;
  if (store.holders.length && !dryRun) {
    throw new LayergcError(
      `the containerd image store ${store.loc.root} is in use (${store.holders.map((h) => h.what).join('; ')}); purge needs containerd and dockerd stopped`,
      ExitCode.DAEMON_RUNNING,
    );
  }
  const lock = dryRun ? undefined : await acquireLock(store.loc.dataRoot, 'layergc purge');
  try {
    logTakeover(lock, hooks.log ?? quietLog);
    const scan = await scanContainerd(store);
    for (const f of scan.findings) if (f.reclaimable && CONTAINERD_GARBAGE.includes(f.kind as never)) f.removal = { type: 'paths', paths: f.paths };
    const actions = planPurge(
      scan.findings,
      { kinds: CONTAINERD_GARBAGE as readonly FindingKind[], daemonRunning: store.holders.length > 0, minAgeMs: opts.minAgeMs, now: Date.now(), driver: null },
      () => 0,
    );
    const journal = new Journal(store.loc.dataRoot, randomBytes(6).toString('hex'), dryRun);
    if (!dryRun) await journal.rotate();
    const freeBefore = freeBytes(store.loc.root);
    // the store's own items are contained in containerd's root, container dirs in the data root
    const inData = (a: Action) => a.finding.kind === 'containerd-configless-container';
    // a containerd started since the check above may be committing a blob layergc planned to remove: asked again before each item
    const mayBegin = () => {
      const h = dryRun ? [] : findHolders(store.loc);
      return h.length ? `the containerd image store ${store.loc.root} came into use (${h.map((x) => x.what).join('; ')})` : undefined;
    };
    for (const [root, list] of [
      [store.loc.root, actions.filter((a) => !inData(a))],
      [store.loc.dataRoot, actions.filter(inData)],
    ] as const) {
      // every removal here is of kind 'paths' with no driver ids: no storage-driver adapter is involved
      const ctx: ExecuteContext = { driver: undefined as never, rm: new Remover(root, liveMounts, dryRun, hooks.signal), journal, signal: hooks.signal, onAction: hooks.onAction, mayBegin };
      await executePlan(list, ctx);
    }
    const measuredFreed = dryRun ? undefined : freeBytes(store.loc.root) - freeBefore;
    const header = { dataRoot: store.loc.dataRoot, driver: store.loc.snapshotter, daemonRunning: store.holders.length > 0, containerdRoot: store.loc.root };
    // an interrupted run stops before meta.db: the next purge does it
    const containerdLeases = interruptedBy(hooks.signal) ? undefined : await dropLeases(store, scan, journal, dryRun);
    const notes = containerdLeases ? [leaseLines(containerdLeases)] : [];
    return purgeReport({
      header,
      dryRun,
      actions,
      findings: scan.findings,
      measuredFreed,
      notes,
      interrupted: interruptedBy(hooks.signal),
      ...(containerdLeases ? { containerdLeases } : {}),
      started,
    });
  } finally {
    await lock?.release();
  }
}

/** The dead and orphan leases go by a rewrite of meta.db, never while anything of the store is broken (its GC would then delete live data). */
async function dropLeases(
  store: Awaited<ReturnType<typeof openContainerdStore>>,
  scan: Awaited<ReturnType<typeof scanContainerd>>,
  journal: Journal,
  dryRun: boolean,
): Promise<LeaseReport | undefined> {
  const found = scan.findings.filter((f) => f.kind === 'containerd-dead-lease' || f.kind === 'containerd-orphan-lease');
  if (!found.length) return undefined;
  const leases = found.map((f) => ({ namespace: f.containerd!.namespace!, id: f.containerd!.lease!, kind: f.kind, bytes: f.bytes }));
  const report: LeaseReport = { status: dryRun ? 'planned' : 'rewritten', metaDb: store.loc.metaDb, leases, bytesAtNextStart: leases.reduce((t, l) => t + l.bytes, 0) };
  const broken = scan.findings.filter((f) => f.severity === 'error');
  if (broken.length)
    return {
      ...report,
      status: 'skipped',
      reason: `the store has ${broken.length} error finding${broken.length === 1 ? '' : 's'} (${[...new Set(broken.map((f) => f.kind))].join(', ')}): the GC that dropping a lease starts would act on a store that is not whole`,
    };
  const keys = new Set(leases.map((l) => `${l.namespace}/${l.id}`));
  const metaLeases = [...scan.deadLeases.values()].map((d) => d.lease).filter((l) => keys.has(`${l.namespace}/${l.id}`));
  await journal.write({ event: 'intent', kind: 'containerd-dead-lease', paths: [store.loc.metaDb], bytes: report.bytesAtNextStart, reason: `rewrite meta.db without ${[...keys].join(', ')}` });
  let done: LeaseRewrite;
  try {
    done = await removeLeases(store.loc, metaLeases, {
      run: journal.run,
      dryRun,
      stillStopped: (ignore) => {
        const h = findHolders(store.loc, '/proc', ignore);
        if (h.length) throw new LayergcError(`the containerd image store ${store.loc.root} came into use (${h.map((x) => x.what).join('; ')}); meta.db was not changed`, ExitCode.DAEMON_RUNNING);
      },
    });
  } catch (err) {
    await journal.write({ event: 'failed', kind: 'containerd-dead-lease', paths: [store.loc.metaDb], reason: (err as Error).message });
    throw err;
  }
  await journal.write({ event: 'removed', kind: 'containerd-dead-lease', paths: [store.loc.metaDb], bytes: report.bytesAtNextStart, reason: `kept the previous meta.db as ${done.backup}` });
  return { ...report, backup: done.backup, restore: `layergc restore ${shellQuote(done.backup) ?? done.backup}` };
}

function leaseLines(r: LeaseReport): string {
  const n = `${r.leases.length} lease${r.leases.length === 1 ? '' : 's'}`;
  const names = r.leases.map((l) => `${l.namespace}/${l.id}`).join(', ');
  if (r.status === 'skipped') return `meta.db: ${n} not removed (${names}): ${r.reason}.`;
  const gc = `containerd's own GC collects what ${r.leases.length === 1 ? 'it' : 'they'} alone held, ${human(r.bytesAtNextStart)}, at its next start`;
  if (r.status === 'planned') return `meta.db: would be written again without ${n} (${names}); ${gc}. The previous meta.db would be kept beside it.`;
  return `meta.db: written again without ${n} (${names}); ${gc}.\n  The previous meta.db is kept as ${r.backup}\n  Put it back (before containerd starts): ${r.restore}`;
}
