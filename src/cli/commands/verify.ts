// layergc verify: prove each layer's content against its DiffID, offline.
import { Command } from 'commander';
import { openStore } from '../../store/index.js';
import { ExitCode, LayergcError } from '../../errors.js';
import { verifyStore } from '../../verify/findings.js';
import { action, formatOf, withStoreOptions, type CommonOptions } from '../common.js';
import { renderScanHuman } from '../render/scan-human.js';
import { scanJson } from '../render/scan-json.js';
import { human } from '../output.js';
import { buildkitNote } from '../notes.js';

interface VerifyOptions extends CommonOptions { jobs?: string }

export function verifyCommand(): Command {
  return withStoreOptions(new Command('verify'))
    .description("rebuild each layer's tar stream from tar-split.json.gz and its files, and check it against the layer's DiffID")
    .argument('[layer...]', 'chain IDs to verify (with or without sha256:); default: every layer')
    .option('-j, --jobs <n>', 'layers verified at once (default: number of CPUs)')
    .action(action<VerifyOptions>(async ({ out }, opts, args) => {
      const started = Date.now();
      if (opts.jobs !== undefined && !/^[1-9]\d*$/.test(opts.jobs)) throw new LayergcError(`--jobs ${JSON.stringify(opts.jobs)} is not a positive whole number`);
      const store = await openStore(opts);
      const format = formatOf(opts);
      const run = await verifyStore(store, { layers: args, progress: out.isTTY && format === 'human' && !opts.quiet, concurrency: opts.jobs ? Number(opts.jobs) : undefined });
      const header = { dataRoot: store.loc.dataRoot, driver: store.loc.driver, daemonRunning: store.daemon.running };
      if (format === 'json') {
        const j = scanJson(header, run.findings, [buildkitNote(store)].filter((n): n is string => !!n));
        const summary = j.summary as Record<string, unknown>;
        summary.layersVerified = run.results.length;
        summary.layersOk = run.results.filter((r) => r.ok).length;
        summary.bytesVerified = run.bytes;
        j.skipped = run.skipped;
        out.out(JSON.stringify(j, null, 2));
      } else if (!(opts.quiet && !run.findings.length)) {
        const secs = (Date.now() - started) / 1000;
        const ok = run.results.filter((r) => r.ok).length;
        const lines = [renderScanHuman(out, header, run.findings).replace('layergc scan', 'layergc verify')];
        for (const s of run.skipped) lines.push(`skipped layer ${s.chainId}: ${s.reason}`);
        lines.push(`Verified ${run.results.length} layers (${human(run.bytes)}) in ${secs.toFixed(1)} s: ${ok} match their DiffID${run.findings.length ? `, ${run.findings.length} do not` : ''}.`);
        out.out(lines.join('\n'));
      }
      return run.findings.length ? ExitCode.FOUND : ExitCode.OK;
    }));
}
