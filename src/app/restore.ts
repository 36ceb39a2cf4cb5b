// The restore use case: put back what purge --include broken --quarantine DIR moved, as it was, or
// the meta.db a containerd-store purge replaced (its backup given).
import { ExitCode, LayergcError } from '../errors.js';
import { findDaemons } from '../store/daemon.js';
import { acquireLock } from '../purge/lock.js';
import { readManifest, restoreQuarantine, QuarantineError } from '../fsx/quarantine.js';
import { isMetaDbBackup, restoreMetaDb } from '../store/containerd/rewrite.js';
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
  // a meta.db backup a containerd-store purge kept goes back as one edit; a quarantine as its manifest says
  const containerd = isMetaDbBackup(dir) ? await restoreMetaDb(dir, true) : undefined;
  const dataRoot = containerd?.dataRoot ?? ((await asUsage(() => readManifest(dir)))[0] as { dataRoot: string }).dataRoot;
  const daemon = findDaemons(dataRoot);
  if (daemon.running) throw new LayergcError(`a dockerd (pid ${daemon.processes.map((p) => p.pid).join(', ')}) runs on ${dataRoot}; restoring needs it stopped`, ExitCode.DAEMON_RUNNING);
  const lock = opts.dryRun ? undefined : await acquireLock(dataRoot, 'layergc restore');
  try {
    const r = containerd
      ? { items: [await restoreMetaDb(dir, !!opts.dryRun)].map((m) => ({ op: 'edit' as const, path: m.metaDb, from: m.backup, status: m.status })) }
      : await asUsage(() => restoreQuarantine(dir, !!opts.dryRun));
    return { command: 'restore', dataRoot, quarantine: dir, dryRun: !!opts.dryRun, items: r.items };
  } finally {
    await lock?.release();
  }
}
