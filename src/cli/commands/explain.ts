// layergc explain <what>: why a thing is live (the chain of ownership from an image tag or
// container down to the dir) or why it is garbage or broken.
import { Command } from 'commander';
import { openStore } from '../../store/index.js';
import { scanStore } from '../../findings/index.js';
import { ExitCode, LayergcError } from '../../errors.js';
import { action, formatOf, withStoreOptions, type CommonOptions } from '../common.js';
import { explain, type Explanation } from '../../findings/explain.js';
import { findingJson } from '../render/finding-json.js';
import { SCHEMA_VERSION } from '../render/scan-json.js';
import { storeKind } from '../../store/containerd/index.js';
import type { Output } from '../output.js';
import { scanMetrics, writeMetricsFile } from '../render/prometheus.js';

export const TARGET_HELP = 'an image (tag, repo@digest, ID), a container (name, ID), a layer (chain ID), a driver dir (cache ID), IDs full or a unique prefix such as the 12 characters scan prints; or a path in the data root';

export function explainCommand(): Command {
  return withStoreOptions(new Command('explain'))
    .description('say why an image, container, layer, driver dir or path is live, garbage or broken')
    .argument('<what>', TARGET_HELP)
    .action(action<CommonOptions>(async ({ out }, opts, args) => {
      const started = Date.now();
      if ((await storeKind(opts)) === 'containerd') return explainContainerdStore(out, opts, args[0]);
      const store = await openStore(opts);
      const scan = await scanStore(store);
      const e = await explain(store, scan, args[0]);
      if (!e) throw new LayergcError(`${args[0]} is not an image, container, layer, driver dir or path that layergc knows in ${store.loc.dataRoot}`);
      const header = { dataRoot: store.loc.dataRoot, driver: store.loc.driver, daemonRunning: store.daemon.running };
      // the metrics are the whole scan's: explain reads the whole store to answer
      const metrics = () => scanMetrics(header, scan.findings, { started, finished: Date.now() }, 'explain');
      if (opts.metricsFile) await writeMetricsFile(opts.metricsFile, metrics());
      const format = formatOf(opts);
      if (format === 'json') out.out(JSON.stringify({ schemaVersion: SCHEMA_VERSION, dataRoot: store.loc.dataRoot, driver: store.loc.driver, ...e, findings: e.findings.map(findingJson) }, null, 2));
      else if (format === 'prometheus') out.out(metrics());
      else out.out(renderExplanation(e, out.c));
      return e.status === 'live' ? ExitCode.OK : ExitCode.FOUND;
    }));
}

function renderExplanation(e: Explanation, c: import('chalk').ChalkInstance): string {
  const colour = e.status === 'live' ? c.green : e.status === 'broken' ? c.red : c.yellow;
  const lines = [`${c.bold(e.subject)}: ${colour(e.status)}`];
  for (const l of e.because) lines.push(`  ${l}`);
  for (const f of e.findings) lines.push(`  ${c.bold(f.kind)}: ${f.reason}`);
  return lines.join('\n');
}

async function explainContainerdStore(out: Output, opts: CommonOptions, target: string): Promise<number> {
  const { openContainerdStore } = await import('../../store/containerd/index.js');
  const { scanContainerd } = await import('../../findings/containerd/scan.js');
  const { explainContainerd } = await import('../../findings/containerd/explain.js');
  const store = await openContainerdStore(opts);
  const e = explainContainerd(store, await scanContainerd(store), target);
  if (!e) throw new LayergcError(`${target} is not a path, blob digest, snapshot key or lease ID that layergc knows in ${store.loc.root}`);
  if (formatOf(opts) === 'json') {
    out.out(JSON.stringify({ schemaVersion: SCHEMA_VERSION, dataRoot: store.loc.dataRoot, driver: store.loc.snapshotter, containerdRoot: store.loc.root, ...e, findings: e.findings.map(findingJson) }, null, 2));
  } else out.out(renderExplanation(e, out.c));
  return e.status === 'live' ? ExitCode.OK : ExitCode.FOUND;
}
