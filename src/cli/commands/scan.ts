// layergc scan: find every orphan and broken layer, say why, what it costs and what it breaks.
import { Command } from 'commander';
import { openStore } from '../../store/index.js';
import { scanStore } from '../../findings/index.js';
import { action, exitFor, formatOf, withFailOn, withStoreOptions, type CommonOptions, type FailOn } from '../common.js';
import { renderScanHuman } from '../render/scan-human.js';
import { scanJson } from '../render/scan-json.js';
import { scanMetrics, writeMetricsFile } from '../render/prometheus.js';
import { buildkitNote, imagesNote, sourceNotes } from '../notes.js';
import { addRemedies } from '../../repair/remedy.js';
import { storeKind } from '../../store/containerd/index.js';
import type { Output } from '../output.js';
import { againWith } from '../hint.js';
import { progressFor, verifiedLines } from '../verified.js';

interface ScanOptions extends CommonOptions { deep?: boolean; failOn: FailOn; verbose?: boolean }

export function scanCommand(): Command {
  return withFailOn(withStoreOptions(new Command('scan')))
    .description('find orphan and broken layers; read-only')
    .option('--deep', 'also verify every layer\'s content against its DiffID (as `layergc verify`)')
    .option('-v, --verbose', 'say why for every item, not once per kind')
    .action(action<ScanOptions>(async ({ out }, opts) => {
      const started = Date.now();
      if ((await storeKind(opts)) === 'containerd') return scanContainerdStore(out, opts, started);
      const store = await openStore(opts);
      const { findings, refs } = await scanStore(store);
      addRemedies(findings, store, refs, opts);
      const format = formatOf(opts);
      let verified: string[] | undefined;
      if (opts.deep) {
        const { verifyFindings } = await import('../../verify/findings.js');
        const run = await verifyFindings(store, { refs, scanFindings: findings, progress: progressFor(out, format, opts) });
        findings.push(...run.findings);
        verified = verifiedLines(run, Date.now() - started, 'scan --deep', againWith(opts));
      }
      const header = { dataRoot: store.loc.dataRoot, driver: store.loc.driver, daemonRunning: store.daemon.running };
      const metrics = () => scanMetrics(header, findings, { started, finished: Date.now() });
      if (opts.metricsFile) await writeMetricsFile(opts.metricsFile, metrics());
      const notes = [buildkitNote(store), imagesNote(store), ...sourceNotes(store)].filter((n): n is string => !!n);
      if (format === 'json') out.out(JSON.stringify(scanJson(header, findings, notes), null, 2));
      else if (format === 'prometheus') out.out(metrics());
      else if (!(opts.quiet && !findings.length)) out.out(renderScanHuman(out, header, findings, { notes, verbose: opts.verbose, again: againWith(opts), verified }));
      return exitFor(findings, opts.failOn);
    }));
}

/** scan of Docker's containerd image store: the same report, other finding kinds. */
async function scanContainerdStore(out: Output, opts: ScanOptions, started: number): Promise<number> {
  const { openContainerdStore } = await import('../../store/containerd/index.js');
  const { scanContainerd } = await import('../../findings/containerd/scan.js');
  const store = await openContainerdStore(opts);
  const { findings } = await scanContainerd(store);
  if (opts.deep) {
    const { verifyBlobs } = await import('../../verify/containerd.js');
    findings.push(...(await verifyBlobs(store)));
  }
  const header = { dataRoot: store.loc.dataRoot, driver: store.loc.snapshotter, daemonRunning: store.holders.length > 0, containerdRoot: store.loc.root };
  const notes = store.holders.map((h) => `held by ${h.what}: the store may change under the scan`);
  const format = formatOf(opts);
  const metrics = () => scanMetrics(header, findings, { started, finished: Date.now() });
  if (opts.metricsFile) await writeMetricsFile(opts.metricsFile, metrics());
  if (format === 'json') out.out(JSON.stringify(scanJson(header, findings, notes), null, 2));
  else if (format === 'prometheus') out.out(metrics());
  else if (!(opts.quiet && !findings.length)) out.out(renderScanHuman(out, header, findings, { notes, verbose: opts.verbose, again: againWith(opts) }));
  return exitFor(findings, opts.failOn);
}
