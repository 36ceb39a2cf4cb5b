// layergc restore DIR: put back what purge --include broken --quarantine DIR moved, as it was.
import { Command } from 'commander';
import { restore } from '../../app/restore.js';
import { restoreJson } from '../../app/report.js';
import { ExitCode } from '../../errors.js';
import { action, formatOf, type CommonOptions } from '../common.js';
import { renderRestore } from '../render/restore.js';

interface RestoreOptions extends CommonOptions { dryRun?: boolean }

export function restoreCommand(): Command {
  return new Command('restore')
    .description('put back everything a purge --include broken --quarantine DIR moved into DIR, or the meta.db a containerd-store purge replaced (give its backup meta.db.layergc-<run>); refuses to overwrite anything')
    .argument('<dir>', 'the quarantine directory, or a meta.db backup')
    .option('-n, --dry-run', 'show what would be put back; change nothing')
    .option('--json', 'print one JSON object')
    .option('--no-color', 'no colour')
    .option('-q, --quiet', 'print nothing when nothing was put back')
    .action(action<RestoreOptions>(async ({ out }, opts, args) => {
      const r = await restore(args[0] ?? '', opts);
      const text = formatOf(opts) === 'json' ? JSON.stringify(restoreJson(r), null, 2) : renderRestore(r, opts);
      if (text) out.out(text);
      return ExitCode.OK;
    }));
}
