// layergc scan: find every orphan and broken layer, say why, what it costs and what it breaks.
import { Command } from 'commander';
import { scanJson } from '../../app/report.js';
import { action, deliver, exitFor, formatOf, withFailOn, withStoreOptions, type CommonOptions, type FailOn } from '../common.js';
import { renderScan } from '../render/scan-human.js';
import { metricsOf } from '../render/prometheus.js';
import { againWith } from '../hint.js';
import { progressFor } from '../verified.js';

interface ScanOptions extends CommonOptions {
  deep?: boolean;
  failOn: FailOn;
  verbose?: boolean;
}

export function scanCommand(): Command {
  return withFailOn(withStoreOptions(new Command('scan')))
    .description('find orphan and broken layers; read-only')
    .option('--deep', "also verify every layer's content against its DiffID (as `layergc verify`)")
    .option('-v, --verbose', 'say why for every item, not once per kind')
    .action(
      action<ScanOptions>(async (ctx, opts) => {
        const { scan } = await import('../../app/scan.js'); // loaded only for this command: the CLI starts fast
        const r = await scan(opts, { progress: progressFor(ctx.out, formatOf(opts), opts) });
        await deliver(ctx, { json: () => scanJson(r), metrics: () => metricsOf(r), human: () => renderScan(ctx.out, r, { ...opts, again: againWith(opts) }) });
        return exitFor(r.findings, opts.failOn);
      }),
    );
}
