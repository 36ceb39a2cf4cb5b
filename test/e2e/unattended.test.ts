/**
 * "Running layergc unattended": the real CLI (bin/layergc.js, built) on synthetic data roots.
 * - --quiet prints nothing when nothing was found or done;
 * - --format prometheus / --metrics-file: promtool accepts it, the values match scan --json, the
 *   file is replaced atomically;
 * - the data root and driver come from the daemon config (--daemon-config), userns-remap included;
 * - one layergc per data root: a live holder makes the second exit 5 naming it, a real race of two
 *   purges, a lock left by a killed purge is taken over and the takeover logged (text and JSON);
 * - contrib/: systemd units pass `systemd-analyze verify`, the commands the units, the cron file
 *   and the DaemonSet run are valid layergc invocations, the alert rules load and fire as meant.
 *
 * Tools: promtool (Debian's prometheus package), systemd-analyze (systemd), python3-yaml; each
 * test that needs one is skipped without it.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import * as path from 'node:path';
import { BIN, REPO, SyntheticRoot, runCli, runCliAsync, snapshotTree, diffSnapshots, type CliResult } from '../helpers/synthetic.js';
import { FINDING_KINDS } from '../../src/findings/types.js';

const which = (name: string, dirs = ['/usr/bin', '/usr/local/bin', '/bin', '/usr/sbin']) => dirs.map((d) => path.join(d, name)).find((p) => fs.existsSync(p));
const PROMTOOL = which('promtool');
const SYSTEMD_ANALYZE = which('systemd-analyze');
const HAS_PYYAML = spawnSync('python3', ['-c', 'import yaml'], { stdio: 'ignore' }).status === 0;
const CONTRIB = path.join(REPO, 'contrib');

const roots: SyntheticRoot[] = [];
const tmpDirs: string[] = [];
const children: { pid?: number; kill: (s?: NodeJS.Signals) => boolean; exitCode: number | null }[] = [];

function root(): SyntheticRoot {
  const s = new SyntheticRoot();
  roots.push(s);
  return s;
}
function tmp(): string {
  const d = fs.mkdtempSync(path.join(tmpdir(), 'lgc-un-'));
  tmpDirs.push(d);
  return d;
}
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
});
afterAll(() => {
  for (const s of roots) s.cleanup();
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

// ------------------------------------------------------------------------------------------------
// the text format, read strictly enough to compare values (test/unit/prometheus.test.ts checks the
// format itself in detail)

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
function samplesOf(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const hits = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (hits.length > 1) throw new Error(`${name} ${JSON.stringify(labels)}: ${hits.length} samples`);
  return hits[0]?.value;
}
function promtool(text: string): { code: number | null; out: string } {
  const r = spawnSync(PROMTOOL!, ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}
const quiet = (r: CliResult) => ({ code: r.code, stdout: r.stdout, stderr: r.stderr });

/** A store with one or more findings of each garbage kind, an unreferenced layer and a broken image. */
function damagedRoot(): SyntheticRoot {
  const s = root();
  s.populate();
  s.makeRemovingOrphan();
  s.makeWriteSet();
  s.makeLeakedDriverDir();
  s.makeLeakedDriverDir();
  s.danglingLink();
  s.addDanglingLayer();
  const broken = s.addImage(['broken:1'], [{ files: { 'only/file': 'gone soon\n' } }]);
  s.removeDriverDir(broken.layers[0].cacheId, { withLink: true });
  return s;
}

// ------------------------------------------------------------------------------------------------

describe('--quiet', () => {
  it('prints nothing and exits 0 on a clean data root (scan, purge --yes, -q, with a metrics file)', () => {
    const s = root();
    s.populate();
    const metrics = path.join(tmp(), 'layergc.prom');
    const none = { code: 0, stdout: '', stderr: '' };
    expect(quiet(runCli(['scan', '--data-root', s.root, '--quiet']))).toEqual(none);
    expect(quiet(runCli(['scan', '--data-root', s.root, '-q', '--metrics-file', metrics]))).toEqual(none);
    expect(quiet(runCli(['purge', '--yes', '--data-root', s.root, '--quiet']))).toEqual(none);
    expect(quiet(runCli(['purge', '--yes', '--data-root', s.root, '--quiet', '--log-format', 'json', '--metrics-file', metrics]))).toEqual(none);
    expect(fs.readFileSync(metrics, 'utf8')).toContain('layergc_purge_items');
    // without --quiet the same runs do say so
    expect(runCli(['scan', '--data-root', s.root]).stdout).toContain('No orphan or broken layers found.');
  });

  it('still reports what was found or done, and errors go to stderr', () => {
    const s = root();
    s.populate();
    const leaked = s.makeLeakedDriverDir();
    const found = runCli(['scan', '--data-root', s.root, '--quiet']);
    expect(found.code).toBe(1);
    expect(found.stdout).toContain(leaked.id.slice(0, 12));
    const done = runCli(['purge', '--yes', '--data-root', s.root, '--quiet']);
    expect(done.code).toBe(0);
    expect(done.stdout).toMatch(/Removed 1 item/);
    expect(fs.existsSync(leaked.dir)).toBe(false);
    const err = runCli(['scan', '--data-root', path.join(s.base, 'nope'), '--quiet']);
    expect(err.code).toBe(2);
    expect(err.stdout).toBe('');
    expect(err.stderr).toMatch(/does not exist/);
  });
});

