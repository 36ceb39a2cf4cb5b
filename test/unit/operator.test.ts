/**
 * The operator's path, through the real CLI (bin/layergc.js, built): what a person types (unknown
 * commands, --help, durations, -f, conflicting formats, --fail-on), the terminal (the [y/N] prompt
 * on a pty with Ctrl-C and Ctrl-D, colour per stream), signals during `purge --yes`, a closed
 * stdout, --quiet for the daily job, and the package that `npm pack` makes.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, REPO, rootMaker, runCli, runCliAsync, snapshotTree, diffSnapshots } from '../helpers/synthetic.js';
import { HAS_SCRIPT, runInPty, sq } from '../helpers/pty.js';
import { signalledAt } from '../helpers/signal.js';
import { parseDuration } from '../../src/cli/duration.js';
import { progressLine } from '../../src/cli/progress.js';

const root = rootMaker();
const ESC = '\x1b[';

describe('what a person types', () => {
  it('an unknown command or option: one line naming the help, exit 2', () => {
    const r = runCli(['sacn']);
    expect(r).toMatchObject({ code: 2, stdout: '', stderr: "layergc: unknown command 'sacn' (Did you mean scan?) (see layergc --help)\n" });
    expect(runCli(['frobnicate']).stderr).toBe("layergc: unknown command 'frobnicate' (see layergc --help)\n");
    const o = runCli(['purge', '--yse']);
    expect(o).toMatchObject({ code: 2, stdout: '', stderr: "layergc: unknown option '--yse' (Did you mean --yes?) (see layergc purge --help)\n" });
  });

  it('--help has an Examples block, and every help fits 80 columns', () => {
    const r = runCli(['--help']);
    expect(r.code).toBe(0);
    const ex = r.stdout.slice(r.stdout.indexOf('Examples:'));
    for (const cmd of ['layergc scan', 'layergc purge --dry-run', 'layergc purge --yes', 'layergc explain', 'layergc verify']) expect(ex).toContain(`  ${cmd} `);
    for (const c of [[], ['scan'], ['purge'], ['verify'], ['explain'], ['df']]) {
      const h = runCli([...c, '--help'], { env: { COLUMNS: '80' } }).stdout;
      expect(
        h.split('\n').filter((l) => l.length > 80),
        `layergc ${c.join(' ')} --help`,
      ).toEqual([]);
    }
  });

  it('durations as Go writes them; a bare number other than 0 is refused naming the units', async () => {
    expect(parseDuration('1h30m')).toBe(90 * 60e3);
    expect(parseDuration('90m')).toBe(90 * 60e3);
    expect(parseDuration('2h45m30s')).toBe((2 * 3600 + 45 * 60 + 30) * 1e3);
    expect(parseDuration('1.5h')).toBe(90 * 60e3);
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('0')).toBe(0);
    for (const bad of ['90', '24', '1d', 'h', '1h30', '-1h', '', 'soon']) expect(parseDuration(bad), bad).toBeNull();

    const s = root();
    s.populate();
    s.makeLeakedDriverDir();
    const fake = await s.startFakeDockerd();
    try {
      // a dockerd runs and the leak is new: the reason names the --min-age that kept it
      const reason = async (age: string) => (await runCliAsync(['purge', '--dry-run', '--json', '--min-age', age, '--data-root', s.root])).json.actions[0];
      expect(await reason('1h30m')).toMatchObject({ status: 'skipped', reason: expect.stringContaining('younger than --min-age 90 min,') });
      expect(await reason('90m')).toMatchObject({ status: 'skipped', reason: expect.stringContaining('younger than --min-age 90 min,') });
      expect(await reason('2h45m30s')).toMatchObject({ status: 'skipped', reason: expect.stringContaining('younger than --min-age 3 h,') });
      expect(await reason('0')).toMatchObject({ status: 'planned' });
      const r = await runCliAsync(['purge', '--dry-run', '--min-age', '90', '--data-root', s.root]);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe('layergc: --min-age "90" is not a duration: a number with a unit (h, m, s, ms, us, ns), like 24h, 1h30m or 90m; or 0\n');
    } finally {
      fake.stop();
    }
  });

  it('-f and --force are --yes', async () => {
    for (const flag of ['-f', '--force']) {
      const s = root();
      s.populate();
      const leak = s.makeLeakedDriverDir();
      const r = await runCliAsync(['purge', flag, '--json', '--data-root', s.root]);
      expect(r.code).toBe(0);
      expect(r.json.summary).toMatchObject({ removed: 1, failed: 0 });
      expect(fs.existsSync(leak.dir)).toBe(false);
      const both = await runCliAsync(['purge', flag, '--dry-run', '--data-root', s.root]);
      expect(both).toMatchObject({ code: 2, stderr: `layergc: --dry-run and --force contradict each other: pick one\n` }); // -f is --force
    }
  });

  it('--json with another --format is a conflict; with --format json it is the same thing', async () => {
    const s = root();
    s.populate();
    for (const f of ['prometheus', 'human']) {
      const r = await runCliAsync(['scan', '--json', '--format', f, '--data-root', s.root]);
      expect(r).toMatchObject({ code: 2, stdout: '', stderr: `layergc: --json and --format ${f} conflict: pick one\n` });
    }
    const ok = await runCliAsync(['scan', '--json', '--format', 'json', '--data-root', s.root]);
    expect(ok.code).toBe(0);
    expect(ok.json.findings).toEqual([]);
  });

  it('--fail-on error|warning|none: garbage and broken layers told apart by exit code', async () => {
    const s = root();
    s.populate();
    const code = async (...a: string[]) => (await runCliAsync(['scan', '--data-root', s.root, ...a])).code;
    expect([await code(), await code('--fail-on', 'error'), await code('--fail-on', 'none')]).toEqual([0, 0, 0]);
    s.makeLeakedDriverDir(); // a warning
    expect([await code(), await code('--fail-on', 'warning'), await code('--fail-on', 'error'), await code('--fail-on', 'none')]).toEqual([1, 1, 0, 0]);
    const broken = s.addImage(['broken:1'], [{ files: { f: 'x\n' } }]);
    s.removeDriverDir(broken.layers[0].cacheId, { withLink: true }); // an error
    expect([await code(), await code('--fail-on', 'error'), await code('--fail-on', 'none')]).toEqual([1, 1, 0]);
    expect(await code('--fail-on', 'bogus')).toBe(2);
  });
});

describe('the [y/N] prompt on a terminal', () => {
  const PROMPT = /Remove the planned items\? \[y\/N\] /;

  it.skipIf(!HAS_SCRIPT)('Ctrl-C: nothing removed, no stack trace, exit 130; Ctrl-D: a no, exit 0; y removes', async () => {
    const s = root();
    s.populate();
    const leak = s.makeLeakedDriverDir();
    const before = snapshotTree(s.root, { exclude: ['layergc'] });
    for (const [key, code] of [
      ['\x03', 130],
      ['\x04', 0],
      ['n\r', 0],
    ] as const) {
      const r = await runInPty(['purge', '--data-root', s.root], [{ waitFor: PROMPT, send: key }]);
      expect(r.code, JSON.stringify(key)).toBe(code);
      expect(r.output).toMatch(/\[y\/N\] [^\n]*\nNothing removed\.\n$/);
      expect(r.output).not.toMatch(/AbortError|internal error|at .*\.js:\d+/);
      expect(diffSnapshots(before, snapshotTree(s.root, { exclude: ['layergc'] }))).toEqual({ onlyBefore: [], onlyAfter: [], changed: [] });
    }
    const yes = await runInPty(['purge', '--data-root', s.root], [{ waitFor: PROMPT, send: 'y\r' }]);
    expect(yes.code).toBe(0);
    expect(yes.output).toMatch(/Removed 1 item/);
    expect(fs.existsSync(leak.dir)).toBe(false);
  });
});

describe('SIGINT and SIGTERM during purge --yes', () => {
  /** Pause the purge at its first item (after the intent is journalled), signal it, let it go on. */
  async function interrupted(sig: 'SIGINT' | 'SIGTERM', extra: string[] = []) {
    const s = root();
    s.populate();
    const leaks = [s.makeLeakedDriverDir(), s.makeLeakedDriverDir(), s.makeLeakedDriverDir()];
    const { code, stdout, stderr } = await signalledAt(['purge', '--yes', '--data-root', s.root, ...extra], 'after-intent', sig, s.base);
    const r = { code, stdout, stderr, json: extra.includes('--json') ? JSON.parse(stdout) : undefined };
    const journal = fs
      .readFileSync(path.join(s.root, 'layergc/journal.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    return { s, leaks, r, journal };
  }

  it('finishes the item under way, starts no other, says what was done, exit 130 / 143', async () => {
    for (const [sig, code] of [
      ['SIGINT', 130],
      ['SIGTERM', 143],
    ] as const) {
      const { s, leaks, r, journal } = await interrupted(sig);
      expect(r.code, sig).toBe(code);
      expect(r.stderr).toBe(`layergc: ${sig}: finishing the item under way, then stopping (again to stop at once)\n`);
      expect(r.stdout).toMatch(/^removed {2}unreferenced-driver-dir/m);
      expect(r.stdout.match(/^skipped {2}unreferenced-driver-dir/gm)).toHaveLength(2);
      expect(r.stdout).toContain(`why: not begun: the run was interrupted (${sig})`);
      expect(r.stdout).toMatch(/Removed 1 item, .*0 failed, 2 skipped\./);
      expect(leaks.filter((l) => fs.existsSync(l.dir))).toHaveLength(2);
      // the journal is closed: one intent, and its outcome
      expect(journal.map((e) => e.event)).toEqual(['intent', 'removed']);
      expect(fs.existsSync(path.join(s.root, 'layergc/lock'))).toBe(false);
      // the next run finishes the rest
      const next = await runCliAsync(['purge', '--yes', '--json', '--data-root', s.root]);
      expect(next.json.summary).toMatchObject({ removed: 2, failed: 0, skipped: 0 });
    }
  });

  it.skipIf(!HAS_SCRIPT)('Ctrl-C on the terminal during purge --yes: the same, exit 130', async () => {
    const s = root();
    s.populate();
    const leaks = [s.makeLeakedDriverDir(), s.makeLeakedDriverDir()];
    const pause = fs.mkdtempSync(path.join(s.base, 'pause-'));
    const paused = path.join(pause, 'paused');
    const r = await runInPty(
      ['purge', '--yes', '--data-root', s.root],
      [
        { waitFor: () => fs.existsSync(paused), send: '\x03' },
        // the terminal echoes ^C when it sends SIGINT (queued while the purge is paused); then it goes on
        { waitFor: /\^C/, send: '', then: () => fs.writeFileSync(path.join(pause, 'resume'), '') },
      ],
      { env: { LAYERGC_TEST_PAUSE_AT: 'after-intent', LAYERGC_TEST_PAUSE_DIR: pause } },
    );
    expect(r.code).toBe(130);
    const plain = r.output.replace(/\x1b\[[0-9;]*m/g, ''); // a terminal: in colour
    expect(plain).toContain('layergc: SIGINT: finishing the item under way, then stopping');
    expect(plain).toMatch(/Removed 1 item, .*0 failed, 1 skipped\./);
    expect(plain).not.toMatch(/at .*\.js:\d+/);
    expect(leaks.filter((l) => fs.existsSync(l.dir))).toHaveLength(1);
  });

  it('--json and --quiet still say what was done', async () => {
    const j = await interrupted('SIGTERM', ['--json']);
    expect(j.r.code).toBe(143);
    expect(j.r.json.summary).toMatchObject({ removed: 1, skipped: 2 });
    const q = await interrupted('SIGINT', ['--quiet']);
    expect(q.r.code).toBe(130);
    expect(q.r.stdout).toMatch(/Removed 1 item/);
  });
});

describe('--quiet, the daily job', () => {
  it('items skipped by policy are not printed; they are in the JSON and the metrics', async () => {
    const s = root();
    s.populate();
    s.makeLeakedDriverDir(); // young: kept while a dockerd runs
    const fake = await s.startFakeDockerd();
    try {
      const metrics = path.join(s.base, 'layergc.prom');
      const q = await runCliAsync(['purge', '--yes', '--quiet', '--metrics-file', metrics, '--data-root', s.root]);
      expect(q).toMatchObject({ code: 0, stdout: '', stderr: '' });
      expect(fs.readFileSync(metrics, 'utf8')).toMatch(/^layergc_purge_items\{[^}]*status="skipped"\} 1$/m);
      const j = await runCliAsync(['purge', '--yes', '--quiet', '--json', '--data-root', s.root]);
      expect(j.json.summary).toMatchObject({ removed: 0, skipped: 1 });
      // what was removed is printed, the skip is not
      s.makeRemovingOrphan();
      const r = await runCliAsync(['purge', '--yes', '--quiet', '--data-root', s.root]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^removed {2}removing-orphan/m);
      expect(r.stdout).not.toMatch(/skipped/);
    } finally {
      fake.stop();
    }
  });
});

