// explain for people: the subject and its status, then the chain of ownership and the findings,
// wrapped at word boundaries for an 80-column terminal.
import type { ExplainReport } from '../../app/report.js';
import type { Output } from '../output.js';
import { escapeText } from '../../escape.js';
import { wrap } from './wrap.js';

export function renderExplain(o: Output, r: ExplainReport): string {
  const { c } = o;
  const e = r.explanation;
  const colour = e.status === 'live' ? c.green : e.status === 'broken' ? c.red : c.yellow;
  const lines = [`${c.bold(escapeText(e.subject))}: ${colour(e.status)}`]; // a path in it must copy whole
  for (const l of e.because) lines.push(...wrap(escapeText(l), '  ', '    '));
  for (const f of e.findings) lines.push(...wrap(`${c.bold(f.kind)}: ${escapeText(f.reason)}`, '  ', '    '));
  return lines.join('\n');
}
