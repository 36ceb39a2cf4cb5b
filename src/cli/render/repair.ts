// The repair report (purge --include broken): what was repaired and on what evidence, what was
// removed and why, what a container held back, and what to do next for every removed image.
import { short } from '../../store/digest.js';
import type { RepairRun } from '../../repair/run.js';
import { renderPurgeHuman } from './purge.js';
import type { Output } from '../output.js';
import type { Header as ScanHeader } from '../../app/report.js';

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
