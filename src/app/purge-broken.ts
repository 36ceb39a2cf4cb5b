// purge --include broken[,containers] [--quarantine DIR]: the repair run (src/repair) under the
// purge's lock, with its journal and report. The daemon must be stopped: a repair rewrites what it
// holds in memory.
import { ExitCode, LayergcError } from '../errors.js';
import { findDaemons } from '../store/daemon.js';
import type { StoreLocation } from '../store/model.js';
import { freeBytes } from '../purge/execute.js';
import { Quarantine, QuarantineError } from '../fsx/quarantine.js';
import { liveMounts, Remover } from '../fsx/remove.js';
import { runRepair } from '../repair/run.js';
import { quietLog } from './hooks.js';
import { interruptedBy, openJournal, type PurgeHooks, type PurgeOptions } from './purge-run.js';
import { purgeReport, type PurgeReport } from './report.js';

export async function purgeBroken(opts: PurgeOptions, broken: { containers: boolean; quarantine?: string }, loc: StoreLocation, hooks: PurgeHooks, started: number): Promise<PurgeReport> {
  const daemon = findDaemons(loc.dataRoot);
  if (daemon.running) {
    throw new LayergcError(`a dockerd (pid ${daemon.processes.map((p) => p.pid).join(', ')}) runs on ${loc.dataRoot}; repairing broken layers needs it stopped`, ExitCode.DAEMON_RUNNING);
  }
  const dryRun = !!opts.dryRun;
  const { journal } = await openJournal(loc.dataRoot, dryRun, hooks.log ?? quietLog);
  let quarantine: Quarantine | undefined;
  try {
    if (broken.quarantine !== undefined) quarantine = await Quarantine.open(broken.quarantine, loc.dataRoot, loc.driverHome, journal.run, new Remover(loc.dataRoot, liveMounts, dryRun, hooks.signal));
  } catch (err) {
    if (err instanceof QuarantineError) throw new LayergcError(err.message);
    throw err;
  }
  const freeBefore = freeBytes(loc.dataRoot);
  const run = await runRepair({ locate: opts, loc, dryRun, containers: broken.containers, kinds: opts.kinds, journal, quarantine, signal: hooks.signal });
  const measuredFreed = dryRun ? undefined : freeBytes(loc.dataRoot) - freeBefore;
  const header = { dataRoot: loc.dataRoot, driver: loc.driver, daemonRunning: false };
  return purgeReport({
    header,
    dryRun,
    actions: run.actions,
    findings: run.findings,
    measuredFreed,
    notes: [],
    repair: run,
    quarantine: quarantine?.dir,
    interrupted: interruptedBy(hooks.signal),
    started,
  });
}
