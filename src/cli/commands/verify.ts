// layergc verify: prove each layer's content against its DiffID, offline.
import { Command } from 'commander';
import { openStore } from '../../store/index.js';
import { LayergcError } from '../../errors.js';
import { verifyStore } from '../../verify/findings.js';
import { resolveReference } from '../../store/resolve.js';
import { ancestors } from '../../store/references.js';
import { short } from '../../store/digest.js';
import type { Store } from '../../store/model.js';
import { action, exitFor, formatOf, withFailOn, withStoreOptions, type CommonOptions, type FailOn } from '../common.js';
import { renderScanHuman } from '../render/scan-human.js';
import { scanJson } from '../render/scan-json.js';
import { verifyMetrics, writeMetricsFile } from '../render/prometheus.js';
import { buildkitNote } from '../notes.js';
import { human, type Output } from '../output.js';
import { storeKind } from '../../store/containerd/index.js';
import { againWith } from '../hint.js';
import { progressFor, verifiedLines } from '../verified.js';
import type { Logger } from '../log.js';

interface VerifyOptions extends CommonOptions { jobs?: string; failOn: FailOn; verbose?: boolean }

/** Chain IDs to verify for what a person typed: an image's layers, a container's, a layer, a driver dir's layer. */
function chainIdsFor(store: Store, what: string, log: Logger, again: (sub: string) => string): string[] {
  const r = resolveReference(store, what);
  const { layers } = store.layerdb;
  const present = (ids: string[], of: string) => ids.filter((c) => {
    if (layers.has(c)) return true;
    log.warn(`layer ${short(c)} of ${of} is not in the layer store (see ${again('scan')})`);
    return false;
  });
  switch (r?.kind) {
    case 'layer': return [r.chainId];
    case 'image': return present(r.image.chainIds, `image ${what}`);
    case 'container': {
      const m = store.layerdb.mounts.find((x) => x.name === r.container.id);
      if (m?.parent) return present(ancestors(layers, m.parent).reverse(), `container ${what}`);
      const img = store.images.images.find((i) => i.id === r.container.image);
      return present(img?.chainIds ?? [], `container ${what}`);
    }
    case 'driver-dir': {
      const l = [...layers.values()].find((x) => x.cacheId === r.id);
      if (!l) throw new LayergcError(`driver dir ${r.id} is no layer's data (a container's writable layer has no DiffID to check)`);
      return [l.chainId];
    }
    default: throw new LayergcError(`${what} is not an image, container, layer or driver dir in ${store.loc.dataRoot}`);
  }
}

/** verify reads overlay redirects with getfattr (Debian's attr); without it, say so instead of guessing. */
async function getfattrNote(store: Store): Promise<string | undefined> {
  if (!['overlay2', 'fuse-overlayfs'].includes(store.loc.driver)) return undefined;
  const { spawnSync } = await import('node:child_process'); // only here: the CLI loads fast
  if (spawnSync('getfattr', ['--version'], { stdio: 'ignore' }).error === undefined) return undefined;
  return "getfattr was not found (install Debian's or Alpine's `attr` package): directories renamed in an upper layer (overlay redirect_dir) cannot be followed, and their files would be reported missing";
}

export function verifyCommand(): Command {
  return withFailOn(withStoreOptions(new Command('verify')))
    .description("rebuild each layer's tar stream from tar-split.json.gz and its files, and check it against the layer's DiffID")
    .argument('[what...]', 'images (tag, repo@digest, ID), containers (name, ID), layers (chain ID) or driver dirs, IDs full or a unique prefix; default: every layer')
    .option('-j, --jobs <n>', 'layers verified at once (default: number of CPUs)')
    .option('-v, --verbose', 'say why for every item, not once per kind')
    .action(action<VerifyOptions>(async ({ out, log }, opts, args) => {
      const started = Date.now();
      if (opts.jobs !== undefined && !/^[1-9]\d*$/.test(opts.jobs)) throw new LayergcError(`--jobs ${JSON.stringify(opts.jobs)} is not a positive whole number`);
      if ((await storeKind(opts)) === 'containerd') return verifyContainerdStore(out, opts, started);
      const store = await openStore(opts);
      const format = formatOf(opts);
      const layers = [...new Set(args.flatMap((a) => chainIdsFor(store, a, log, againWith(opts))))];
      if (args.length && !layers.length) throw new LayergcError(`nothing to verify: no layer of ${args.join(', ')} is in the layer store`);
      const getfattr = await getfattrNote(store);
      if (getfattr && format === 'human' && !opts.quiet) log.warn(getfattr);
      const run = await verifyStore(store, { layers, progress: progressFor(out, format, opts), concurrency: opts.jobs ? Number(opts.jobs) : undefined });
      const header = { dataRoot: store.loc.dataRoot, driver: store.loc.driver, daemonRunning: store.daemon.running };
      const ok = run.results.filter((r) => r.ok).length;
      const metrics = () => verifyMetrics(header, run.findings, { ok, failed: run.results.length - ok, skipped: run.skipped.length, bytes: run.bytes }, { started, finished: Date.now() });
      if (opts.metricsFile) await writeMetricsFile(opts.metricsFile, metrics());
      const notes = [buildkitNote(store), getfattr].filter((n): n is string => !!n);
      if (format === 'json') {
        const j = scanJson(header, run.findings, notes);
        const summary = j.summary as Record<string, unknown>;
        summary.layersVerified = run.results.length;
        summary.layersOk = ok;
        summary.bytesVerified = run.bytes;
        j.skipped = run.skipped;
        out.out(JSON.stringify(j, null, 2));
      } else if (format === 'prometheus') out.out(metrics());
      else if (!(opts.quiet && !run.findings.length)) {
        out.out(renderScanHuman(out, header, run.findings, { command: 'verify', notes: [buildkitNote(store)].filter((n): n is string => !!n), verbose: opts.verbose, again: againWith(opts), verified: verifiedLines(run, Date.now() - started, 'verify', againWith(opts)) }));
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
    const verified = [`verify: verified ${stats.blobs} blobs (${human(stats.bytes)}) in ${secs.toFixed(1)} s: ${stats.ok} match their digest and size${findings.length ? `, ${findings.length} do not` : ''}.`];
    out.out(renderScanHuman(out, header, findings, { command: 'verify', verbose: opts.verbose, again: againWith(opts), verified }));
  }
  return exitFor(findings, opts.failOn);
}
