// The restore use case: put back what purge --include broken --quarantine DIR moved, as it was.
import { ExitCode, LayergcError } from '../errors.js';
import { findDaemons } from '../store/daemon.js';
import { acquireLock } from '../purge/lock.js';
import { readManifest, restoreQuarantine, QuarantineError } from '../fsx/quarantine.js';
import type { RestoreReport } from './report.js';

/** A quarantine's own errors are the person's to fix: exit 2 with the message. */
async function asUsage<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (err) {
    if (err instanceof QuarantineError) throw new LayergcError(err.message);
    throw err;
  }
}

export async function restore(dirArg: string, opts: { dryRun?: boolean }): Promise<RestoreReport> {
  const dir = dirArg.replace(/\/+$/, '');
  if (!dir.startsWith('/')) throw new LayergcError(`restore ${dir}: give the quarantine's absolute path`);
  const header = await asUsage(() => readManifest(dir));
  const dataRoot = (header[0] as { dataRoot: string }).dataRoot;
  const daemon = findDaemons(dataRoot);
  if (daemon.running) throw new LayergcError(`a dockerd (pid ${daemon.processes.map((p) => p.pid).join(', ')}) runs on ${dataRoot}; restoring needs it stopped`, ExitCode.DAEMON_RUNNING);
  const lock = opts.dryRun ? undefined : await acquireLock(dataRoot, 'layergc restore');
  try {
    const r = await asUsage(() => restoreQuarantine(dir, !!opts.dryRun));
    return { command: 'restore', dataRoot, quarantine: dir, dryRun: !!opts.dryRun, items: r.items };
  } finally {
    await lock?.release();
  }
}
