// purge --include broken[,containers] [--quarantine DIR]: the repair run (src/repair), its journal,
// report and metrics. The daemon must be stopped: a repair rewrites what it holds in memory.
import { randomBytes } from 'node:crypto';
import { ExitCode, LayergcError } from '../../errors.js';
import { findDaemons } from '../../store/daemon.js';
import type { StoreLocation } from '../../store/model.js';
import type { FindingKind } from '../../findings/types.js';
import { Journal } from '../../purge/journal.js';
import { freeBytes } from '../../purge/execute.js';
import { Quarantine, QuarantineError } from '../../fsx/quarantine.js';
import { liveMounts, Remover } from '../../fsx/remove.js';
import { runRepair } from '../../repair/run.js';
import { formatOf, type CommonOptions, type RunContext } from '../common.js';
import { renderRepairHuman } from '../render/repair.js';
import { purgeJson, purgeTotals } from '../../app/report.js';
import { repairMetrics } from '../render/prometheus.js';
import { writeMetricsFile } from '../render/prometheus.js';

/** Words --include takes besides finding kinds. */
export const REPAIR_WORDS = ['broken', 'containers'];

interface BrokenOptions extends CommonOptions { dryRun?: boolean; yes?: boolean; quarantine?: string }

export function checkRepairOptions(words: Set<string>, opts: BrokenOptions): void {
  if (words.has('containers') && !words.has('broken')) throw new LayergcError('--include containers goes with broken: --include broken,containers');
  if (opts.quarantine !== undefined && !words.has('broken')) throw new LayergcError('--quarantine goes with --include broken');
  if (words.has('broken') && !opts.dryRun && !opts.yes) throw new LayergcError('--include broken needs --dry-run or --yes');
}

export async function purgeBroken({ out, log }: Omit<RunContext, 'opts'> & { opts: CommonOptions }, opts: BrokenOptions, loc: StoreLocation, o: { kinds: FindingKind[]; containers: boolean; started: number }): Promise<number> {
  const daemon = findDaemons(loc.dataRoot);
  if (daemon.running) {
    throw new LayergcError(`a dockerd (pid ${daemon.processes.map((p) => p.pid).join(', ')}) runs on ${loc.dataRoot}; repairing broken layers needs it stopped`, ExitCode.DAEMON_RUNNING);
  }
  const dryRun = !!opts.dryRun;
  const journal = new Journal(loc.dataRoot, randomBytes(6).toString('hex'), dryRun);
  const unfinished = dryRun ? [] : await journal.unfinished();
  for (const l of journal.skippedLines) log.warn(`skipped a journal line of the wrong shape: ${JSON.stringify(l)}`, { event: 'journal-skipped' });
  if (unfinished.length) log.info(`finishing ${unfinished.length} item(s) an interrupted purge left`, { event: 'resume', items: unfinished.length });
  await journal.rotate();
  let quarantine: Quarantine | undefined;
  try {
    if (opts.quarantine !== undefined) quarantine = await Quarantine.open(opts.quarantine, loc.dataRoot, loc.driverHome, journal.run, new Remover(loc.dataRoot, liveMounts, dryRun));
  } catch (err) {
    if (err instanceof QuarantineError) throw new LayergcError(err.message);
    throw err;
  }
  const freeBefore = freeBytes(loc.dataRoot);
  const run = await runRepair({ locate: opts, loc, dryRun, containers: o.containers, kinds: o.kinds, journal, quarantine });
  const measured = dryRun ? undefined : freeBytes(loc.dataRoot) - freeBefore;
  const header = { dataRoot: loc.dataRoot, driver: loc.driver, daemonRunning: false };
  const format = formatOf(opts);
  const totals = purgeTotals(run.actions, dryRun);
  const metrics = () => repairMetrics({ command: 'purge', header, dryRun, actions: run.actions, findings: run.findings, totals, notes: [], repair: run, times: { started: o.started, finished: Date.now() } });
  if (opts.metricsFile) await writeMetricsFile(opts.metricsFile, metrics());
  if (format === 'json') out.out(JSON.stringify(purgeJson({ header, actions: run.actions, dryRun, measuredFreed: measured, notes: [], repair: run, quarantine: quarantine?.dir }), null, 2));
  else if (format === 'prometheus') out.out(metrics());
  else if (!(opts.quiet && !run.actions.length && !run.repairs.length && !run.heldBack.length)) out.out(renderRepairHuman(out, header, run, { dryRun, measuredFreed: measured, quarantine: quarantine?.dir }));
  const failed = totals.failed + run.repairs.filter((r) => r.status === 'failed').length + (run.edit?.status === 'failed' ? 1 : 0);
  return failed || run.heldBack.length || run.blocked ? ExitCode.FOUND : ExitCode.OK;
}