describe('output streams', () => {
  it('a reader that goes away (scan | true) ends the run quietly, with its own exit code', () => {
    const s = root();
    s.populate();
    for (let i = 0; i < 30; i++) s.makeLeakedDriverDir();
    const r = spawnSync('bash', ['-c', `${sq(process.execPath)} ${sq(BIN)} scan --data-root ${sq(s.root)} | (exec 0<&-; sleep 0.01); echo "rc=\${PIPESTATUS[0]}" >&2`], {
      encoding: 'utf8',
      cwd: REPO,
    });
    expect(r.stderr).toBe('rc=1\n');
  });

  it('colour per stream through pipes: FORCE_COLOR on, NO_COLOR, FORCE_COLOR=0 and --no-color off', async () => {
    const s = root();
    s.populate();
    s.makeLeakedDriverDir();
    // pipes, forced
    const forced = await runCliAsync(['scan', '--data-root', s.root], { env: { NO_COLOR: '', FORCE_COLOR: '1' } });
    expect(forced.stdout).toContain(ESC);
    for (const env of [{ NO_COLOR: '1', FORCE_COLOR: '1' }, { NO_COLOR: '', FORCE_COLOR: '0' }, { NO_COLOR: '' }]) {
      expect((await runCliAsync(['scan', '--data-root', s.root], { env })).stdout, JSON.stringify(env)).not.toContain(ESC);
    }
    expect((await runCliAsync(['scan', '--no-color', '--data-root', s.root], { env: { NO_COLOR: '', FORCE_COLOR: '1' } })).stdout).not.toContain(ESC);
  });

  it.skipIf(!HAS_SCRIPT)('colour per stream on a terminal: only the stream that is a terminal, none with TERM=dumb', async () => {
    const s = root();
    s.populate();
    s.makeLeakedDriverDir();
    // stdout a terminal, stderr a file: colour on the terminal only
    const errFile = path.join(s.base, 'stderr');
    const tty = await runInPty(['scan', '--data-root', path.join(s.base, 'nope')], [], { redirect: `2>${sq(errFile)}` });
    expect(tty.code).toBe(2);
    expect(fs.readFileSync(errFile, 'utf8')).toMatch(/^layergc: .*does not exist/);
    const ttyOut = await runInPty(['scan', '--data-root', s.root], [], { redirect: `2>${sq(errFile)}` });
    expect(ttyOut.output).toContain(ESC);
    // stderr a terminal, stdout a file: the error line is coloured, stdout is not
    const outFile = path.join(s.base, 'stdout');
    const ttyErr = await runInPty(['scan', '--data-root', path.join(s.base, 'nope')], [], { redirect: `>${sq(outFile)}` });
    expect(ttyErr.output).toContain(`${ESC}31mlayergc: `);
    await runInPty(['scan', '--data-root', s.root], [], { redirect: `>${sq(outFile)}` });
    expect(fs.readFileSync(outFile, 'utf8')).not.toContain(ESC);
    const dumb = await runInPty(['scan', '--data-root', s.root], [], { env: { TERM: 'dumb' } });
    expect(dumb.output).not.toContain(ESC);
  });
});

