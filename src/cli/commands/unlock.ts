// layergc unlock: clear the lock of a layergc that no longer runs; refused while its holder is alive.
import { Command } from 'commander';
import { unlockJson } from '../../app/report.js';
import { ExitCode } from '../../errors.js';
import { action, deliver, withStoreOptions, type CommonOptions } from '../common.js';
import { metricsOf } from '../render/prometheus.js';

export function unlockCommand(): Command {
  return withStoreOptions(new Command('unlock'))
    .description('remove the lock of a layergc that no longer runs (one killed in a container, on another machine); refused while its holder is provably alive')
    .action(
      action<CommonOptions>(async (ctx, opts) => {
        const { unlock } = await import('../../app/unlock.js'); // loaded only for this command: the CLI starts fast
        const r = await unlock(opts);
        // what it removed is logged (stderr, or a JSON event with --log-format json) whatever the format
        if (!r.removed) {
          if (!opts.quiet) ctx.log.info(`no lock at ${r.lock}; nothing to do`, { event: 'no-lock', path: r.lock });
        } else {
          const { holder, text, description } = r.removed;
          ctx.log.warn(`removed the lock ${r.lock} of ${description}; its holder is ${r.liveness?.state === 'dead' ? 'dead' : 'not provably alive'}: ${r.liveness?.why}. It held: ${text.trim()}`, {
            event: 'unlocked',
            path: r.lock,
            holder,
            liveness: r.liveness,
            content: text,
          });
        }
        await deliver(ctx, { json: () => unlockJson(r), metrics: () => metricsOf(r), human: () => '' });
        return ExitCode.OK;
      }),
    );
}
