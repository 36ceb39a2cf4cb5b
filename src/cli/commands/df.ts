// layergc df: where the disk under the data root goes, in categories that add up to du; read-only.
import { Command } from 'commander';
import { openStore } from '../../store/index.js';
import { diskUsage } from '../../df/index.js';
import { ExitCode } from '../../errors.js';
import { action, formatOf, withStoreOptions, type CommonOptions } from '../common.js';
import { dfJson, dfMetrics, renderDfHuman } from '../render/df.js';
import { writeMetricsFile } from '../render/prometheus.js';
import { buildkitNote } from '../notes.js';

export function dfCommand(): Command {
  return withStoreOptions(new Command('df'))
    .description('where the disk under the data root goes: categories that add up to du -sx, unique and shared bytes per image; read-only')
    .action(action<CommonOptions>(async ({ out }, opts) => {
      const started = Date.now();
      const store = await openStore(opts);
      const report = await diskUsage(store);
      const format = formatOf(opts);
      const metrics = () => dfMetrics(report, { started, finished: Date.now() });
      if (opts.metricsFile) await writeMetricsFile(opts.metricsFile, metrics());
      const notes = [buildkitNote(store)].filter((n): n is string => !!n);
      if (format === 'json') out.out(JSON.stringify(dfJson(report, notes), null, 2));
      else if (format === 'prometheus') out.out(metrics());
      else if (!opts.quiet) out.out(renderDfHuman(out, report, notes));
      return ExitCode.OK;
    }));
}