describe('the progress line', () => {
  it('measures progress in bytes, not layers: one big layer among small ones', () => {
    const out: string[] = [];
    const bar = progressLine(1000, (t) => out.push(t));
    bar.update({ layersDone: 1, layersTotal: 10, bytes: 900 });
    expect(out[0]).toMatch(/^\r\x1b\[2K\[#{18}\.{2}\] 1\/10 layers {2}900 B of ~1.00 kB {2}/);
    bar.done();
    expect(out[1]).toBe('\r\x1b[2K');
  });

  it.skipIf(!HAS_SCRIPT)('is drawn on stderr when stderr is a terminal, whatever stdout is; never when it is not', async () => {
    const s = root();
    s.populate();
    const file = path.join(s.base, 'out');
    const errTty = await runInPty(['verify', '--data-root', s.root], [], { redirect: `>${sq(file)}` });
    expect(errTty.code).toBe(0);
    expect(errTty.output).toContain('\r\x1b[2K');
    expect(fs.readFileSync(file, 'utf8')).not.toContain('\x1b[2K');
    const outTty = await runInPty(['verify', '--data-root', s.root], [], { redirect: `2>${sq(file)}` });
    expect(outTty.output).not.toContain('\x1b[2K');
    expect(fs.readFileSync(file, 'utf8')).toBe('');
  });
});

describe('npm test without a dockerd', () => {
  it('its last lines say how many real-daemon tests were skipped, and the one command that installs their needs', () => {
    const r = spawnSync(path.join(REPO, 'node_modules/.bin/vitest'), ['run', 'test/e2e/purge-real.test.ts'], {
      cwd: REPO,
      encoding: 'utf8',
      env: { ...process.env, LAYERGC_NO_DOCKER: '1', NO_COLOR: '1' },
      timeout: 120_000,
    });
    expect(r.status).toBe(0);
    const last = r.stdout.trimEnd().split('\n').slice(-2);
    expect(last).toEqual([
      expect.stringMatching(/^\d+ real-daemon tests were skipped \(no dockerd 20\.10\/28\.5 here, or a tool they need is missing\)\.$/),
      'Install what they need: sudo bash .ci/install-deps.sh',
    ]);
    expect(Number(last[0].split(' ')[0])).toBeGreaterThan(10);
  });
});

describe('the package', () => {
  it('ships LICENSE (Apache-2.0, as declared), runs no install script, ships no source maps', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8'));
    expect(pkg.license).toBe('Apache-2.0');
    expect(fs.readFileSync(path.join(REPO, 'LICENSE'), 'utf8')).toMatch(/Apache License\s+Version 2\.0, January 2004/);
    for (const hook of ['prepare', 'preinstall', 'install', 'postinstall']) expect(pkg.scripts[hook], hook).toBeUndefined();
    expect(pkg.scripts.prepack).toMatch(/npm run build/);
    const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: REPO, encoding: 'utf8' });
    expect(r.status).toBe(0);
    const files: string[] = JSON.parse(r.stdout)[0].files.map((f: { path: string }) => f.path);
    expect(files).toContain('LICENSE');
    expect(files).toContain('dist/cli/program/main.js');
    expect(files.filter((f) => f.endsWith('.map'))).toEqual([]);
    expect(files.filter((f) => f.startsWith('src/'))).toEqual([]);
  });
});
