// layergc explain <what>: why a thing is live (the chain of ownership from an image tag or
// container down to the dir) or why it is garbage or broken.
import { Command } from 'commander';
import { explainJson } from '../../app/report.js';
import { ExitCode } from '../../errors.js';
import { action, deliver, withStoreOptions, type CommonOptions } from '../common.js';
import { renderExplain } from '../render/explain.js';
import { metricsOf } from '../render/prometheus.js';

export const TARGET_HELP =
  'an image (tag, repo@digest, ID), a container (name, ID), a layer (chain ID), a driver dir (cache ID), IDs full or a unique prefix such as the 12 characters scan prints; or a path in the data root';

export function explainCommand(): Command {
  return withStoreOptions(new Command('explain'))
    .description('say why an image, container, layer, driver dir or path is live, garbage or broken')
    .argument('<what>', TARGET_HELP)
    .action(
      action<CommonOptions>(async (ctx, opts, args) => {
        const { explain } = await import('../../app/explain.js'); // loaded only for this command: the CLI starts fast
        const r = await explain(opts, args[0]);
        // the metrics are the whole scan's: explain reads the whole store to answer
        await deliver(ctx, { json: () => explainJson(r), metrics: () => metricsOf(r), human: () => renderExplain(ctx.out, r) });
        return r.explanation.status === 'live' ? ExitCode.OK : ExitCode.FOUND;
      }),
    );
}
