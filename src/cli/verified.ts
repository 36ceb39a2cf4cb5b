// What verify and scan --deep say they checked, and their progress line: for both commands, and
// light to load (scan reaches the verifier only with --deep).
import type { Verified } from '../app/report.js';
import { short } from '../store/digest.js';
import type { CommonOptions, Format } from './common.js';
import { human, type Output } from './output.js';
import { progressLine } from './progress.js';

/** The progress line: on stderr, when stderr is a terminal and a person reads the report. */
export function progressFor(out: Output, format: Format, opts: CommonOptions) {
  return out.errTTY && format === 'human' && !opts.quiet ? (total: number) => progressLine(total) : undefined;
}

/** What verify (or scan --deep) checked, for the human report. */
export function verifiedLines(v: Verified, what: string, again: (sub: string) => string): string[] {
  const secs = (v.ms / 1000).toFixed(1);
  const bad = v.count - v.ok;
  if (v.unit === 'blob') return [`${what}: verified ${v.count} blobs (${human(v.bytes)}) in ${secs} s: ${v.ok} match their digest and size${bad ? `, ${bad} do not` : ''}.`];
  const lines = [
    `${what}: verified ${v.count} layer${v.count === 1 ? '' : 's'} (${human(v.bytes)}) in ${secs} s: ${v.ok} match their DiffID${bad ? `, ${bad} ${bad === 1 ? 'does' : 'do'} not` : ''}${v.skipped.length ? `; ${v.skipped.length} skipped` : ''}.`,
  ];
  // the reasons point at scan: with the flags that located this root
  for (const s of v.skipped)
    lines.push(`  skipped layer ${short(s.chainId)}: ${s.reason.replace(/\(see layergc scan(?:: ([^)]*))?\)/g, (_, kind?: string) => `(see${kind ? ` ${kind} in` : ''}: ${again('scan')})`)}`);
  return lines;
}