describe('--format prometheus and --metrics-file', () => {
  it.skipIf(!PROMTOOL)('scan: promtool accepts it; kinds, counts and bytes match scan --json', () => {
    const s = damagedRoot();
    const json = runCli(['scan', '--data-root', s.root, '--json']);
    expect(json.code).toBe(1);
    const t0 = Math.floor(Date.now() / 1000);
    const r = runCli(['scan', '--data-root', s.root, '--format', 'prometheus']);
    const t1 = Math.ceil(Date.now() / 1000);
    expect(r.code).toBe(1); // the exit code does not depend on the format
    expect(r.stderr).toBe('');
    expect(promtool(r.stdout)).toEqual({ code: 0, out: '' });
    const m = samplesOf(r.stdout);
    for (const s2 of m) expect(s2.name.startsWith('layergc_')).toBe(true);
    for (const fam of new Set(m.map((x) => x.name))) {
      expect(r.stdout).toContain(`# HELP ${fam} `);
      expect(r.stdout).toContain(`# TYPE ${fam} gauge`);
    }

    const findings = json.json.findings as { kind: string; bytes: number; reclaimable: boolean }[];
    for (const k of FINDING_KINDS) {
      const mine = findings.filter((f) => f.kind === k);
      expect(value(m, 'layergc_findings', { kind: k }), k).toBe(mine.length);
      expect(value(m, 'layergc_finding_bytes', { kind: k }), k).toBe(mine.reduce((a, f) => a + f.bytes, 0));
    }
    const count = (k: string) => value(m, 'layergc_findings', { kind: k });
    expect(count('removing-orphan')).toBe(1);
    expect(count('stale-write-set')).toBe(1);
    expect(count('unreferenced-driver-dir')).toBe(2);
    expect(count('dangling-link')).toBe(1);
    expect(count('unreferenced-layer')).toBe(1);
    expect(count('missing-driver-data')).toBe(1);
    expect(value(m, 'layergc_finding_bytes', { kind: 'unreferenced-driver-dir' })).toBeGreaterThan(2 * 5000);
    expect(value(m, 'layergc_reclaimable_bytes')).toBe(json.json.summary.reclaimableBytes);
    expect(value(m, 'layergc_daemon_running')).toBe(0);
    const ts = value(m, 'layergc_last_run_timestamp_seconds')!;
    expect(ts).toBeGreaterThanOrEqual(t0);
    expect(ts).toBeLessThanOrEqual(t1);
    expect(value(m, 'layergc_last_run_duration_seconds')).toBeGreaterThan(0);
    expect(value(m, 'layergc_last_run_duration_seconds')).toBeLessThan(60);
    expect(m.find((x) => x.name === 'layergc_info')?.labels).toMatchObject({ data_root: s.root, driver: 'overlay2', command: 'scan' });
    for (const x of m) expect(x.labels.data_root).toBe(s.root);
  });

  it.skipIf(!PROMTOOL)('purge: the file and stdout carry the same metrics; reclaimed bytes and items; nothing left to reclaim', () => {
    const s = damagedRoot();
    const before = runCli(['scan', '--data-root', s.root, '--json']).json;
    const garbage = (before.findings as { kind: string; bytes: number }[]).filter((f) => ['removing-orphan', 'stale-write-set', 'unreferenced-driver-dir', 'dangling-link'].includes(f.kind));
    const dir = tmp();
    const file = path.join(dir, 'layergc.prom');
    const r = runCli(['purge', '--yes', '--data-root', s.root, '--format', 'prometheus', '--metrics-file', file]);
    expect(r.code).toBe(0);
    const text = fs.readFileSync(file, 'utf8');
    expect(promtool(text)).toEqual({ code: 0, out: '' });
    expect(promtool(r.stdout)).toEqual({ code: 0, out: '' });
    // the two renderings differ only in the run's end time
    const strip = (t: string) =>
      t
        .split('\n')
        .filter((l) => !/^layergc_last_run_(timestamp|duration)_seconds/.test(l))
        .join('\n');
    expect(strip(r.stdout)).toBe(strip(text));
    const m = samplesOf(text);
    expect(value(m, 'layergc_purge_items', { status: 'removed' })).toBe(garbage.length);
    expect(value(m, 'layergc_purge_items', { status: 'failed' })).toBe(0);
    // purge measures what it frees as free-space growth around each removal (src/purge/execute.ts):
    // the removed findings' bytes add up to the reclaimed bytes (not to scan's estimate)
    const reclaimed = value(m, 'layergc_reclaimed_bytes')!;
    expect(reclaimed).toBeGreaterThan(0);
    expect(reclaimed).toBe(['removing-orphan', 'stale-write-set', 'unreferenced-driver-dir', 'dangling-link'].reduce((a, k) => a + value(m, 'layergc_finding_bytes', { kind: k })!, 0));
    expect(value(m, 'layergc_reclaimable_bytes')).toBe(0);
    expect(value(m, 'layergc_purge_dry_run')).toBe(0);
    expect(value(m, 'layergc_findings', { kind: 'removing-orphan' })).toBe(1); // what this run found
    expect(m.find((x) => x.name === 'layergc_info')?.labels.command).toBe('purge');
    expect(fs.readdirSync(dir)).toEqual(['layergc.prom']);

    const dry = runCli(['purge', '--dry-run', '--data-root', s.root, '--include', 'unreferenced-layer', '--format', 'prometheus']);
    expect(dry.code).toBe(0);
    const md = samplesOf(dry.stdout);
    expect(value(md, 'layergc_purge_dry_run')).toBe(1);
    expect(value(md, 'layergc_purge_items', { status: 'planned' })).toBe(1);
    expect(value(md, 'layergc_reclaimed_bytes')).toBe(0);
  });

  it('--metrics-file is replaced atomically: readers see a whole file, never a partial one or a temporary *.prom', async () => {
    const s = damagedRoot();
    const dir = tmp();
    const file = path.join(dir, 'layergc.prom');
    fs.writeFileSync(file, 'old 1\n');
    const seenNames = new Set<string>();
    const bad: string[] = [];
    const inodes = new Set<number>([fs.statSync(file).ino]);
    let running = true;
    const watcher = (async () => {
      while (running) {
        for (const n of fs.readdirSync(dir)) seenNames.add(n);
        let t: string;
        try {
          t = fs.readFileSync(file, 'utf8');
          inodes.add(fs.statSync(file).ino);
        } catch (e) {
          bad.push(`unreadable: ${(e as Error).message}`);
          continue;
        }
        if (t !== 'old 1\n' && !/\nlayergc_reclaimable_bytes\{[^}]*\} \d+\n$/.test(t)) bad.push(`partial: ${t.length} bytes, ends ${JSON.stringify(t.slice(-40))}`);
        await new Promise((r) => setImmediate(r));
      }
    })();
    for (let i = 0; i < 6; i++) {
      const r = await runCliAsync(['scan', '--data-root', s.root, '--quiet', '--metrics-file', file]);
      expect(r.code).toBe(1);
    }
    running = false;
    await watcher;
    expect(bad).toEqual([]);
    // every run made a new file and renamed it into place; the temporary names never end in .prom
    expect(inodes.size).toBeGreaterThan(1);
    for (const n of seenNames) expect(n === 'layergc.prom' || !n.endsWith('.prom')).toBe(true);
    expect(fs.readdirSync(dir)).toEqual(['layergc.prom']);
    if (PROMTOOL) expect(promtool(fs.readFileSync(file, 'utf8')).code).toBe(0);
  });

  it('a metrics file that cannot be written: exit 2, a clear message, no temporary file left', () => {
    const s = root();
    s.populate();
    const dir = tmp();
    const r = runCli(['scan', '--data-root', s.root, '--metrics-file', path.join(dir, 'nodir', 'layergc.prom')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`cannot write the metrics file ${path.join(dir, 'nodir', 'layergc.prom')}`);
    expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});

describe('the data root and driver from the daemon config', () => {
  function config(dir: string, cfg: Record<string, unknown>): string {
    const p = path.join(dir, `daemon-${randomBytes(4).toString('hex')}.json`);
    fs.writeFileSync(p, JSON.stringify(cfg));
    return p;
  }

  it('data-root and storage-driver from --daemon-config', () => {
    const s = root();
    s.populate();
    const leaked = s.makeLeakedDriverDir();
    const dir = tmp();
    const r = runCli(['scan', '--daemon-config', config(dir, { 'data-root': s.root, 'storage-driver': 'overlay2' }), '--json']);
    expect(r.code).toBe(1);
    expect(r.json.dataRoot).toBe(s.root);
    expect(r.json.driver).toBe('overlay2');
    expect(r.json.findings.map((f: { cacheId?: string }) => f.cacheId)).toEqual([leaked.id]);
    // the driver named in the config is the one used, even when the layout says otherwise
    const vfs = runCli(['scan', '--daemon-config', config(dir, { 'data-root': s.root, 'storage-driver': 'vfs' })]);
    expect(vfs.code).toBe(2);
    expect(vfs.stderr).toContain('has no layer store for driver vfs');
    // the legacy "graph" key too
    expect(runCli(['scan', '--daemon-config', config(dir, { graph: s.root }), '--json']).json.dataRoot).toBe(s.root);
    // flags win over the config
    const other = root();
    other.populate();
    expect(runCli(['scan', '--daemon-config', config(dir, { 'data-root': s.root }), '--data-root', other.root, '--json']).json.dataRoot).toBe(other.root);
    // purge too: it removes in, and locks, the configured data root
    const p = runCli(['purge', '--yes', '--daemon-config', config(dir, { 'data-root': s.root }), '--json']);
    expect(p.code).toBe(0);
    expect(p.json.dataRoot).toBe(s.root);
    expect(p.json.summary.removed).toBe(1);
    expect(fs.existsSync(leaked.dir)).toBe(false);
  });

  it('userns-remap: the <uid>.<gid> data root below data-root', () => {
    const s = root();
    s.populate();
    const leaked = s.makeLeakedDriverDir();
    const outer = path.join(s.base, 'remapped');
    fs.mkdirSync(outer);
    const remapped = path.join(outer, '165536.165536');
    fs.renameSync(s.root, remapped);
    // dockerd keeps nothing but the remapped roots (and its own dirs) in the parent
    fs.mkdirSync(path.join(outer, 'tmp'));
    try {
      const dir = tmp();
      const cfg = config(dir, { 'data-root': outer, 'userns-remap': 'default' });
      const r = runCli(['scan', '--daemon-config', cfg, '--json']);
      expect(r.code).toBe(1);
      expect(r.json.dataRoot).toBe(remapped);
      expect(r.json.findings.map((f: { cacheId?: string }) => f.cacheId)).toEqual([leaked.id]);
      const p = runCli(['purge', '--yes', '--daemon-config', cfg, '--quiet']);
      expect(p.code).toBe(0);
      expect(fs.existsSync(path.join(remapped, s.driver, leaked.id))).toBe(false);
      expect(fs.existsSync(path.join(remapped, 'layergc'))).toBe(true); // lock and journal live in the remapped root
      expect(fs.existsSync(path.join(outer, 'layergc'))).toBe(false);
      expect(quiet(runCli(['scan', '--daemon-config', cfg, '--quiet']))).toEqual({ code: 0, stdout: '', stderr: '' });

      // two remapped roots and no /etc/subuid entry to choose: refuse, name both, exit 2
      fs.cpSync(remapped, path.join(outer, '231072.231072'), { recursive: true, verbatimSymlinks: true });
      const two = runCli(['scan', '--daemon-config', cfg]);
      expect(two.code).toBe(2);
      expect(two.stderr).toMatch(/userns-remap.*165536\.165536.*231072\.231072|userns-remap.*231072\.231072.*165536\.165536/s);
      // --data-root says which
      expect(runCli(['scan', '--daemon-config', cfg, '--data-root', remapped, '--json']).json.dataRoot).toBe(remapped);
    } finally {
      fs.renameSync(remapped, s.root); // so cleanup() finds it
    }
  });
});

// ------------------------------------------------------------------------------------------------
// the lock

function startTimeOf(pid: number): string {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
function spawnSleeper(): number {
  const c = spawn('sleep', ['30'], { stdio: 'ignore' });
  children.push(c);
  return c.pid!;
}
function writeLock(rootDir: string, holder: Record<string, unknown>): string {
  fs.mkdirSync(path.join(rootDir, 'layergc'), { recursive: true, mode: 0o700 });
  const p = path.join(rootDir, 'layergc', 'lock');
  fs.writeFileSync(p, `${JSON.stringify(holder)}\n`);
  return p;
}
function jsonLines(stderr: string): Record<string, any>[] {
  return stderr
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, any>);
}

describe('one layergc per data root', () => {
  it('a live holder: the second purge exits 5, names pid, host and since, and changes nothing', () => {
    const s = root();
    s.populate();
    s.makeLeakedDriverDir();
    const pid = spawnSleeper();
    const since = '2026-01-02T03:04:05.000Z';
    const lock = writeLock(s.root, { pid, host: hostname(), since, startTime: startTimeOf(pid) });
    const snap = snapshotTree(s.root);
    const r = runCli(['purge', '--yes', '--data-root', s.root]);
    expect(r.code).toBe(5);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`another layergc holds ${s.root}: pid ${pid} on ${hostname()}, since ${since}`);
    expect(r.stderr).toContain(lock);
    const j = runCli(['purge', '--yes', '--data-root', s.root, '--quiet', '--log-format', 'json']);
    expect(j.code).toBe(5);
    const [ev, ...more] = jsonLines(j.stderr);
    expect(more).toEqual([]);
    expect(ev).toMatchObject({ level: 'error', exitCode: 5 });
    expect(ev.msg).toContain(`pid ${pid} on ${hostname()}, since ${since}`);
    expect(diffSnapshots(snap, snapshotTree(s.root))).toEqual({ onlyBefore: [], onlyAfter: [], changed: [] });

    // a lock from another host is honoured (the data root may be shared storage)
    fs.writeFileSync(lock, JSON.stringify({ pid: 1, host: 'elsewhere.example', since }));
    const other = runCli(['purge', '--yes', '--data-root', s.root]);
    expect(other.code).toBe(5);
    expect(other.stderr).toContain('pid 1 on elsewhere.example');

    // the holder's pid, reused by another process (start time differs): a dead holder, taken over
    fs.writeFileSync(lock, JSON.stringify({ pid, host: hostname(), since, startTime: '1' }));
    const reused = runCli(['purge', '--yes', '--data-root', s.root]);
    expect(reused.code).toBe(0);
    expect(reused.stderr).toContain(`took over the lock of a layergc that died: pid ${pid}`);
    expect(fs.existsSync(lock)).toBe(false);
  });

  it('two purges started together: one removes everything, the other exits 5 naming it (or finds nothing to do)', async () => {
    const s = root();
    s.populate();
    // 200 leaked driver dirs of 50 files: the first purge holds the lock for a while (scan and
    // removal of 10,000 files, ~0.5 s here), while the second is started within a millisecond of
    // it. (200 files each would hold it longer, but creating 40,000 files takes ~30 s on this VM.)
    const leaked: string[] = [];
    for (let i = 0; i < 200; i++) {
      const d = s.makeLeakedDriverDir();
      for (let j = 0; j < 50; j++) fs.writeFileSync(path.join(d.dir, 'diff', `f${j}`), 'x');
      leaked.push(d.dir);
    }
    const run = () => {
      const c = spawn(process.execPath, [BIN, 'purge', '--yes', '--data-root', s.root, '--json'], { env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(c);
      let stdout = '';
      let stderr = '';
      c.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      c.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      return { pid: c.pid!, done: new Promise<{ code: number | null; stdout: string; stderr: string }>((res) => c.on('close', (code) => res({ code, stdout, stderr }))) };
    };
    const t0 = Date.now();
    const a = run();
    const b = run();
    const [ra, rb] = await Promise.all([a.done, b.done]);
    console.info(`race: exit codes ${ra.code} and ${rb.code} after ${Date.now() - t0} ms`);
    const codes = [ra.code, rb.code].sort();
    const [winner, loser] =
      ra.code === 0 && (rb.code === 5 || JSON.parse(ra.stdout).summary.removed > 0)
        ? [
            { ...ra, pid: a.pid },
            { ...rb, pid: b.pid },
          ]
        : [
            { ...rb, pid: b.pid },
            { ...ra, pid: a.pid },
          ];
    expect(winner.code).toBe(0);
    const w = JSON.parse(winner.stdout);
    expect(w.summary).toMatchObject({ removed: 200, failed: 0 });
    if (codes[1] === 5) {
      expect(loser.stdout).toBe('');
      expect(loser.stderr).toContain(`another layergc holds ${s.root}: pid ${winner.pid} on ${hostname()}, since `);
    } else {
      // the first finished before the second started: the second found nothing to do
      expect(codes).toEqual([0, 0]);
      expect(JSON.parse(loser.stdout).actions).toEqual([]);
      console.warn('race: the second purge started after the first had finished');
    }
    for (const d of leaked) expect(fs.existsSync(d)).toBe(false);
    expect(fs.existsSync(path.join(s.root, 'layergc', 'lock'))).toBe(false);
    expect(quiet(runCli(['scan', '--data-root', s.root, '--quiet']))).toEqual({ code: 0, stdout: '', stderr: '' });
  }, 120_000);

  for (const logFormat of ['text', 'json'] as const) {
    it(`a lock left by a purge killed with SIGKILL is taken over, and the takeover logged (--log-format ${logFormat})`, () => {
      const s = root();
      s.populate();
      const leaked = [s.makeLeakedDriverDir(), s.makeLeakedDriverDir(), s.makeLeakedDriverDir()];
      // LAYERGC_TEST_CRASH_AT=after-intent: the purge kills itself (SIGKILL) after journaling its
      // first item's intent, holding the lock
      const crashed = runCli(['purge', '--yes', '--data-root', s.root], { env: { LAYERGC_TEST_CRASH_AT: 'after-intent' } });
      expect(crashed.signal).toBe('SIGKILL');
      const lockFile = path.join(s.root, 'layergc', 'lock');
      const holder = JSON.parse(fs.readFileSync(lockFile, 'utf8')) as { pid: number; host: string; since: string; startTime?: string };
      expect(holder.host).toBe(hostname());
      expect(alive(holder.pid)).toBe(false);

      const r = runCli(['purge', '--yes', '--data-root', s.root, '--quiet', '--log-format', logFormat]);
      expect(r.code).toBe(0);
      const msg = `took over the lock of a layergc that died: pid ${holder.pid} on ${holder.host}, since ${holder.since}`;
      if (logFormat === 'text') {
        expect(r.stderr.split('\n')).toContain(`layergc: ${msg}`);
      } else {
        const events = jsonLines(r.stderr); // every stderr line is one JSON object
        const take = events.find((e) => e.event === 'lock-takeover');
        expect(take).toMatchObject({ level: 'warn', msg, holder: { pid: holder.pid, host: holder.host, since: holder.since } });
        expect(typeof take!.time).toBe('string');
        expect(events.filter((e) => e.event === 'removed')).toHaveLength(3);
      }
      for (const l of leaked) expect(fs.existsSync(l.dir)).toBe(false);
      expect(fs.existsSync(lockFile)).toBe(false);
      // and the next run has nothing to say
      expect(quiet(runCli(['purge', '--yes', '--data-root', s.root, '--quiet']))).toEqual({ code: 0, stdout: '', stderr: '' });
    });
  }
});

// ------------------------------------------------------------------------------------------------
// contrib/

/** The arguments after `layergc` in a shell-ish command line (no quoting in our contrib files). */
function layergcArgs(command: string): string[] {
  const m = /(?:^|[\s/])layergc\s+(purge|scan)\b([^&|;\n]*)/.exec(command.replace(/\\\n\s*/g, ' '));
  if (!m) throw new Error(`no layergc invocation in ${command}`);
  return [
    m[1],
    ...m[2]
      .trim()
      .split(/\s+/)
      .filter((a) => a && !a.startsWith('$')),
  ];
}

/** Run a contrib file's layergc invocation on a synthetic root, with the metrics file moved to a temp dir. */
function runContribCommand(args: string[], s: SyntheticRoot, metricsDir: string): CliResult {
  const i = args.indexOf('--metrics-file');
  expect(i, `${args.join(' ')} writes no metrics file`).toBeGreaterThan(0);
  const a = [...args];
  a[i + 1] = path.join(metricsDir, path.basename(args[i + 1]));
  return runCli([...a, '--data-root', s.root]);
}

function checkInvocation(args: string[]): void {
  expect(args.slice(0, 3)).toEqual(['purge', '--yes', '--quiet']);
  const clean = root();
  clean.populate();
  const dir = tmp();
  expect(quiet(runContribCommand(args, clean, dir))).toEqual({ code: 0, stdout: '', stderr: '' });
  expect(fs.readdirSync(dir)).toEqual(['layergc.prom']);
  const dirty = root();
  dirty.populate();
  const leaked = dirty.makeLeakedDriverDir();
  const r = runContribCommand(args, dirty, dir);
  expect(r.code).toBe(0);
  expect(fs.existsSync(leaked.dir)).toBe(false);
  if (PROMTOOL) expect(promtool(fs.readFileSync(path.join(dir, 'layergc.prom'), 'utf8')).code).toBe(0);
}

function yamlToJson(file: string): any[] {
  const r = spawnSync('python3', ['-c', 'import sys, json, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as any[];
}

describe('contrib/systemd', () => {
  const unit = fs.readFileSync(path.join(CONTRIB, 'systemd/layergc.service'), 'utf8');
  const timer = fs.readFileSync(path.join(CONTRIB, 'systemd/layergc.timer'), 'utf8');
  const setting = (text: string, key: string) => [...text.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]);

  it('a daily oneshot purge --yes --quiet writing the metrics file, hardened but able to write the data root and the metrics dir', () => {
    expect(setting(unit, 'Type')).toEqual(['oneshot']);
    const exec = setting(unit, 'ExecStart');
    expect(exec).toHaveLength(1);
    expect(exec[0]).toMatch(/^\/usr\/local\/bin\/layergc purge --yes --quiet .*--metrics-file \/var\/lib\/node_exporter\/textfile_collector\/layergc\.prom/);
    expect(setting(unit, 'ProtectSystem')).toEqual(['strict']);
    const rw = setting(unit, 'ReadWritePaths')
      .join(' ')
      .split(/\s+/)
      .map((p) => p.replace(/^-/, ''));
    expect(rw).toEqual(expect.arrayContaining(['/var/lib/docker', '/var/lib/node_exporter/textfile_collector']));
    expect(setting(unit, 'Nice')).toEqual(['19']);
    expect(setting(unit, 'IOSchedulingClass')).toEqual(['idle']);
    expect(setting(unit, 'NoNewPrivileges')).toEqual(['yes']);
    expect(setting(unit, 'MemoryDenyWriteExecute')).toEqual([]); // Node's JIT
    expect(setting(timer, 'OnCalendar')).toEqual(['daily']);
    expect(setting(timer, 'Persistent')).toEqual(['true']);
    expect(setting(timer, 'RandomizedDelaySec')).toHaveLength(1);
    expect(setting(timer, 'WantedBy')).toEqual(['timers.target']);
  });

  it.skipIf(!SYSTEMD_ANALYZE)('systemd-analyze verify accepts the units (ExecStart pointed at this checkout)', () => {
    // verify insists that ExecStart's binary exists; the unit names the installed path
    // /usr/local/bin/layergc, so verify a copy whose ExecStart is this checkout's bin/layergc.js
    // (executable, #!/usr/bin/env node) and which is otherwise unchanged
    const dir = tmp();
    expect(fs.statSync(BIN).mode & 0o111).not.toBe(0);
    fs.writeFileSync(path.join(dir, 'layergc.service'), unit.replace(/^ExecStart=\/usr\/local\/bin\/layergc /m, `ExecStart=${BIN} `));
    fs.writeFileSync(path.join(dir, 'layergc.timer'), timer);
    expect(fs.readFileSync(path.join(dir, 'layergc.service'), 'utf8')).toContain(`ExecStart=${BIN} purge --yes --quiet`);
    const r = spawnSync(SYSTEMD_ANALYZE!, ['verify', path.join(dir, 'layergc.service'), path.join(dir, 'layergc.timer')], { encoding: 'utf8' });
    const ours = `${r.stdout}${r.stderr}`.split('\n').filter((l) => /layergc/.test(l));
    expect(ours).toEqual([]);
    expect(r.status).toBe(0);
    // the exposure score systemd gives the hardening ("OK" is below 4.0)
    const sec = spawnSync(SYSTEMD_ANALYZE!, ['security', '--offline=true', path.join(dir, 'layergc.service')], { encoding: 'utf8' });
    const m = /Overall exposure level for layergc\.service: ([\d.]+)/.exec(`${sec.stdout}`);
    if (m) expect(Number(m[1])).toBeLessThan(3);
  });

  it('its ExecStart is a valid layergc invocation: silent when clean, removes garbage, writes the metrics', () => {
    checkInvocation(layergcArgs(setting(unit, 'ExecStart')[0]));
  });
});

describe('contrib/cron.d', () => {
  const cron = fs.readFileSync(path.join(CONTRIB, 'cron.d/layergc'), 'utf8');
  const jobs = cron.split('\n').filter((l) => l.trim() && !l.startsWith('#') && !/^\w+=/.test(l));

  it('one daily job as root, no unescaped % (cron would cut the command there)', () => {
    expect(jobs).toHaveLength(1);
    const f = jobs[0].trim().split(/\s+/);
    expect(f[2]).toBe('*');
    expect(f[3]).toBe('*');
    expect(f[4]).toBe('*');
    expect(f[5]).toBe('root');
    expect(jobs[0]).not.toMatch(/(^|[^\\])%/);
    // the shell part parses
    expect(spawnSync('sh', ['-n', '-c', f.slice(6).join(' ')]).status).toBe(0);
  });

  it('its command is a valid layergc invocation', () => {
    checkInvocation(layergcArgs(jobs[0]));
  });
});

describe('contrib/kubernetes', () => {
  const dsText = fs.readFileSync(path.join(CONTRIB, 'kubernetes/daemonset.yaml'), 'utf8');

  it.skipIf(!HAS_PYYAML)('a DaemonSet with hostPID, the data root at the same path (HostToContainer), the textfile dir, least capabilities', () => {
    const [ds] = yamlToJson(path.join(CONTRIB, 'kubernetes/daemonset.yaml'));
    expect(ds.kind).toBe('DaemonSet');
    const pod = ds.spec.template.spec;
    expect(pod.hostPID).toBe(true);
    const [c] = pod.containers;
    const vol = (name: string) => pod.volumes.find((v: any) => v.name === name);
    const mount = (p: string) => c.volumeMounts.find((m: any) => m.mountPath === p);
    expect(vol(mount('/var/lib/docker').name).hostPath).toEqual({ path: '/var/lib/docker', type: 'Directory' });
    expect(mount('/var/lib/docker').mountPropagation).toBe('HostToContainer');
    const textfile = c.volumeMounts.find((m: any) => vol(m.name).hostPath.path === '/var/lib/node_exporter/textfile_collector');
    expect(textfile).toBeTruthy();
    expect(mount('/etc/docker').readOnly).toBe(true);
    // nothing is created on a node: no empty /etc/docker where there was none
    expect(vol(mount('/etc/docker').name).hostPath).toEqual({ path: '/etc/docker', type: 'Directory' });
    // only the nodes labelled for it, with the label the comment tells how to set
    expect(pod.nodeSelector).toEqual({ 'layergc.io/docker': 'true' });
    expect(dsText).toContain('kubectl label node <node> layergc.io/docker=true');
    expect(c.securityContext.capabilities).toEqual({ drop: ['ALL'], add: ['DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER'] });
    expect(c.securityContext.runAsUser).toBe(0);
    // the loop: the shell script parses, and its layergc invocation is valid
    const script: string = c.args[0];
    expect(spawnSync('sh', ['-n', '-c', script]).status).toBe(0);
    expect(script).toMatch(/sleep "\$INTERVAL_SECONDS"/);
    const args = layergcArgs(script);
    expect(args[args.indexOf('--metrics-file') + 1]).toBe(`${textfile.mountPath}/layergc.prom`);
    checkInvocation(args);
  });

  it('the image builds from the sources on the current Node.js LTS, with attr (getfattr)', () => {
    const df = fs.readFileSync(path.join(CONTRIB, 'kubernetes/Dockerfile'), 'utf8');
    const from = [...df.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    expect(from).toEqual(['node:lts-slim', 'node:lts-slim']);
    expect(df).toMatch(/^RUN apt-get update && apt-get install -y --no-install-recommends attr /m);
    expect(df).toMatch(/^RUN npm pack /m);
    // every file the package is made of is copied into the build, and not ignored
    const copied = [...df.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1].split(/\s+/));
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8'));
    for (const f of ['package.json', 'package-lock.json', 'tsconfig.json', 'src', 'README.md', 'LICENSE', ...pkg.files.filter((f: string) => !f.startsWith('!') && f !== 'dist')])
      expect(copied, f).toContain(f);
    const ignored = fs.readFileSync(path.join(REPO, '.dockerignore'), 'utf8').split('\n').filter(Boolean);
    expect(ignored.filter((i) => copied.includes(i))).toEqual([]);
  });

  it('the kustomization lists every manifest', () => {
    const k = fs.readFileSync(path.join(CONTRIB, 'kubernetes/kustomization.yaml'), 'utf8');
    for (const f of fs.readdirSync(path.join(CONTRIB, 'kubernetes')).filter((n) => n.endsWith('.yaml') && n !== 'kustomization.yaml')) expect(k).toContain(`- ${f}`);
  });
});

describe('alert rules', () => {
  const rulesFile = path.join(CONTRIB, 'prometheus/layergc.rules.yml');

  it.skipIf(!HAS_PYYAML)('the PrometheusRule carries exactly the rules of contrib/prometheus/layergc.rules.yml', () => {
    const [pr] = yamlToJson(path.join(CONTRIB, 'kubernetes/prometheusrule.yaml'));
    expect(pr.kind).toBe('PrometheusRule');
    expect(pr.spec).toEqual(yamlToJson(rulesFile)[0]);
  });

  it.skipIf(!PROMTOOL)('promtool: the rules load, and each alert fires when it should and not before', () => {
    const check = spawnSync(PROMTOOL!, ['check', 'rules', rulesFile], { encoding: 'utf8' });
    expect(check.status, `${check.stdout}${check.stderr}`).toBe(0);
    const dir = tmp();
    const L = (extra = '') => `instance="n1",data_root="/var/lib/docker"${extra}`;
    const tests = `
rule_files:
  - ${rulesFile}
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'layergc_reclaimable_bytes{${L()}}'
        values: '2e10x3000'
      - series: 'layergc_reclaimable_bytes{instance="n2",data_root="/var/lib/docker"}'
        values: '9e9x3000'
      - series: 'layergc_purge_items{${L(',status="failed"')}}'
        values: '0x60 3x600'
      - series: 'layergc_purge_items{instance="n2",data_root="/var/lib/docker",status="failed"}'
        values: '0x3000'
      - series: 'layergc_last_run_timestamp_seconds{${L()}}'
        values: '0x3000'
      - series: 'layergc_findings{${L(',kind="missing-driver-data"')}}'
        values: '2x3000'
      - series: 'layergc_findings{${L(',kind="removing-orphan"')}}'
        values: '7x3000'
    alert_rule_test:
      - eval_time: 23h
        alertname: LayergcReclaimableBytesHigh
        exp_alerts: []
      - eval_time: 25h
        alertname: LayergcReclaimableBytesHigh
        exp_alerts:
          - exp_labels: { severity: warning, instance: n1, data_root: /var/lib/docker }
            exp_annotations:
              summary: "layergc: more than 10 GB of orphan layer data for a day"
              description: "n1 /var/lib/docker: 20GB that \`layergc purge\` could free has stayed for a day. Is the purge running (timer, cron, DaemonSet), or does it skip the items (dockerd running and --min-age, mounts inside)? See \`layergc purge --dry-run\`."
      - eval_time: 30m
        alertname: LayergcPurgeFailed
        exp_alerts: []
      - eval_time: 70m
        alertname: LayergcPurgeFailed
        exp_alerts:
          - exp_labels: { severity: warning, instance: n1, data_root: /var/lib/docker, status: failed }
            exp_annotations:
              summary: "layergc: the last purge could not remove some items"
              description: "n1 /var/lib/docker: 3 item(s) failed in the last purge (exit code 1). The journal (journalctl -u layergc) or the pod log names each path and why (often chattr +i, a read-only mount, EBUSY)."
      - eval_time: 47h
        alertname: LayergcMetricsStale
        exp_alerts: []
      - eval_time: 49h
        alertname: LayergcMetricsStale
        exp_alerts:
          - exp_labels: { severity: warning, instance: n1, data_root: /var/lib/docker }
            exp_annotations:
              summary: "layergc: no successful run for 2 days"
              description: "n1 /var/lib/docker: layergc last wrote its metrics 2d 1h 0m 0s ago. Runs that end with exit 2-5 write no metrics: look for the exit code in the journal or the pod log (5: another layergc holds the data root; 4: unsupported layout; 3: a dockerd runs; 2: could not run)."
      - eval_time: 2h
        alertname: LayergcBrokenLayers
        exp_alerts:
          - exp_labels: { severity: info, instance: n1, data_root: /var/lib/docker, kind: missing-driver-data }
            exp_annotations:
              summary: "layergc: broken layers or images that purge does not repair"
              description: "n1 /var/lib/docker: 2 finding(s) of kind missing-driver-data. Images or containers using them may fail; see \`layergc scan\` and \`layergc explain\`."
`;
    fs.writeFileSync(path.join(dir, 'tests.yml'), tests);
    const r = spawnSync(PROMTOOL!, ['test', 'rules', path.join(dir, 'tests.yml')], { encoding: 'utf8' });
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
  });
});
