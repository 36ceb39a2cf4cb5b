// layergc restore DIR: put back what purge --include broken --quarantine DIR moved, as it was.
import { Command } from 'commander';
import { restoreJson } from '../../app/report.js';
import { ExitCode } from '../../errors.js';
import { action, deliver, withOutputOptions, type CommonOptions } from '../common.js';
import { renderRestore } from '../render/restore.js';
import { metricsOf } from '../render/prometheus.js';

interface RestoreOptions extends CommonOptions {
  dryRun?: boolean;
}

export function restoreCommand(): Command {
  return withOutputOptions(new Command('restore'))
    .description(
      'put back everything a purge --include broken --quarantine DIR moved into DIR, or the meta.db a containerd-store purge replaced (give its backup meta.db.layergc-<run>); refuses to overwrite anything',
    )
    .argument('<dir>', 'the quarantine directory, or a meta.db backup')
    .option('-n, --dry-run', 'show what would be put back; change nothing')
    .action(
      action<RestoreOptions>(async (ctx, opts, args) => {
        const { restore } = await import('../../app/restore.js'); // loaded only for this command: the CLI starts fast
        const r = await restore(args[0] ?? '', opts);
        await deliver(ctx, { json: () => restoreJson(r), metrics: () => metricsOf(r), human: () => renderRestore(r, opts) });
        return ExitCode.OK;
      }),
    );
}
