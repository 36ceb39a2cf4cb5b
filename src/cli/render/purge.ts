// The purge report: what was removed, what was not and why, and the space that came back.
import { short } from '../../store/digest.js';
import type { Action } from '../../purge/plan.js';
import { human, type Output } from '../output.js';
import { escapeText } from '../../escape.js';
import { actionBytes, purgeTotals, type Header as ScanHeader } from '../../app/report.js';

/** Free space grew by about what was counted: other writers on the filesystem did not blur it. */
const agrees = (measured: number, counted: number) => Math.abs(measured - counted) <= Math.max(1 << 20, counted / 10);

/**
 * The report of a purge. Quiet (the daily job's): only what was removed and what failed, '' when
 * neither; items skipped by policy are in the metrics and the JSON, never here.
 */
export function renderPurgeHuman(o: Output, h: ScanHeader, all: Action[], opts: { dryRun: boolean; asking?: boolean; measuredFreed?: number; quiet?: boolean; again?: (sub: string) => string }): string {
  const { c } = o;
  const actions = opts.quiet ? all.filter((a) => a.status === 'removed' || a.status === 'failed') : all;
  if (opts.quiet && !actions.length) return '';
  const lines = [`${c.bold(`layergc purge${opts.asking ? ': the plan' : opts.dryRun ? ' --dry-run' : ''}`)} ${h.dataRoot} (${h.driver})${h.daemonRunning ? c.yellow('  a dockerd is running on this data root') : ''}`];
  if (!actions.length) {
    lines.push(c.green('Nothing to remove.'));
    return lines.join('\n');
  }
  const word = { planned: c.cyan('would remove'), removed: c.green('removed'), failed: c.red('FAILED'), skipped: c.yellow('skipped') };
  for (const a of actions) {
    const f = a.finding;
    const name = f.layer ? `layer ${short(f.layer)}` : f.cacheId ? `dir ${f.cacheId}` : f.paths[0];
    lines.push(`${word[a.status]}  ${f.kind}  ${escapeText(name)}  ${human(actionBytes(a))}`);
    for (const p of f.paths) lines.push(c.dim(`    ${escapeText(p)}`));
    if (a.reason) lines.push(`    ${a.status === 'failed' ? c.red('why:') : 'why:'} ${escapeText(a.reason)}`);
  }
  const t = purgeTotals(all, opts.dryRun);
  const skipped = opts.quiet ? '' : `, ${t.skipped} skipped`;
  lines.push('');
  if (opts.dryRun) lines.push(`${c.bold(`Would remove ${t.planned} item${t.planned === 1 ? '' : 's'}, ${human(t.plannedBytes)}`)}${skipped}.${opts.asking ? '' : ` Nothing was changed. To remove: ${(opts.again ?? ((x: string) => `layergc ${x}`))('purge --yes')}`}`);
  else {
    const m = opts.measuredFreed;
    const same = m !== undefined && agrees(m, t.reclaimedBytes);
    lines.push(`${c.bold(`Removed ${t.removed} item${t.removed === 1 ? '' : 's'}, ${human(t.reclaimedBytes)}`)}${same && t.reclaimedBytes ? ' (the filesystem\'s free space grew by as much)' : ''}; ${t.failed ? c.red(`${t.failed} failed`) : '0 failed'}${skipped}.`);
    if (m !== undefined && !same) lines.push(c.dim(`Free space on the data root's filesystem changed by ${m < 0 ? '-' : '+'}${human(Math.abs(m))} meanwhile; other writers there count too.`));
    if (t.failed) lines.push(`Failed items are left as their reasons say (one that was staged keeps its staged name); fix the cause, then finish them with: ${(opts.again ?? ((x: string) => `layergc ${x}`))('purge --yes')}`);
  }
  return lines.join('\n');
}
