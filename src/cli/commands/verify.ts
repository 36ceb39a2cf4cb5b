// layergc verify: prove each layer's content against its DiffID, offline.
import { Command } from 'commander';
import { verifyJson } from '../../app/report.js';
import { LayergcError } from '../../errors.js';
import { action, deliver, exitFor, formatOf, withFailOn, withStoreOptions, type CommonOptions, type FailOn } from '../common.js';
import { renderVerify } from '../render/scan-human.js';
import { metricsOf } from '../render/prometheus.js';
import { againWith } from '../hint.js';
import { progressFor } from '../verified.js';

interface VerifyOptions extends CommonOptions {
  jobs?: string;
  failOn: FailOn;
  verbose?: boolean;
}

export function verifyCommand(): Command {
  return withFailOn(withStoreOptions(new Command('verify')))
    .description("rebuild each layer's tar stream from tar-split.json.gz and its files, and check it against the layer's DiffID")
    .argument('[what...]', 'images (tag, repo@digest, ID), containers (name, ID), layers (chain ID) or driver dirs, IDs full or a unique prefix; default: every layer')
    .option('-j, --jobs <n>', 'layers verified at once (default: number of CPUs)')
    .option('-v, --verbose', 'say why for every item, not once per kind')
    .action(
      action<VerifyOptions>(async (ctx, opts, args) => {
        if (opts.jobs !== undefined && !/^[1-9]\d*$/.test(opts.jobs)) throw new LayergcError(`--jobs ${JSON.stringify(opts.jobs)} is not a positive whole number`);
        const format = formatOf(opts);
        const again = againWith(opts);
        // the sha256 worker boots (tens of ms, on another core) while the use case and the store load
        void import('../../verify/hasher.js').then((h) => h.prestartHasher());
        const { verify } = await import('../../app/verify.js'); // loaded only for this command: the CLI starts fast
        const r = await verify({ ...opts, what: args, jobs: opts.jobs ? Number(opts.jobs) : undefined, again }, { log: ctx.log, progress: progressFor(ctx.out, format, opts) });
        if (r.getfattr && format === 'human' && !opts.quiet) ctx.log.warn(r.getfattr);
        await deliver(ctx, { json: () => verifyJson(r), metrics: () => metricsOf(r), human: () => renderVerify(ctx.out, r, { ...opts, again }) });
        return exitFor(r.findings, opts.failOn);
      }),
    );
}
