// layergc verify: prove each layer's content against its DiffID, offline.
import { Command } from 'commander';
import { openStore } from '../../store/index.js';
import { ExitCode, LayergcError } from '../../errors.js';
import { verifyStore } from '../../verify/findings.js';
import { action, exitFor, formatOf, withFailOn, withStoreOptions, type CommonOptions, type FailOn } from '../common.js';
import { renderScanHuman } from '../render/scan-human.js';
import { scanJson } from '../render/scan-json.js';
import { human } from '../output.js';
import { buildkitNote } from '../notes.js';
import { storeKind } from '../../store/containerd/index.js';
import type { Output } from '../output.js';

interface VerifyOptions extends CommonOptions { jobs?: string; failOn: FailOn }

export function verifyCommand(): Command {
  return withFailOn(withStoreOptions(new Command('verify')))
    .description("rebuild each layer's tar stream from tar-split.json.gz and its files, and check it against the layer's DiffID")
    .argument('[layer...]', 'chain IDs to verify (with or without sha256:); default: every layer')
    .option('-j, --jobs <n>', 'layers verified at once (default: number of CPUs)')
    .action(action<VerifyOptions>(async ({ out }, opts, args) => {
      const started = Date.now();
      if (opts.jobs !== undefined && !/^[1-9]\d*$/.test(opts.jobs)) throw new LayergcError(`--jobs ${JSON.stringify(opts.jobs)} is not a positive whole number`);
      if ((await storeKind(opts)) === 'containerd') return verifyContainerdStore(out, opts, started);
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
      return exitFor(run.findings, opts.failOn);
    }));
}

/** verify of the containerd image store: every blob's sha256 against its name, its size against its records. */
async function verifyContainerdStore(out: Output, opts: VerifyOptions, started: number): Promise<number> {
  const { openContainerdStore } = await import('../../store/containerd/index.js');
  const { verifyBlobs } = await import('../../verify/containerd.js');
  const store = await openContainerdStore(opts);
  const stats = { blobs: 0, ok: 0, bytes: 0 };
  const findings = await verifyBlobs(store, stats);
  const header = { dataRoot: store.loc.dataRoot, driver: store.loc.snapshotter, daemonRunning: store.holders.length > 0, containerdRoot: store.loc.root };
  if (formatOf(opts) === 'json') {
    const j = scanJson(header, findings);
    Object.assign(j.summary as Record<string, unknown>, { layersVerified: stats.blobs, layersOk: stats.ok, bytesVerified: stats.bytes });
    j.skipped = [];
    out.out(JSON.stringify(j, null, 2));
  } else if (!(opts.quiet && !findings.length)) {
    const secs = (Date.now() - started) / 1000;
    out.out([renderScanHuman(out, header, findings).replace('layergc scan', 'layergc verify'), `Verified ${stats.blobs} blobs (${human(stats.bytes)}) in ${secs.toFixed(1)} s: ${stats.ok} match their digest and size${findings.length ? `, ${findings.length} do not` : ''}.`].join('\n'));
  }
  return findings.length ? ExitCode.FOUND : ExitCode.OK;
}
