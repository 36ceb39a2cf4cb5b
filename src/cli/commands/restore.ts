// layergc restore DIR: put back what purge --include broken --quarantine DIR moved, as it was.
import { Command } from 'commander';
import { ExitCode, LayergcError } from '../../errors.js';
import { findDaemons } from '../../store/daemon.js';
import { acquireLock } from '../../purge/lock.js';
import { readManifest, restoreQuarantine, QuarantineError } from '../../fsx/quarantine.js';
import { action, formatOf, type CommonOptions } from '../common.js';
import { SCHEMA_VERSION } from '../render/scan-json.js';

interface RestoreOptions extends CommonOptions { dryRun?: boolean }

export function restoreCommand(): Command {
  return new Command('restore')
    .description('put back everything a purge --include broken --quarantine DIR moved into DIR; refuses to overwrite anything')
    .argument('<dir>', 'the quarantine directory')
    .option('-n, --dry-run', 'show what would be put back; change nothing')
    .option('--json', 'print one JSON object')
    .option('--no-color', 'no colour')
    .option('-q, --quiet', 'print nothing when nothing was put back')
    .action(action<RestoreOptions>(async ({ out }, opts, args) => {
      const dir = (args[0] ?? '').replace(/\/+$/, '');
      if (!dir.startsWith('/')) throw new LayergcError(`restore ${dir}: give the quarantine's absolute path`);
      const wrap = async <T>(f: () => Promise<T>): Promise<T> => {
        try {
          return await f();
        } catch (err) {
          if (err instanceof QuarantineError) throw new LayergcError(err.message);
          throw err;
        }
      };
      const header = await wrap(() => readManifest(dir));
      const dataRoot = (header[0] as { dataRoot: string }).dataRoot;
      const daemon = findDaemons(dataRoot);
      if (daemon.running) throw new LayergcError(`a dockerd (pid ${daemon.processes.map((p) => p.pid).join(', ')}) runs on ${dataRoot}; restoring needs it stopped`, ExitCode.DAEMON_RUNNING);
      const lock = opts.dryRun ? undefined : await acquireLock(dataRoot, 'layergc restore');
      try {
        const r = await wrap(() => restoreQuarantine(dir, !!opts.dryRun));
        const n = (s: string) => r.items.filter((i) => i.status === s).length;
        if (formatOf(opts) === 'json') {
          out.out(JSON.stringify({ schemaVersion: SCHEMA_VERSION, dataRoot, quarantine: dir, dryRun: !!opts.dryRun, items: r.items, summary: { restored: n('restored'), planned: n('planned'), already: n('already') } }, null, 2));
        } else if (!(opts.quiet && !n('restored') && !n('planned'))) {
          const lines = [`layergc restore${opts.dryRun ? ' --dry-run' : ''} ${dir} -> ${dataRoot}`];
          for (const i of r.items) lines.push(`${i.status === 'planned' ? 'would restore' : i.status === 'already' ? 'already back' : 'restored'}  ${i.path}${i.op === 'edit' ? ` (previous version ${i.from})` : ''}`);
          lines.push(opts.dryRun ? `Would restore ${n('planned')} item(s); nothing was changed.` : `Restored ${n('restored')} item(s); ${n('already')} were back already.`);
          out.out(lines.join('\n'));
        }
        return ExitCode.OK;
      } finally {
        await lock?.release();
      }
    }));
}
