// layergc purge on the containerd image store: with containerd and dockerd stopped, removes the
// record-less snapshot dirs, blobs and ingest dirs and the config-less container dirs, through the
// same plan, lock, journal and pinned remover as the graph-driver purge. Leases are only reported.
import { randomBytes } from 'node:crypto';
import { ExitCode, LayergcError } from '../../errors.js';
import { liveMounts, Remover } from '../../fsx/remove.js';
import { acquireLock } from '../../purge/lock.js';
import { Journal } from '../../purge/journal.js';
import { planPurge, type Action } from '../../purge/plan.js';
import { executePlan, freeBytes, type ExecuteContext } from '../../purge/execute.js';
import { openContainerdStore } from '../../store/containerd/index.js';
import { scanContainerd } from '../../findings/containerd/scan.js';
import { CONTAINERD_GARBAGE } from '../../findings/containerd/kinds.js';
import type { FindingKind } from '../../findings/types.js';
import { formatOf, type CommonOptions, type RunContext } from '../common.js';
import { renderPurgeHuman } from '../render/purge.js';
import { purgeJson, purgeTotals } from '../../app/report.js';
import { purgeMetrics, writeMetricsFile } from '../render/prometheus.js';
import { human } from '../output.js';

export async function purgeContainerd({ out, log }: Pick<RunContext, 'out' | 'log'>, opts: CommonOptions & { dryRun?: boolean }, o: { minAgeMs: number; started: number }): Promise<number> {
  const store = await openContainerdStore(opts);
  const dryRun = !!opts.dryRun;
  if (store.holders.length && !dryRun) {
    throw new LayergcError(`the containerd image store ${store.loc.root} is in use (${store.holders.map((h) => h.what).join('; ')}); purge needs containerd and dockerd stopped`, ExitCode.DAEMON_RUNNING);
  }
  const lock = dryRun ? undefined : await acquireLock(store.loc.dataRoot, 'layergc purge');
  try {
    if (lock?.takenOver) log.warn(`took over the lock of a layergc that died: pid ${lock.takenOver.pid} on ${lock.takenOver.host}, since ${lock.takenOver.since}`, { event: 'lock-takeover', holder: lock.takenOver });
    const scan = await scanContainerd(store);
    for (const f of scan.findings) if (f.reclaimable && CONTAINERD_GARBAGE.includes(f.kind as never)) f.removal = { type: 'paths', paths: f.paths };
    const actions = planPurge(scan.findings, { kinds: CONTAINERD_GARBAGE as readonly FindingKind[], daemonRunning: store.holders.length > 0, minAgeMs: o.minAgeMs, now: Date.now(), driver: null }, () => 0);
    const journal = new Journal(store.loc.dataRoot, randomBytes(6).toString('hex'), dryRun);
    if (!dryRun) await journal.rotate();
    const freeBefore = freeBytes(store.loc.root);
    // the store's own items are contained in containerd's root, container dirs in the data root
    const inData = (a: Action) => a.finding.kind === 'containerd-configless-container';
    for (const [root, list] of [[store.loc.root, actions.filter((a) => !inData(a))], [store.loc.dataRoot, actions.filter(inData)]] as const) {
      // every removal here is of kind 'paths' with no driver ids: no storage-driver adapter is involved
      const ctx: ExecuteContext = { driver: undefined as never, rm: new Remover(root, liveMounts, dryRun), journal };
      await executePlan(list, ctx);
    }
    const measured = dryRun ? undefined : freeBytes(store.loc.root) - freeBefore;
    const header = { dataRoot: store.loc.dataRoot, driver: store.loc.snapshotter, daemonRunning: store.holders.length > 0, containerdRoot: store.loc.root };
    const leases = scan.findings.filter((f) => f.kind === 'containerd-dead-lease' || f.kind === 'containerd-orphan-lease');
    const leaseNote = leases.length
      ? `${leases.length} dead or orphan lease${leases.length === 1 ? '' : 's'} hold ${human(leases.reduce((t, f) => t + f.bytes, 0))}: layergc does not rewrite meta.db; with the daemon running, \`ctr -a <containerd socket> -n <namespace> leases rm --sync <id>\` lets containerd's GC collect them (${leases.map((f) => `${f.containerd?.namespace}/${f.containerd?.lease}`).join(', ')})`
      : undefined;
    const format = formatOf(opts);
    const totals = purgeTotals(actions, dryRun);
    const metrics = () => purgeMetrics(header, scan.findings, { ...totals, dryRun }, { started: o.started, finished: Date.now() });
    if (opts.metricsFile) await writeMetricsFile(opts.metricsFile, metrics());
    if (format === 'json') out.out(JSON.stringify(purgeJson({ header, actions, dryRun, measuredFreed: measured, notes: [] }), null, 2));
    else if (format === 'prometheus') out.out(metrics());
    else if (!(opts.quiet && !actions.length)) {
      if (leaseNote) log.warn(leaseNote);
      out.out(renderPurgeHuman(out, header, actions, { dryRun, measuredFreed: measured }));
    }
    return totals.failed ? ExitCode.FOUND : ExitCode.OK;
  } finally {
    await lock?.release();
  }
}
