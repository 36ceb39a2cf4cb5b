// purge on the containerd image store: with containerd and dockerd stopped, removes the
// record-less snapshot dirs, blobs and ingest dirs and the config-less container dirs, through the
// same plan, lock, journal and pinned remover as the graph-driver purge. Leases are only reported.
import { randomBytes } from 'node:crypto';
import { ExitCode, LayergcError } from '../errors.js';
import { liveMounts, Remover } from '../fsx/remove.js';
import { acquireLock } from '../purge/lock.js';
import { Journal } from '../purge/journal.js';
import { planPurge, type Action } from '../purge/plan.js';
import { executePlan, freeBytes, type ExecuteContext } from '../purge/execute.js';
import { openContainerdStore } from '../store/containerd/index.js';
import { scanContainerd } from '../findings/containerd/scan.js';
import { CONTAINERD_GARBAGE } from '../findings/containerd/kinds.js';
import type { FindingKind } from '../findings/types.js';
import { human } from '../units.js';
import { quietLog } from './hooks.js';
import { interruptedBy, logTakeover, type PurgeHooks, type PurgeOptions } from './purge-run.js';
import { purgeTotals, type PurgeReport } from './report.js';

export async function purgeContainerd(opts: PurgeOptions, hooks: PurgeHooks, started: number): Promise<PurgeReport> {
  const store = await openContainerdStore(opts);
  const dryRun = !!opts.dryRun;
  if (store.holders.length && !dryRun) {
    throw new LayergcError(`the containerd image store ${store.loc.root} is in use (${store.holders.map((h) => h.what).join('; ')}); purge needs containerd and dockerd stopped`, ExitCode.DAEMON_RUNNING);
  }
  const lock = dryRun ? undefined : await acquireLock(store.loc.dataRoot, 'layergc purge');
  try {
    logTakeover(lock, hooks.log ?? quietLog);
    const scan = await scanContainerd(store);
    for (const f of scan.findings) if (f.reclaimable && CONTAINERD_GARBAGE.includes(f.kind as never)) f.removal = { type: 'paths', paths: f.paths };
    const actions = planPurge(scan.findings, { kinds: CONTAINERD_GARBAGE as readonly FindingKind[], daemonRunning: store.holders.length > 0, minAgeMs: opts.minAgeMs, now: Date.now(), driver: null }, () => 0);
    const journal = new Journal(store.loc.dataRoot, randomBytes(6).toString('hex'), dryRun);
    if (!dryRun) await journal.rotate();
    const freeBefore = freeBytes(store.loc.root);
    // the store's own items are contained in containerd's root, container dirs in the data root
    const inData = (a: Action) => a.finding.kind === 'containerd-configless-container';
    for (const [root, list] of [[store.loc.root, actions.filter((a) => !inData(a))], [store.loc.dataRoot, actions.filter(inData)]] as const) {
      // every removal here is of kind 'paths' with no driver ids: no storage-driver adapter is involved
      const ctx: ExecuteContext = { driver: undefined as never, rm: new Remover(root, liveMounts, dryRun, hooks.signal), journal, signal: hooks.signal, onAction: hooks.onAction };
      await executePlan(list, ctx);
    }
    const measuredFreed = dryRun ? undefined : freeBytes(store.loc.root) - freeBefore;
    const header = { dataRoot: store.loc.dataRoot, driver: store.loc.snapshotter, daemonRunning: store.holders.length > 0, containerdRoot: store.loc.root };
    const leases = scan.findings.filter((f) => f.kind === 'containerd-dead-lease' || f.kind === 'containerd-orphan-lease');
    const notes = leases.length
      ? [`${leases.length} dead or orphan lease${leases.length === 1 ? '' : 's'} hold ${human(leases.reduce((t, f) => t + f.bytes, 0))}: layergc does not rewrite meta.db; with the daemon running, \`ctr -a <containerd socket> -n <namespace> leases rm --sync <id>\` lets containerd's GC collect them (${leases.map((f) => `${f.containerd?.namespace}/${f.containerd?.lease}`).join(', ')})`]
      : [];
    return { command: 'purge', header, dryRun, actions, findings: scan.findings, totals: purgeTotals(actions, dryRun), measuredFreed, notes, interrupted: interruptedBy(hooks.signal), times: { started, finished: Date.now() } };
  } finally {
    await lock?.release();
  }
}
