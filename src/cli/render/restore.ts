// restore for people: each item put back (or that would be), then the count.
import type { RestoreReport } from '../../app/report.js';

export function renderRestore(r: RestoreReport, opts: { quiet?: boolean }): string {
  const n = (s: string) => r.items.filter((i) => i.status === s).length;
  if (opts.quiet && !n('restored') && !n('planned')) return '';
  const lines = [`layergc restore${r.dryRun ? ' --dry-run' : ''} ${r.quarantine} -> ${r.dataRoot}`];
  for (const i of r.items)
    lines.push(`${i.status === 'planned' ? 'would restore' : i.status === 'already' ? 'already back' : 'restored'}  ${i.path}${i.op === 'edit' ? ` (previous version ${i.from})` : ''}`);
  lines.push(r.dryRun ? `Would restore ${n('planned')} item(s); nothing was changed.` : `Restored ${n('restored')} item(s); ${n('already')} were back already.`);
  return lines.join('\n');
}
