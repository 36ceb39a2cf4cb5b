// The purge report for people: a summary first (per kind: count, bytes, what became of them;
// errors before garbage) and the totals, then the details, each kind's `why` once (every item's
// with --verbose; a failure's always), at 80 columns.
import { short } from '../../store/digest.js';
import type { Action } from '../../purge/plan.js';
import { FINDING_KINDS, type FindingKind } from '../../findings/types.js';
import { human, type Output } from '../output.js';
import { escapeText } from '../../escape.js';
import { actionBytes, purgeTotals, type Header, type PurgeReport } from '../../app/report.js';
import type { RepairRun } from '../../repair/run.js';
import { kindWidth, wrap } from './wrap.js';

/** Free space grew by about what was counted: other writers on the filesystem did not blur it. */
const agrees = (measured: number, counted: number) => Math.abs(measured - counted) <= Math.max(1 << 20, counted / 10);

export interface PurgeHumanOptions {
  dryRun: boolean;
  /** the plan shown before the [y/N] prompt */
  asking?: boolean;
  measuredFreed?: number;
  quiet?: boolean;
  /** every item's why, not the first of each kind */
  verbose?: boolean;
  notes?: string[];
  again?: (sub: string) => string;
  /** a dry run that would write meta.db again without leases (the containerd store) */
  leasesPlanned?: boolean;
}

const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;

/**
 * The report of a purge. Quiet (the daily job's): only what was removed and what failed, '' when
 * neither; items skipped by policy are in the metrics and the JSON, never here.
 */
export function renderPurgeHuman(o: Output, h: Header, all: Action[], opts: PurgeHumanOptions): string {
  const { c } = o;
  const actions = opts.quiet ? all.filter((a) => a.status === 'removed' || a.status === 'failed') : all;
  if (opts.quiet && !actions.length) return '';
  const again = opts.again ?? ((x: string) => `layergc ${x}`);
  const lines = [
    `${c.bold(`layergc purge${opts.asking ? ': the plan' : opts.dryRun ? ' --dry-run' : ''}`)} ${h.dataRoot} (${h.containerdRoot ? `containerd ${h.containerdRoot}, ` : ''}${h.driver})${h.daemonRunning ? c.yellow('  a dockerd is running on this data root') : ''}`,
  ];
  // a note's first line is prose, wrapped; the lines after it hold a path or a command to copy: never wrapped
  if (!opts.quiet)
    for (const n of opts.notes ?? []) {
      const [first, ...rest] = n.split('\n');
      lines.push(...[...wrap(`note: ${escapeText(first)}`), ...rest.map(escapeText)].map((l) => c.yellow(l)));
    }
  if (!actions.length) {
    lines.push(c.green('Nothing to remove.'));
    if (opts.leasesPlanned && !opts.quiet) lines.push(`Nothing was changed. To drop the leases: ${again('purge --yes')}`);
    return lines.join('\n');
  }

  // errors first, then in the documented order of kinds
  const severity = (k: FindingKind) => (actions.find((a) => a.finding.kind === k)!.finding.severity === 'error' ? 0 : 1);
  const kinds = [...new Set(actions.map((a) => a.finding.kind))].sort((a, b) => severity(a) - severity(b) || FINDING_KINDS.indexOf(a) - FINDING_KINDS.indexOf(b));
  const byKind = new Map(kinds.map((k) => [k, actions.filter((a) => a.finding.kind === k)]));
  const word = { planned: 'would remove', removed: 'removed', failed: 'failed', skipped: 'skipped' } as const;
  const order = ['removed', 'planned', 'failed', 'skipped'] as const;

  const kw = kindWidth(kinds);
  lines.push('', c.bold(`${'kind'.padEnd(kw)}${'count'.padStart(6)}${'bytes'.padStart(11)}  outcome`));
  for (const [kind, list] of byKind) {
    const bytes = list.reduce((t, a) => t + actionBytes(a), 0);
    const outcome = order
      .map((s) => [s, list.filter((a) => a.status === s).length] as const)
      .filter(([, n]) => n)
      .map(([s, n]) => (s === 'failed' ? c.red : (x: string) => x)(`${word[s]} ${n}`))
      .join(', ');
    lines.push(`${kind.padEnd(kw)}${String(list.length).padStart(6)}${human(bytes).padStart(11)}  ${outcome}`);
  }
  const t = purgeTotals(all, opts.dryRun);
  const skipped = opts.quiet ? '' : `, ${t.skipped} skipped`;
  if (opts.dryRun)
    lines.push(`${c.bold(`Would remove ${plural(t.planned, 'item')}, ${human(t.plannedBytes)}`)}${skipped}.${opts.asking ? '' : ` Nothing was changed. To remove: ${again('purge --yes')}`}`);
  else {
    const m = opts.measuredFreed;
    const same = m !== undefined && agrees(m, t.reclaimedBytes);
    lines.push(
      `${c.bold(`Removed ${plural(t.removed, 'item')}, ${human(t.reclaimedBytes)}`)}${same && t.reclaimedBytes ? " (the filesystem's free space grew by as much)" : ''}; ${t.failed ? c.red(`${t.failed} failed`) : '0 failed'}${skipped}.`,
    );
    if (m !== undefined && !same) lines.push(c.dim(`Free space on the data root's filesystem changed by ${m < 0 ? '-' : '+'}${human(Math.abs(m))} meanwhile; other writers there count too.`));
  }

  const colour = { planned: c.cyan, removed: c.green, failed: c.red, skipped: c.yellow };
  for (const [kind, list] of byKind) {
    lines.push('', c.bold(kind));
    if (!opts.verbose) {
      // each outcome's why once: the first item's (a failure's is shown with each item)
      for (const s of order) {
        const why = list.filter((a) => a.status === s && a.status !== 'failed' && a.reason);
        if (why.length) lines.push(...wrap(`why: ${escapeText(why[0].reason!)}${why.length > 1 ? ` (the first of ${why.length} ${word[s]}; --verbose shows each)` : ''}`, '  ', '       '));
      }
    }
    for (const a of list) {
      const f = a.finding;
      const name = f.layer ? `layer ${short(f.layer)}` : f.cacheId ? `dir ${f.cacheId.length > 25 ? short(f.cacheId) : f.cacheId}` : f.paths[0]; // the paths below name it whole
      lines.push(`${colour[a.status](a.status === 'failed' ? 'FAILED' : word[a.status])}  ${f.kind}  ${escapeText(name)}  ${human(actionBytes(a))}`);
      for (const p of f.paths) lines.push(c.dim(`    ${escapeText(p)}`));
      // a failure's why may end in a command to copy (chattr -i …): never wrapped
      if (a.status === 'failed' && a.reason) lines.push(`    ${c.red('why:')} ${escapeText(a.reason)}`);
      else if (a.reason && opts.verbose) lines.push(...wrap(`why: ${escapeText(a.reason)}`, '    ', '         '));
    }
  }
  if (!opts.dryRun && t.failed) lines.push('', `Failed items are left as their reasons say (one that was staged keeps its staged name); fix the cause, then finish them with: ${again('purge --yes')}`);
  return lines.join('\n');
}

