// The report for people (scan, verify): a summary first (per kind: count, bytes, whether purge
// removes it), errors before garbage; then the details, each kind's meaning and `why` once (all
// of them with --verbose); then the next command to run. It reads at 80 columns.
import { KIND_INFO } from '../../findings/kinds.js';
import { CONTAINERD_GARBAGE, CONTAINERD_LEASE_KINDS } from '../../findings/containerd-kinds.js';
import { short } from '../../store/digest.js';
import { FINDING_KINDS, GARBAGE_KINDS, type Finding, type FindingKind } from '../../findings/types.js';
import { human, type Output } from '../output.js';
import { escapeText } from '../../escape.js';
import { kindWidth, wrap } from './wrap.js';

import type { Header, ScanReport, VerifyReport } from '../../app/report.js';
import { verifiedLines } from '../verified.js';

export interface ReportOptions {
  /** the command named in the header */
  command?: 'scan' | 'verify';
  notes?: string[];
  /** every item's why, not the first of each kind */
  verbose?: boolean;
  /** a next command with the flags that located this root */
  again?: (sub: string) => string;
  /** lines after the summary (what verify or scan --deep checked) */
  verified?: string[];
}

function purged(list: Finding[]): string {
  const k = list[0].kind;
  const n = list.filter((f) => f.reclaimable).length;
  if (k === 'unreferenced-layer') return 'with --include';
  if (CONTAINERD_LEASE_KINDS.includes(k as never)) return 'from meta.db';
  if (!(GARBAGE_KINDS.includes(k) || CONTAINERD_GARBAGE.includes(k as never)) || n === 0) return 'no';
  return n === list.length ? 'yes' : `${n} of ${list.length}`;
}

/** A remedy that gives a command to copy (layergc …, docker pull …) is never wrapped; prose is. */
const remedyLines = (r: string) => (/\b(layergc|docker pull) /.test(r) ? [`    remedy: ${r}`] : wrap(`remedy: ${r}`, '    ', '      '));

const nameOf = (f: Finding) =>
  f.containerd?.lease ? `lease ${f.containerd.lease}` : f.layer ? `layer ${short(f.layer)}` : f.cacheId ? `dir ${f.cacheId.length > 25 ? short(f.cacheId) : f.cacheId}` : f.paths[0];

