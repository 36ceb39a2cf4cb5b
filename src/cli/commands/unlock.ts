// layergc unlock: clear the lock of a layergc that no longer runs; refused while its holder is alive.
import { Command, Option } from 'commander';
import { resolveDataRoot } from '../../store/locate.js';
import { describeHolder, unlock } from '../../purge/lock.js';
import { ExitCode } from '../../errors.js';
import { action, type CommonOptions } from '../common.js';

export function unlockCommand(): Command {
  return new Command('unlock')
    .description("remove the lock of a layergc that no longer runs (one killed in a container, on another machine); refused while its holder is provably alive")
    .option('--data-root <dir>', 'Docker data root (default: data-root from the daemon config, else /var/lib/docker)')
    .option('--driver <name>', 'accepted, as by the other commands; the lock does not depend on it')
    .option('--daemon-config <file>', 'dockerd config file to read data-root and userns-remap from')
    .option('--containerd-root <dir>', 'accepted, as by the other commands; the lock is in the data root')
    .option('-q, --quiet', 'print nothing when there was no lock')
    .addOption(new Option('--log-format <format>', 'format of log events on stderr').choices(['text', 'json']).default('text'))
    .action(action<CommonOptions>(async ({ log }, opts) => {
      const { real } = await resolveDataRoot(opts);
      const r = await unlock(real);
      if (!r.removed) {
        if (!opts.quiet) log.info(`no lock at ${r.path}; nothing to do`, { event: 'no-lock', path: r.path });
        return ExitCode.OK;
      }
      const { holder, text } = r.removed;
      log.warn(`removed the lock ${r.path} of ${describeHolder(holder)}; its holder is ${r.liveness?.state === 'dead' ? 'dead' : 'not provably alive'}: ${r.liveness?.why}. It held: ${text.trim()}`, { event: 'unlocked', path: r.path, holder, liveness: r.liveness, content: text });
      return ExitCode.OK;
    }));
}
