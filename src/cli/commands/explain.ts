// layergc explain <path | chain ID | cache id>: why a thing is live (the chain of ownership from an
// image tag or container down to the dir) or why it is garbage or broken.
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

export function explainCommand(): Command {
  return withStoreOptions(new Command('explain'))
    .description('say why a layer, driver dir or path is live, garbage or broken')
    .argument('<target>', 'a path inside the data root, a chain ID (with or without sha256:) or a driver/cache ID')
    .action(action<CommonOptions>(async ({ out }, opts, args) => {
      if ((await storeKind(opts)) === 'containerd') return explainContainerdStore(out, opts, args[0]);
      const store = await openStore(opts);
      const scan = await scanStore(store);
      const e = await explain(store, scan, args[0]);
      if (!e) throw new LayergcError(`${args[0]} is not a path, chain ID or driver ID that layergc knows in ${store.loc.dataRoot}`);
      if (formatOf(opts) === 'json') {
        out.out(JSON.stringify({ schemaVersion: SCHEMA_VERSION, dataRoot: store.loc.dataRoot, driver: store.loc.driver, ...e, findings: e.findings.map(findingJson) }, null, 2));
      } else out.out(renderExplanation(e, out.c));
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
