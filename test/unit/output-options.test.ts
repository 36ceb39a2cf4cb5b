/**
 * Every command honours every output option, through the real CLI: --format human|json|prometheus,
 * --json, and --metrics-file (the same exposition as --format prometheus, written atomically).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { rootMaker, runCliAsync } from '../helpers/synthetic.js';

const root = rootMaker();

/** The samples of an exposition without the run's time and duration, which differ run to run. */
const stable = (text: string) => text.split('\n').filter((l) => !/_last_run_(timestamp|duration)_seconds/.test(l)).join('\n');

describe('scan, verify, explain, df: json, prometheus and --metrics-file alike', () => {
  const s = root();
  s.populate();
  s.makeLeakedDriverDir();
  const cases: [string, string[], RegExp][] = [
    ['scan', [], /^layergc_info\{[^}]*command="scan"[^}]*\} 1$/m],
    ['verify', ['app:1'], /^layergc_verify_layers\{[^}]*status="ok"\} 3$/m],
    ['explain', ['app:1'], /^layergc_info\{[^}]*command="explain"[^}]*\} 1$/m],
    ['df', [], /^layergc_df_total_bytes\{[^}]*\} [1-9]\d*$/m],
  ];
  for (const [cmd, args, sample] of cases) {
    it(`${cmd}: --format prometheus prints the metrics --metrics-file writes; --json and --format json are one schema-valid object`, async () => {
      const file = path.join(s.base, `${cmd}.prom`);
      const prom = await runCliAsync([cmd, ...args, '--data-root', s.root, '--format', 'prometheus', '--metrics-file', file]);
      expect(prom.stderr).toBe('');
      expect(prom.stdout).toMatch(sample);
      expect(stable(fs.readFileSync(file, 'utf8'))).toBe(stable(prom.stdout));
      const a = await runCliAsync([cmd, ...args, '--data-root', s.root, '--json']);
      const b = await runCliAsync([cmd, ...args, '--data-root', s.root, '--format', 'json']);
      expect(a.json).toBeDefined();
      expect(a.code).toBe(b.code);
      expect(a.json).toEqual(b.json);
      const human = await runCliAsync([cmd, ...args, '--data-root', s.root, '--format', 'human']);
      expect(human.stdout).toContain(cmd === 'explain' ? 'app:1' : `layergc ${cmd}`);
      expect(human.code).toBe(a.code);
    });
  }
});