export function renderScanHuman(o: Output, h: Header, findings: Finding[], opts: ReportOptions = {}): string {
  const { c } = o;
  const lines: string[] = [];
  lines.push(`${c.bold(`layergc ${opts.command ?? 'scan'}`)} ${h.dataRoot} (${h.containerdRoot ? `containerd ${h.containerdRoot}, ` : ''}${h.driver})`);
  if (h.daemonRunning) lines.push(c.yellow('a dockerd is running on this data root'));
  for (const n of opts.notes ?? []) lines.push(...wrap(`note: ${n}`).map((l) => c.yellow(l)));
  if (opts.verified) lines.push(...opts.verified.flatMap((v) => (v.startsWith('  ') ? wrap(v.trimStart(), '  ', '    ') : wrap(v))));
  if (!findings.length) {
    if (opts.command !== 'verify') lines.push(c.green('No orphan or broken layers found.'));
    return lines.join('\n');
  }

  // errors first, then in the documented order of kinds
  const rank = (k: FindingKind) => (findings.find((f) => f.kind === k)!.severity === 'error' ? 0 : 1) * 100 + FINDING_KINDS.indexOf(k);
  const kinds = [...new Set(findings.map((f) => f.kind))].sort((a, b) => rank(a) - rank(b));
  const byKind = new Map(kinds.map((k) => [k, findings.filter((f) => f.kind === k)]));

  lines.push('');
  const kw = kindWidth(kinds);
  lines.push(c.bold(`${'kind'.padEnd(kw)}${'severity'.padEnd(10)}${'count'.padStart(6)}${'bytes'.padStart(11)}  purged`));
  for (const [kind, list] of byKind) {
    const sev = list[0].severity;
    const bytes = list.reduce((s, f) => s + f.bytes, 0);
    const sevText = (sev === 'error' ? c.red : c.yellow)(sev.padEnd(10));
    lines.push(`${kind.padEnd(kw)}${sevText}${String(list.length).padStart(6)}${human(bytes).padStart(11)}  ${purged(list)}`);
  }
  const errors = findings.filter((f) => f.severity === 'error').length;
  const reclaim = findings.filter((f) => f.reclaimable).reduce((s, f) => s + f.bytes, 0);
  const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;
  lines.push(...wrap(`${c.bold(plural(findings.length, 'finding'))}: ${plural(errors, 'error')} (broken), ${plural(findings.length - errors, 'warning')}; ${c.bold(human(reclaim))} reclaimable.`));

  for (const [kind, list] of byKind) {
    lines.push('');
    lines.push(`${c.bold(kind)} ${(list[0].severity === 'error' ? c.red : c.yellow)(list[0].severity)}: ${list.length}`);
    lines.push(...wrap(KIND_INFO[kind], '  ', '  ').map((l) => c.dim(l)));
    if (!opts.verbose) lines.push(...wrap(`why: ${escapeText(list[0].reason)}${list.length > 1 ? ` (the first; --verbose shows each)` : ''}`, '  ', '       '));
    for (const f of list) {
      lines.push(`  ${c.bold(escapeText(nameOf(f)))}${f.bytes ? `  ${human(f.bytes)}` : ''}${f.reclaimable ? '' : c.dim('  (not purged)')}`);
      if (opts.verbose) lines.push(...wrap(`why: ${escapeText(f.reason)}`, '    ', '         '));
      f.paths.forEach((p, i) => {
        lines.push(`    ${i === 0 ? 'paths:' : '      '} ${escapeText(p)}`);
      });
      if (f.files?.length) {
        lines.push(`    ${c.red('files:')}`);
        for (const file of f.files) lines.push(...wrap(`${escapeText(file.name)}: ${file.problem}${file.detail ? ` (${file.detail})` : ''}`, '      ', '        '));
      }
      const a = [...f.affects.images.map((x) => `image ${x}`), ...f.affects.containers.map((x) => `container ${x}`)];
      if (a.length) lines.push(...wrap(`${c.red('affects:')} ${a.join(', ')}`, '    ', '      '));
      for (const r of f.remedy ?? []) lines.push(...remedyLines(r));
    }
  }
  const next: [string, string][] = [];
  // a lease is no file to remove, yet purge drops it from meta.db
  const leases = findings.some((f) => CONTAINERD_LEASE_KINDS.includes(f.kind as never));
  if ((reclaim || leases) && opts.again) next.push(['See what a purge would do', opts.again('purge --dry-run')]);
  if (errors && opts.again) next.push(['Ask why about one (a name or ID above)', opts.again('explain <name or ID>')]);
  // a command is never wrapped: it must copy whole
  if (next.length) lines.push('', ...next.flatMap(([what, cmd]) => [`${what}:`, `  ${cmd}`]));
  return lines.join('\n');
}

export interface HumanOptions {
  verbose?: boolean;
  quiet?: boolean;
  again: (sub: string) => string;
}

/** scan for people; '' under --quiet when nothing was found. */
export function renderScan(o: Output, r: ScanReport, opts: HumanOptions): string {
  if (opts.quiet && !r.findings.length) return '';
  const verified = r.verified && verifiedLines(r.verified, 'scan --deep', opts.again);
  return renderScanHuman(o, r.header, r.findings, { notes: r.notes, verbose: opts.verbose, again: opts.again, verified });
}

/** verify for people: what it verified first, then the findings as scan shows them. */
export function renderVerify(o: Output, r: VerifyReport, opts: HumanOptions): string {
  if (opts.quiet && !r.findings.length) return '';
  return renderScanHuman(o, r.header, r.findings, { command: 'verify', notes: r.notes, verbose: opts.verbose, again: opts.again, verified: verifiedLines(r.verified, 'verify', opts.again) });
}
