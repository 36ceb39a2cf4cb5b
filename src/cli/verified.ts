// What verify and scan --deep say they checked, and their progress line: for both commands, and
// light to load (scan reaches the verifier only with --deep).
import type { VerifyRun } from '../verify/findings.js';
import { short } from '../store/digest.js';
import type { CommonOptions, Format } from './common.js';
import { human, type Output } from './output.js';
import { progressLine } from './progress.js';

/** The progress line: on stderr, when stderr is a terminal and a person reads the report. */
export function progressFor(out: Output, format: Format, opts: CommonOptions) {
  return out.errTTY && format === 'human' && !opts.quiet ? (total: number) => progressLine(total) : undefined;
}

/** What verify (or scan --deep) checked, for the human report. */
export function verifiedLines(run: VerifyRun, ms: number, what: string, again: (sub: string) => string): string[] {
  const ok = run.results.filter((r) => r.ok).length;
  const bad = run.results.length - ok;
  const lines = [`${what}: verified ${run.results.length} layer${run.results.length === 1 ? '' : 's'} (${human(run.bytes)}) in ${(ms / 1000).toFixed(1)} s: ${ok} match their DiffID${bad ? `, ${bad} ${bad === 1 ? 'does' : 'do'} not` : ''}${run.skipped.length ? `; ${run.skipped.length} skipped` : ''}.`];
  // the reasons point at scan: with the flags that located this root
  for (const s of run.skipped) lines.push(`  skipped layer ${short(s.chainId)}: ${s.reason.replace(/\(see layergc scan(?:: ([^)]*))?\)/g, (_, kind?: string) => `(see${kind ? ` ${kind} in` : ''}: ${again('scan')})`)}`);
  return lines;
}
