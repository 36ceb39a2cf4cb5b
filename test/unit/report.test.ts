/**
 * The human reports, through the real CLI: scan opens with a summary (per kind: count, bytes,
 * purged or not; errors before garbage), then the details with each kind's `why` once (every
 * item's with --verbose), at 80 columns; hints keep --data-root/--driver/--daemon-config; verify
 * names each damaged file and prints no "nothing found" line; scan --deep says what it verified;
 * verify says when getfattr is missing.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Chalk } from 'chalk';
import { REPO, rootMaker, runCliAsync } from '../helpers/synthetic.js';
import { renderPurgeHuman } from '../../src/cli/render/purge.js';
import type { Action } from '../../src/purge/plan.js';
import type { Output } from '../../src/cli/output.js';

const root = rootMaker();

/** A root with garbage of two kinds (one with two items) and a broken layer. */
function damaged() {
  const s = root();
  const { app } = s.populate();
  const leaks = [s.makeLeakedDriverDir(), s.makeLeakedDriverDir()];
  s.danglingLink();
  const broken = s.addImage(['broken:1'], [{ files: { f: 'x\n' } }]);
  s.removeDriverDir(broken.layers[0].cacheId, { withLink: true });
  return { s, app, leaks, broken };
}

describe('scan, for people', () => {
  it('the summary table fits the longest kind: the bundled containerd sample (kinds of up to 31 characters) lines up under its header, and says what purge does with each', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'layergc-ctrd-sample-'));
    try {
      execFileSync('tar', ['-xzf', path.join(REPO, 'fixtures/sample-containerd-root.tar.gz'), '-C', dir]);
      const r = await runCliAsync(['scan', '--data-root', dir]);
      expect(r.code).toBe(1);
      const lines = r.stdout.split('\n');
      const head = lines.findIndex((l) => l.startsWith('kind '));
      const at = lines[head].indexOf('severity');
      const rows = lines.slice(
        head + 1,
        lines.findIndex((l, i) => i > head && !l.startsWith('containerd-')),
      );
      expect(rows.map((l) => l.split(/ +/)[0]).sort()).toEqual(
        ['containerd-configless-container', 'containerd-dead-lease', 'containerd-orphan-ingest', 'containerd-orphan-snapshot', 'containerd-stray-blob-name'].sort(),
      );
      for (const l of rows) expect([l, l.slice(at).split(' ')[0]]).toEqual([l, 'warning']);
      // and says what purge does with each: the file kinds are removed, the leases dropped from meta.db
      expect(Object.fromEntries(rows.map((l) => [l.split(/ +/)[0], l.split(/ {2}/).pop()]))).toEqual({
        'containerd-orphan-snapshot': 'yes',
        'containerd-orphan-ingest': 'yes',
        'containerd-configless-container': 'yes',
        'containerd-stray-blob-name': 'yes',
        'containerd-dead-lease': 'from meta.db',
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('summary first, errors before garbage; why once per kind; 80 columns; the next commands keep the locating flags', async () => {
    const { s, leaks } = damaged();
    const r = await runCliAsync(['scan', '--data-root', s.root, '--driver', 'overlay2']);
    expect(r.code).toBe(1);
    const lines = r.stdout.split('\n');
    expect(lines.slice(0, 7)).toEqual([
      `layergc scan ${s.root} (overlay2)`,
      '',
      'kind                      severity   count      bytes  purged',
      'missing-driver-data       error          1        0 B  no',
      expect.stringMatching(/^unreferenced-driver-dir {3}warning {8}2 +\d+\.\d+ kB {2}yes$/),
      expect.stringMatching(/^dangling-link {13}warning {8}1 +\S+ \S+ {2}yes$/),
      expect.stringMatching(/^4 findings: 1 error \(broken\), 3 warnings; \d+\.\d+ kB reclaimable\.$/),
    ]);
    // the two leaked dirs: one why, both items
    expect(r.stdout.match(/^ {2}why: no layer, mount or BuildKit snapshot uses driver dir/gm)).toHaveLength(1);
    expect(r.stdout).toContain('(the first; --verbose shows each)');
    for (const l of leaks) expect(r.stdout).toContain(`  dir ${l.id.slice(0, 12)}  `);
    // only paths (which must copy whole) may pass 80 columns
    expect(lines.filter((l) => l.length > 80 && !/\/\S{20,}/.test(l))).toEqual([]);
    expect(r.stdout).toContain(`See what a purge would do:\n  layergc purge --dry-run --data-root ${s.root} --driver overlay2\n`);
    expect(r.stdout).toContain(`  layergc explain <name or ID> --data-root ${s.root} --driver overlay2\n`);

    const v = await runCliAsync(['scan', '--verbose', '--data-root', s.root]);
    expect(v.stdout.match(/^ {4}why: no layer, mount or BuildKit snapshot uses driver dir/gm)).toHaveLength(2);
    expect(v.stdout).not.toContain('--verbose shows each');
  });

  it('the hints quote a data root with a space, and keep --daemon-config', async () => {
    const s = root();
    s.populate();
    s.makeLeakedDriverDir();
    const spaced = path.join(s.base, 'my root');
    fs.symlinkSync(s.root, spaced);
    const cfg = path.join(s.base, 'daemon.json');
    fs.writeFileSync(cfg, JSON.stringify({ 'data-root': spaced }));
    const r = await runCliAsync(['scan', '--daemon-config', cfg]);
    expect(r.stdout).toContain(`  layergc purge --dry-run --daemon-config ${cfg}\n`);
    const d = await runCliAsync(['purge', '--dry-run', '--data-root', spaced]);
    expect(d.stdout).toContain(`Nothing was changed. To remove: layergc purge --yes --data-root '${spaced}'`);
  });
});

describe('verify and scan --deep, for people', () => {
  it('verify names each damaged file and what differs, says what it verified, prints no "nothing found" line', async () => {
    const { s, app, broken } = damaged();
    fs.writeFileSync(path.join(app.layers[2].driverDir, 'diff/app/data.bin'), 'changed');
    fs.rmSync(path.join(app.layers[1].driverDir, 'diff/app/run.sh'));
    const r = await runCliAsync(['verify', '--data-root', s.root]);
    expect(r.code).toBe(1);
    // wrapped at 80 columns
    expect(r.stdout).toMatch(/^verify: verified 3 layers \(\S+ \S+\) in \d+\.\d s: 1 match their DiffID,\s+2\s+do\s+not;\s+1\s+skipped\.$/m);
    expect(r.stdout).toContain(`  skipped layer ${broken.layers[0].chainId.slice(7, 19)}: its driver data`);
    expect(r.stdout).toContain('    files:\n      app/data.bin: short (7 bytes on disk, tar-split says 3000)\n');
    expect(r.stdout).toMatch(/^ {6}app\/run\.sh: missing/m);
    expect(r.stdout).not.toContain('No orphan or broken layers found');

    const clean = root();
    clean.populate();
    const ok = await runCliAsync(['verify', '--data-root', clean.root]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^layergc verify .*\nverify: verified 3 layers \(\S+ \S+\) in \d+\.\d s: 3 match their DiffID\.\n$/);
  });

  it('scan --deep says that it verified, and how much', async () => {
    const s = root();
    s.populate();
    const r = await runCliAsync(['scan', '--deep', '--data-root', s.root]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^scan --deep: verified 3 layers \(\S+ \S+\) in \d+\.\d s: 3 match their DiffID\.\nNo orphan or broken layers found\.\n$/m);
  });

  it('verify says when getfattr is missing, instead of treating redirects as absent', async () => {
    const s = root();
    s.populate();
    const r = await runCliAsync(['verify', '--data-root', s.root], { env: { PATH: path.join(s.base, 'no-tools') } });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^layergc: getfattr was not found \(install .*`attr` package\): directories renamed in an upper layer \(overlay redirect_dir\) cannot be followed/);
    const j = await runCliAsync(['verify', '--json', '--data-root', s.root], { env: { PATH: path.join(s.base, 'no-tools') } });
    expect(j.json.notes).toEqual([expect.stringMatching(/^getfattr was not found/)]);
    const withTools = await runCliAsync(['verify', '--data-root', s.root]);
    expect(withTools.stderr).toBe('');
  });
});

describe('verify --fail-on', () => {
  it('a content mismatch is an error: exit 1 unless --fail-on none', async () => {
    const s = root();
    const { app } = s.populate();
    const code = async (...a: string[]) => (await runCliAsync(['verify', '--data-root', s.root, ...a])).code;
    expect([await code(), await code('--fail-on', 'error'), await code('--fail-on', 'none')]).toEqual([0, 0, 0]);
    fs.writeFileSync(path.join(app.layers[2].driverDir, 'diff/app/data.bin'), 'changed');
    expect([await code(), await code('--fail-on', 'warning'), await code('--fail-on', 'error'), await code('--fail-on', 'none')]).toEqual([1, 1, 1, 0]);
  });
});

describe("the purge report's free-space line", () => {
  const o = { c: new Chalk({ level: 0 }) } as Output;
  const h = { dataRoot: '/r', driver: 'overlay2', daemonRunning: false };
  const removed = (bytes: number): Action => ({
    finding: {
      kind: 'unreferenced-driver-dir',
      severity: 'warning',
      cacheId: 'a'.repeat(64),
      paths: ['/r/overlay2/x'],
      bytes,
      reclaimable: true,
      reason: 'r',
      affects: { images: [], containers: [] },
    },
    status: 'removed',
    depth: 0,
    freedBytes: bytes,
  });

  it('says the free space grew by as much only when it did; else a labelled line of its own', () => {
    const agree = renderPurgeHuman(o, h, [removed(50e6)], { dryRun: false, measuredFreed: 50.5e6 });
    expect(agree).toContain("Removed 1 item, 50.0 MB (the filesystem's free space grew by as much); 0 failed, 0 skipped.");
    expect(agree).not.toContain('Free space on');
    const other = renderPurgeHuman(o, h, [removed(50e6)], { dryRun: false, measuredFreed: -3e9 });
    expect(other).toContain("Removed 1 item, 50.0 MB; 0 failed, 0 skipped.\nFree space on the data root's filesystem changed by -3.00 GB meanwhile; other writers there count too.");
  });

  it('--quiet: only what was removed or failed; nothing at all when neither', () => {
    const skipped: Action = { ...removed(10), status: 'skipped', reason: 'a dockerd runs', freedBytes: undefined };
    expect(renderPurgeHuman(o, h, [skipped], { dryRun: false, quiet: true })).toBe('');
    const both = renderPurgeHuman(o, h, [skipped, removed(4096)], { dryRun: false, quiet: true });
    expect(both).toMatch(/^removed {2}unreferenced-driver-dir/m);
    expect(both).not.toMatch(/skipped|a dockerd runs/);
  });
});

describe('purge, for people', () => {
  it("summary first (per kind: count, bytes, outcome) and the totals, then the details with each kind's why once; --verbose shows each", async () => {
    const s = root();
    s.populate();
    const leaks = [s.makeLeakedDriverDir(), s.makeLeakedDriverDir()];
    s.danglingLink();
    const fake = await s.startFakeDockerd(); // the leaks are young: skipped while a dockerd runs
    try {
      const r = await runCliAsync(['purge', '--dry-run', '--data-root', s.root]);
      expect(r.code).toBe(0);
      const lines = r.stdout.split('\n');
      expect(lines.slice(1, 6)).toEqual([
        '',
        'kind                       count      bytes  outcome',
        expect.stringMatching(/^unreferenced-driver-dir {8}2 +\d+\.\d+ kB {2}skipped 2$/),
        expect.stringMatching(/^dangling-link {18}1 +\S+ \S+ {2}skipped 1$/),
        expect.stringMatching(/^Would remove 0 items, 0 B, 3 skipped\. Nothing was changed\. To remove: layergc purge --yes --data-root /),
      ]);
      expect(r.stdout.match(/^ {2}why: written \d+ min ago, younger than --min-age/gm)).toHaveLength(1);
      expect(r.stdout.replace(/\n +/g, ' ')).toContain('(the first of 2 skipped; --verbose shows each)');
      for (const l of leaks) expect(r.stdout).toMatch(new RegExp(`^skipped {2}unreferenced-driver-dir {2}dir ${l.id.slice(0, 12)} `, 'm'));
      expect(lines.filter((l) => l.length > 80 && !/\/\S{20,}/.test(l))).toEqual([]);
      const v = await runCliAsync(['purge', '--dry-run', '--verbose', '--data-root', s.root]);
      expect(v.stdout.match(/^ {4}why: written \d+ min ago/gm)).toHaveLength(2);
    } finally {
      fake.stop();
    }
  });
});