/** The repair report (purge --include broken): what was repaired and on what evidence, what was removed and why, what a container held back, and what to do next for every removed image. */
function renderRepairHuman(o: Output, h: Header, r: RepairRun, opts: PurgeHumanOptions & { quarantine?: string }): string {
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
    lines.push(
      `${r.edit.path}: ${verb} ${r.edit.removedRefs.join(', ')}; the previous version ${r.edit.status === 'planned' ? 'would be' : 'is'} kept as ${r.edit.previous}${r.edit.reason ? ` (${r.edit.reason})` : ''}`,
    );
  }
  const body = renderPurgeHuman(o, h, r.actions, { ...opts, notes: [] })
    .split('\n')
    .slice(1);
  lines.push(...body.filter((l) => !(r.repairs.length && l.includes('Nothing to remove.'))));
  for (const hb of r.heldBack) {
    lines.push(
      `${c.yellow('held back')}  ${hb.holder === 'buildkit' ? "BuildKit's build cache" : `container ${hb.container}`}${hb.images.length ? ` (and image ${hb.images.join(', ')})` : ''}: ${hb.reason}`,
    );
  }
  for (const n of r.notes) lines.push(c.yellow(`note: ${n}`));
  if (r.images.length) {
    lines.push('', c.bold('What to do next:'));
    for (const i of r.images) lines.push(`  ${i.tags[0] ?? short(i.id)}: ${i.remedy}`);
  }
  return lines.join('\n');
}

/** Any purge's report: the repair's (--include broken) or the garbage purge's; '' under --quiet with nothing done. */
export function renderPurge(o: Output, r: PurgeReport, opts: { asking?: boolean; quiet?: boolean; verbose?: boolean; again: (sub: string) => string }): string {
  const base = {
    dryRun: r.dryRun,
    asking: opts.asking,
    measuredFreed: r.measuredFreed,
    quiet: opts.quiet,
    verbose: opts.verbose,
    notes: r.notes,
    again: opts.again,
    leasesPlanned: r.containerdLeases?.status === 'planned',
  };
  if (r.repair) {
    const x = r.repair;
    if (opts.quiet && !x.actions.length && !x.repairs.length && !x.heldBack.length) return '';
    return renderRepairHuman(o, r.header, x, { ...base, quarantine: r.quarantine });
  }
  return renderPurgeHuman(o, r.header, r.actions, base);
}
