// The repair report (purge --include broken): what was repaired and on what evidence, what was
// removed and why, what a container held back, and what to do next for every removed image.
import { short } from '../../store/digest.js';
import { FINDING_KINDS } from '../../findings/types.js';
import type { RepairRun } from '../../repair/run.js';
import { purgeJson, renderPurgeHuman } from './purge.js';
import { purgeMetrics, type PurgeTotals, type RunTimes } from './prometheus.js';
import type { Output } from '../output.js';
import type { ScanHeader } from './scan-human.js';

export function repairJson(h: ScanHeader, r: RepairRun, dryRun: boolean, measured?: number, quarantine?: string): Record<string, unknown> {
  const base = purgeJson(h, r.actions, dryRun, measured);
  return {
    ...base,
    repair: {
      repaired: r.repairs.map((x) => ({ kind: x.kind, ...(x.layer ? { layer: x.layer } : {}), cacheId: x.cacheId, path: x.path, value: x.value, evidence: x.evidence, previous: x.previous, status: x.status, ...(x.reason ? { reason: x.reason } : {}) })),
      unproven: r.unproven,
      images: r.images,
      heldBack: r.heldBack,
      edits: r.edit ? [r.edit] : [],
      ...(r.notes.length ? { notes: r.notes } : {}),
      ...(quarantine ? { quarantine } : {}),
    },
  };
}

export function renderRepairHuman(o: Output, h: ScanHeader, r: RepairRun, opts: { dryRun: boolean; measuredFreed?: number; quarantine?: string }): string {
  const { c } = o;
  const would = opts.dryRun;
  const lines = [`${c.bold(`layergc purge --include broken${would ? ' --dry-run' : ''}`)} ${h.dataRoot} (${h.driver})`];
  if (opts.quarantine) lines.push(`quarantine: ${opts.quarantine} (layergc restore ${opts.quarantine} puts it back)`);
  const word = { planned: c.cyan('would repair'), done: c.green('repaired'), failed: c.red('FAILED') };
  for (const x of r.repairs) {
    const what = x.kind === 'cache-id' ? `cache-id of layer ${short(x.layer!)} = ${x.cacheId}` : x.kind === 'link' ? `link ${x.path} -> ${x.value}` : `link file ${x.path} = ${x.value}`;
    lines.push(`${word[x.status]}  ${what}`);
    lines.push(`    evidence: ${x.evidence}${x.previous.startsWith('/') ? `; the previous file is kept as ${x.previous}` : ` (was ${x.previous})`}`);
    if (x.reason) lines.push(`    ${c.red('why:')} ${x.reason}`);
  }
  for (const u of r.unproven) lines.push(`${c.yellow('not proven')}  layer ${short(u.layer)}: ${u.reason}; it is removed as broken`);
  if (r.edit) {
    const verb = r.edit.status === 'planned' ? 'would remove' : r.edit.status === 'done' ? 'removed' : c.red('FAILED to remove');
    lines.push(`${r.edit.path}: ${verb} ${r.edit.removedRefs.join(', ')}; the previous version ${r.edit.status === 'planned' ? 'would be' : 'is'} kept as ${r.edit.previous}${r.edit.reason ? ` (${r.edit.reason})` : ''}`);
  }
  const body = renderPurgeHuman(o, h, r.actions, { dryRun: opts.dryRun, measuredFreed: opts.measuredFreed }).split('\n').slice(1);
  lines.push(...body.filter((l) => !(r.repairs.length && l.includes('Nothing to remove.'))));
  for (const hb of r.heldBack) {
    lines.push(`${c.yellow('held back')}  ${hb.holder === 'buildkit' ? "BuildKit's build cache" : `container ${hb.container}`}${hb.images.length ? ` (and image ${hb.images.join(', ')})` : ''}: ${hb.reason}`);
  }
  for (const n of r.notes) lines.push(c.yellow(`note: ${n}`));
  if (r.images.length) {
    lines.push('', c.bold('What to do next:'));
    for (const i of r.images) lines.push(`  ${i.tags[0] ?? short(i.id)}: ${i.remedy}`);
  }
  return lines.join('\n');
}

export function repairMetrics(h: ScanHeader, r: RepairRun, p: PurgeTotals, t: RunTimes): string {
  const base = purgeMetrics(h, r.findings, p, t);
  const dr = h.dataRoot.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
  const count = (k: string) => r.repairs.filter((x) => x.kind === k && x.status === (p.dryRun ? 'planned' : 'done')).length;
  const removed = (k: string) => r.actions.filter((a) => a.finding.kind === k && a.status === (p.dryRun ? 'planned' : 'removed')).length;
  const lines = [
    '# HELP layergc_repaired Repairs of the last purge --include broken, by kind (planned ones on a dry run).',
    '# TYPE layergc_repaired gauge',
    ...['cache-id', 'link', 'link-file'].map((k) => `layergc_repaired{data_root="${dr}",kind="${k}"} ${count(k)}`),
    '# HELP layergc_repair_removed Items the last purge --include broken removed (or would), by finding kind.',
    '# TYPE layergc_repair_removed gauge',
    ...FINDING_KINDS.filter((k) => !['content-mismatch', 'tar-split-missing', 'tar-split-corrupt', 'sparse-unverifiable', 'unsafe-path', 'invalid-image'].includes(k)).map((k) => `layergc_repair_removed{data_root="${dr}",kind="${k}"} ${removed(k)}`),
    '# HELP layergc_repair_held_back Containers that held a broken chain back in the last repair.',
    '# TYPE layergc_repair_held_back gauge',
    `layergc_repair_held_back{data_root="${dr}"} ${r.heldBack.length}`,
  ];
  return `${base}${lines.join('\n')}\n`;
}
