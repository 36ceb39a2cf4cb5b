// layergc df: where the disk under the data root goes, in categories that add up to du; read-only.
import { Command } from 'commander';
import { dfJson } from '../../app/report.js';
import { ExitCode } from '../../errors.js';
import { action, deliver, withStoreOptions, type CommonOptions } from '../common.js';
import { renderDfHuman } from '../render/df.js';
import { metricsOf } from '../render/prometheus.js';

export function dfCommand(): Command {
  return withStoreOptions(new Command('df'))
    .description('where the disk under the data root goes: categories that add up to du -sx, unique and shared bytes per image; read-only')
    .action(
      action<CommonOptions>(async (ctx, opts) => {
        const { df } = await import('../../app/df.js'); // loaded only for this command: the CLI starts fast
        const r = await df(opts);
        await deliver(ctx, { json: () => dfJson(r), metrics: () => metricsOf(r), human: () => renderDfHuman(ctx.out, r, opts) });
        return ExitCode.OK;
      }),
    );
}
