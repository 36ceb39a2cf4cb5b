// The scan report for people: findings grouped by kind, what each is, why, its size and what it
// breaks; then one summary line.
import { KIND_INFO } from '../../findings/kinds.js';
import { short } from '../../store/digest.js';
import type { Finding } from '../../findings/types.js';
import { human, type Output } from '../output.js';
import { escapeText } from '../../escape.js';

export interface ScanHeader { dataRoot: string; driver: string; daemonRunning: boolean; notes?: string[]; /** the containerd image store's root, when that is what was read */ containerdRoot?: string }

export function renderScanHuman(o: Output, h: ScanHeader, findings: Finding[], extraNotes: string[] = []): string {
  const { c } = o;
  const lines: string[] = [];
  lines.push(`${c.bold('layergc scan')} ${h.dataRoot} (${h.containerdRoot ? `containerd ${h.containerdRoot}, ` : ''}${h.driver})${h.daemonRunning ? c.yellow('  a dockerd is running on this data root') : ''}`);
  for (const n of extraNotes) lines.push(c.yellow(`note: ${n}`));
  if (!findings.length) {
    lines.push(c.green('No orphan or broken layers found.'));
    return lines.join('\n');
  }
  const byKind = new Map<string, Finding[]>();
  for (const f of findings) byKind.set(f.kind, [...(byKind.get(f.kind) ?? []), f]);
  for (const [kind, list] of byKind) {
    const total = list.reduce((s, f) => s + f.bytes, 0);
    const sev = list[0].severity === 'error' ? c.red('error') : c.yellow('warning');
    lines.push('');
    lines.push(`${c.bold(kind)} ${sev} ${list.length} found${total ? `, ${human(total)}` : ''}`);
    lines.push(c.dim(`  ${KIND_INFO[list[0].kind]}`));
    for (const f of list) {
      const name = f.containerd?.lease ? `lease ${f.containerd.lease}` : f.layer ? `layer ${short(f.layer)}` : f.cacheId ? `dir ${f.cacheId.length > 25 ? short(f.cacheId) : f.cacheId}` : f.paths[0];
      lines.push(`  ${c.bold(escapeText(name))}${f.bytes ? `  ${human(f.bytes)}` : ''}${f.reclaimable ? '' : c.dim('  (not purged)')}`);
      lines.push(`    why: ${escapeText(f.reason)}`);
      f.paths.forEach((p, i) => lines.push(`    ${i === 0 ? 'paths:' : '      '} ${escapeText(p)}`));
      const a = [...f.affects.images.map((x) => `image ${x}`), ...f.affects.containers.map((x) => `container ${x}`)];
      if (a.length) lines.push(`    ${c.red('affects:')} ${a.join(', ')}`);
      for (const r of f.remedy ?? []) lines.push(`    remedy: ${r}`);
    }
  }
  const errors = findings.filter((f) => f.severity === 'error').length;
  const reclaim = findings.filter((f) => f.reclaimable).reduce((s, f) => s + f.bytes, 0);
  lines.push('');
  lines.push(`${c.bold(`${findings.length} finding${findings.length === 1 ? '' : 's'}`)} (${errors} error${errors === 1 ? '' : 's'}, ${findings.length - errors} warning${findings.length - errors === 1 ? '' : 's'}); ${c.bold(human(reclaim))} reclaimable. ${reclaim ? 'See what a purge would do: layergc purge --dry-run' : ''}`.trimEnd());
  return lines.join('\n');
}
