/**
 * Every command honours every output option, through the real CLI: --format human|json|prometheus,
 * --json, and --metrics-file (the same exposition as --format prometheus, written atomically); restore
 * and unlock too.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { hostname } from 'node:os';
import { rootMaker, runCliAsync } from '../helpers/synthetic.js';
import { expectValid } from '../helpers/schema.js';

const root = rootMaker();

/** The samples of an exposition without the run's time and duration, which differ run to run. */
const stable = (text: string) =>
  text
    .split('\n')
    .filter((l) => !/_last_run_(timestamp|duration)_seconds/.test(l))
    .join('\n');

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

describe('restore and unlock: json, prometheus and --metrics-file alike', () => {
  it('restore: --format prometheus counts the items --metrics-file writes; --json and --format json are one schema-valid object', async () => {
    const s = root();
    s.populate();
    const gone = s.addImage(['gone:1'], [{ files: { 'g/1': 'base of gone' } }, { files: { 'g/2': 'top of gone' } }]);
    s.removeDriverDir(gone.layers[1].cacheId, { withLink: true });
    const q = path.join(s.base, 'quarantine');
    const p = await runCliAsync(['purge', '--data-root', s.root, '--include', 'broken', '--yes', '--json', '--quarantine', q]);
    expect(p.code).toBe(0);
    const file = path.join(s.base, 'restore.prom');
    const prom = await runCliAsync(['restore', q, '--dry-run', '--format', 'prometheus', '--metrics-file', file]);
    expect(prom.stderr).toBe('');
    const planned = prom.stdout.match(/^layergc_restore_items\{data_root="[^"]+",status="planned"\} (\d+)$/m);
    expect(Number(planned?.[1])).toBeGreaterThan(0);
    expect(fs.readFileSync(file, 'utf8')).toBe(prom.stdout);
    const a = await runCliAsync(['restore', q, '--dry-run', '--json']);
    const b = await runCliAsync(['restore', q, '--dry-run', '--format', 'json']);
    expect(a.json).toEqual(b.json);
    expectValid('restore', a.json);
    expect(a.json.summary.planned).toBe(Number(planned?.[1]));
    const human = await runCliAsync(['restore', q, '--dry-run', '--format', 'human']);
    expect(human.stdout).toContain(`layergc restore --dry-run ${q} -> ${s.root}`);
  });

  it("unlock: no lock, then a dead holder's lock: the metrics say 0 then 1, --json names what it removed, schema-valid", async () => {
    const s = root();
    s.populate();
    const file = path.join(s.base, 'unlock.prom');
    const none = await runCliAsync(['unlock', '--data-root', s.root, '--format', 'prometheus', '--metrics-file', file]);
    expect(none.code).toBe(0);
    expect(none.stdout).toMatch(/^layergc_unlock_removed\{data_root="[^"]+"\} 0$/m);
    expect(stable(fs.readFileSync(file, 'utf8'))).toBe(stable(none.stdout));
    const empty = await runCliAsync(['unlock', '--data-root', s.root, '--json']);
    expectValid('unlock', empty.json);
    expect(empty.json).toMatchObject({ removed: null, liveness: null, lock: path.join(s.root, 'layergc/lock') });
    // a holder on another boot of this host is proved dead
    const holder = { pid: 999999, host: hostname(), since: new Date(Date.now() - 3600_000).toISOString(), command: 'layergc purge', bootId: '00000000-0000-0000-0000-000000000000' };
    fs.mkdirSync(path.join(s.root, 'layergc'), { recursive: true });
    fs.writeFileSync(path.join(s.root, 'layergc/lock'), `${JSON.stringify(holder)}\n`);
    const r = await runCliAsync(['unlock', '--data-root', s.root, '--json', '--metrics-file', file]);
    expect(r.code).toBe(0);
    expectValid('unlock', r.json);
    expect(r.json.removed).toEqual({ holder, content: `${JSON.stringify(holder)}\n` });
    expect(r.json.liveness.state).toBe('dead');
    expect(r.stderr).toContain('removed the lock');
    expect(fs.readFileSync(file, 'utf8')).toMatch(/^layergc_unlock_removed\{data_root="[^"]+"\} 1$/m);
    expect(fs.existsSync(path.join(s.root, 'layergc/lock'))).toBe(false);
  });
});
