/**
 * `layergc scan` (and `explain`) on a real damaged overlay2 data root, made by a real dockerd 20.10
 * and 28.5 (test/e2e/scenario.ts): the failed removal's orphan with its half-deleted driver dir, the
 * killed load's write-set and its leaked driver dir (over 100 MB), with sizes equal to `du`; the
 * image a removed driver dir breaks; the emptied layerdb entry and its image; and nothing healthy.
 *
 * Observed here (kernel 6.18, ext4 /tmp), the same on 20.10.24 and 28.5.2:
 * - setup ~7-9 s per version (start 0.3, import 0.3, five builds ~1.8, failedRemoval 0.1, a 140 MiB
 *   image built and saved ~2.6, killed load + restart ~1.1, clean stop ~1); each CLI call ~0.2-0.4 s.
 * - the scan finds exactly 8 things: removing-orphan (the -removing dir + the half-deleted dir,
 *   ~45 kB), stale-write-set (the write-set, 8 kB), unreferenced-driver-dir x2 (the leaked dir +
 *   its l/<LID> link, ~105 MB; and the driver dir of the emptied layerdb entry, which no cache-id
 *   names any more), dangling-link (victim's l/<LID>), missing-driver-data (victim:1),
 *   invalid-layer-metadata (empty:1's top layer) and image-missing-layers (empty:1). victim:1 gets
 *   no image-missing-layers: its layer still loads, and the daemon still lists the image.
 *   The emptied entry's orphaned driver dir is named as possibly "the data of one of them" (an entry
 *   that lost its cache-id). The killed load is stopped at >= 100 MiB, so the leak is ~105-112 MB.
 * - every finding's bytes equal `du -s -B1 -x` of its paths (no hard links in these trees); the
 *   broken kinds report 0 bytes for the missing dir and the image (nothing there to walk).
 * - 20.10 vs 28.5: the same findings, reasons and sizes rule; 28.5 builds about twice as fast; the
 *   removed driver dir fails `docker run` with `open …/committed` on 20.10 and `invalid output path:
 *   stat …` on 28.5, both naming the cache-id the scan names.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { dockerAvailable, type DockerVersion } from '../helpers/dockerd.js';
import { runCli, snapshotTree, diffSnapshots } from '../helpers/synthetic.js';
import { buildScenario, du, timed, HEALTHY_TAGS, type Scenario } from './scenario.js';

const LONG = 240_000;
const VERSIONS: DockerVersion[] = ['20.10', '28.5'];

interface JsonFinding {
  kind: string;
  severity: string;
  layer?: string;
  cacheId?: string;
  paths: string[];
  bytes: number;
  reclaimable: boolean;
  reason: string;
  affects: { images: string[]; containers: string[] };
}

const inside = (p: string, dir: string) => p === dir || p.startsWith(`${dir}/`);

describe.each(VERSIONS)('scan on a real damaged overlay2 root (dockerd %s)', (version) => {
  describe.skipIf(!dockerAvailable(version))('overlay2', () => {
    let s: Scenario;
    let before: Map<string, string>;
    let findings: JsonFinding[] = [];
    const times: Record<string, number> = {};
    const cli = (args: string[]) => runCli([...args, '--data-root', s.root]);
    const one = (kind: string) => {
      const fs_ = findings.filter((f) => f.kind === kind);
      expect(fs_, `${kind} findings: ${JSON.stringify(fs_, null, 2)}`).toHaveLength(1);
      return fs_[0];
    };

    beforeAll(async () => {
      s = await timed(times, 'scenario', () => buildScenario(version, times));
      before = await timed(times, 'snapshot', () => snapshotTree(s.root, { dirTimes: true }));
    }, LONG);

    afterAll(async () => {
      if (s) await timed(times, 'destroy', () => s.d.destroy());
      console.log(`[scan-real ${version}] times (ms): ${JSON.stringify(times)}`);
    }, LONG);

    it(
      'scan --json: exit 1, exactly the damage, sizes equal to du',
      async () => {
        const r = await timed(times, 'scan --json', () => cli(['scan', '--json']));
        expect(r.stderr).toBe('');
        expect(r.code).toBe(1);
        // runCli validated it against docs/scan.schema.json (expectValid)
        expect(r.json.dataRoot).toBe(s.root);
        expect(r.json.driver).toBe('overlay2');
        expect(r.json.daemonRunning).toBe(false);
        findings = r.json.findings;
        const kinds = findings.map((f) => f.kind).sort();
        expect(kinds).toEqual([
          'dangling-link',
          'image-missing-layers',
          'invalid-layer-metadata',
          'missing-driver-data',
          'removing-orphan',
          'stale-write-set',
          'unreferenced-driver-dir',
          'unreferenced-driver-dir',
        ]);
        expect(r.json.summary.findings).toBe(8);

        // the failed removal: the -removing entry and the half-deleted driver dir, nothing more
        const orphan = one('removing-orphan');
        expect(orphan.paths).toEqual([s.fr.removingDir, s.fr.driverDir]);
        expect(orphan.layer).toBe(s.fr.chainId);
        expect(orphan.cacheId).toBe(s.fr.cacheId);
        expect(orphan.reason).toMatch(/left behind/);
        expect(orphan.reclaimable).toBe(true);
        expect(orphan.bytes).toBeGreaterThan(0);
        expect(orphan.bytes).toBe(du(orphan.paths));

        // the killed load: its write-set, and its leaked driver dir with over 100 MB
        const ws = one('stale-write-set');
        expect(ws.paths).toEqual([s.kl.writeSetDir]);
        expect(ws.bytes).toBe(du(ws.paths));
        const leaks = findings.filter((f) => f.kind === 'unreferenced-driver-dir');
        const leak = leaks.find((f) => f.paths[0] === s.kl.leakedDriverDir);
        expect(leak, JSON.stringify(leaks, null, 2)).toBeDefined();
        expect(leak!.paths).toEqual([s.kl.leakedDriverDir, s.klLink]);
        expect(leak!.cacheId).toBe(path.basename(s.kl.leakedDriverDir));
        expect(leak!.bytes).toBeGreaterThan(100_000_000);
        expect(leak!.bytes).toBe(du(leak!.paths));
        expect(leak!.bytes).toBeGreaterThanOrEqual(s.kl.leakedBytes); // blocks >= file bytes
        // the other one: the driver dir of the emptied layerdb entry, which no cache-id names now
        const orphanedData = leaks.find((f) => f !== leak)!;
        expect(orphanedData.paths).toEqual([s.empty.driverDir, s.empty.link]);
        expect(orphanedData.reason).toMatch(/lost its cache-id/);
        expect(orphanedData.bytes).toBe(du(orphanedData.paths));

        // the removed driver dir: the layer still loads, its image is named, its l/ link dangles
        const missing = one('missing-driver-data');
        expect(missing.layer).toBe(s.victim.chainId);
        expect(missing.paths).toEqual([path.join(s.d.layerdb, 'sha256', s.victim.chainId.slice(7)), s.victim.driverDir]);
        expect(missing.affects.images).toEqual(['victim:1']);
        expect(missing.severity).toBe('error');
        expect(missing.reclaimable).toBe(false);
        const link = one('dangling-link');
        expect(link.paths).toEqual([s.victim.danglingLink]);
        expect(link.bytes).toBe(du(link.paths));

        // the emptied entry, and the image it takes down
        const invalid = one('invalid-layer-metadata');
        expect(invalid.layer).toBe(s.empty.chainId);
        expect(invalid.paths).toEqual([s.empty.dir]);
        expect(invalid.affects.images).toEqual(['empty:1']);
        expect(invalid.reason).toMatch(/empty/);
        const img = one('image-missing-layers');
        expect(img.affects.images).toEqual(['empty:1']);
        expect(img.paths).toEqual([path.join(s.root, 'image', 'overlay2', 'imagedb', 'content', 'sha256', s.empty.imageId.slice(7))]);

        const reclaimable = findings.filter((f) => f.reclaimable).reduce((t, f) => t + f.bytes, 0);
        expect(r.json.summary.reclaimableBytes).toBe(reclaimable);
      },
      LONG,
    );

    it('flags nothing healthy: image layers, container RW and -init dirs, BuildKit dirs, live links', () => {
      expect(findings.length).toBeGreaterThan(0);
      const home = s.d.driverHome;
      const names = s.healthyDriverDirs.map((p) => path.basename(p));
      // the healthy set really holds each sort of dir
      for (const c of Object.values(s.containers)) {
        expect(names).toContain(c.mountId);
        expect(names).toContain(c.initId);
        expect(c.initId).toBe(`${c.mountId}-init`);
      }
      const bk = names.filter((n) => /^[0-9a-z]{25}$/.test(n));
      expect(bk.length).toBeGreaterThanOrEqual(3); // the committed layer and BuildKit-only snapshots
      expect(s.images['app:bk'].cacheIds.some((c) => /^[0-9a-z]{25}$/.test(c))).toBe(true);
      const healthy = [...s.healthyDriverDirs, ...s.healthyLayerDirs, ...s.healthyLinks, path.join(s.d.layerdb, 'mounts'), path.join(s.root, 'containers'), path.join(s.root, 'buildkit')];
      for (const t of HEALTHY_TAGS) for (const c of s.images[t].chainIds) expect(s.healthyLayerDirs).toContain(path.join(s.d.layerdb, 'sha256', c.slice(7)));
      const hits: string[] = [];
      for (const f of findings) {
        for (const p of f.paths) for (const h of healthy) if (inside(p, h) || inside(h, p)) hits.push(`${f.kind}: ${p} (healthy ${h})`);
        for (const img of f.affects.images) if ((HEALTHY_TAGS as readonly string[]).includes(img)) hits.push(`${f.kind} affects ${img}`);
        if (f.affects.containers.length) hits.push(`${f.kind} affects containers ${f.affects.containers.join(',')}`);
      }
      expect(hits).toEqual([]);
      // and no finding stands for a whole area of the store
      for (const f of findings) for (const p of f.paths) expect([home, s.root, path.join(home, 'l'), s.d.layerdb]).not.toContain(p);
    });

    it('human output: the summary first (every kind, errors first), what it breaks, the next command with the same --data-root', async () => {
      const r = await cli(['scan']);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe('');
      const kinds = [...new Set(findings.map((f) => f.kind))];
      const at = (re: RegExp) => r.stdout.split('\n').findIndex((l) => re.test(l));
      const summary = at(/^8 findings: 3 errors \(broken\), 5 warnings; \d+(\.\d+)? [kM]?B reclaimable\.$/);
      expect(summary).toBeGreaterThan(0);
      for (const k of kinds) {
        const n = findings.filter((f) => f.kind === k).length;
        const row = at(new RegExp(`^${k} +(error|warning) +${n} +\\S+ \\S+ +(yes|no|with --include)$`));
        expect(row, k).toBeGreaterThan(0);
        expect(row, k).toBeLessThan(summary);
        expect(at(new RegExp(`^${k} (error|warning): ${n}$`)), k).toBeGreaterThan(summary);
      }
      const sev = r.stdout
        .split('\n')
        .slice(0, summary)
        .map((l) => /^\S+ +(error|warning) /.exec(l)?.[1])
        .filter(Boolean);
      expect(sev).toEqual([...sev].sort()); // errors before warnings
      expect(r.stdout.split('\n').filter((l) => l.length > 80 && !l.includes('/'))).toEqual([]);
      expect(r.stdout).toMatch(/affects: image victim:1/);
      expect(r.stdout).toMatch(/affects: image empty:1/);
      expect(r.stdout).toContain(s.fr.removingDir);
      expect(r.stdout).toContain(s.kl.leakedDriverDir);
      expect(r.stdout).toContain(`See what a purge would do:\n  layergc purge --dry-run --data-root ${s.root}\n`);
    });

    it("explain: a tagged image's top layer and a container's dir are live, the leaked dir is garbage", async () => {
      const top = s.images['app:legacy'].chainIds.at(-1)!;
      const layer = await cli(['explain', top, '--json']);
      expect(layer.code).toBe(0);
      expect(layer.json.status).toBe('live');
      expect(layer.json.type).toBe('layer');
      expect(layer.json.because.join('\n')).toMatch(/image app:legacy uses it as layer \d of \d/);
      const human = await cli(['explain', top]);
      expect(human.stdout.split('\n')[0]).toBe(`layer ${top}: live`);
      expect(human.stdout).toContain('app:legacy');

      const c = s.containers.created;
      const dir = path.join(s.d.driverHome, c.mountId);
      const cont = await cli(['explain', dir, '--json']);
      expect(cont.code).toBe(0);
      expect(cont.json.status).toBe('live');
      expect(cont.json.because.join('\n')).toMatch(/container created \(mount-id\)/);
      const init = await cli(['explain', path.join(s.d.driverHome, c.initId), '--json']);
      expect(init.json.status).toBe('live');
      expect(init.json.because.join('\n')).toMatch(/container created \(init-id\)/);

      const leak = await cli(['explain', s.kl.leakedDriverDir, '--json']);
      expect(leak.code).toBe(1);
      expect(leak.json.status).toBe('garbage');
      expect(leak.json.findings.map((f: JsonFinding) => f.kind)).toEqual(['unreferenced-driver-dir']);
      const leakHuman = await cli(['explain', s.kl.leakedDriverDir]);
      expect(leakHuman.stdout.split('\n')[0]).toBe(`driver dir ${s.kl.leakedDriverDir}: garbage`);
    });

    it(
      'verify: every healthy layer rebuilds its DiffID; the layer whose driver data is gone is skipped, not called damaged',
      async () => {
        const r = await timed(times, 'verify --json', () => cli(['verify', '--json']));
        expect(r.json.findings).toEqual([]);
        expect(r.code).toBe(0);
        const healthy = new Set(HEALTHY_TAGS.flatMap((t) => s.images[t].chainIds));
        expect(r.json.summary.layersOk).toBe(r.json.summary.layersVerified);
        expect(r.json.summary.layersVerified).toBeGreaterThanOrEqual(healthy.size);
        expect(r.json.skipped.map((x: { chainId: string }) => x.chainId)).toContain(s.victim.chainId);
        expect(r.json.skipped.find((x: { chainId: string }) => x.chainId === s.victim.chainId).reason).toContain('is gone');
      },
      LONG,
    );

    it('exits 2 with a one-line reason for /etc and for a missing path, printing nothing on stdout', async () => {
      for (const root of ['/etc', '/nonexistent']) {
        for (const extra of [['--json'], []]) {
          const r = await runCli(['scan', '--data-root', root, ...extra]);
          expect(r.code, `${root}: ${r.stderr}`).toBe(2);
          expect(r.stdout).toBe('');
          const lines = r.stderr.split('\n').filter((l, i, a) => l !== '' || i < a.length - 1);
          expect(lines, r.stderr).toHaveLength(1);
          expect(lines[0]).toMatch(root === '/etc' ? /\/etc is not a Docker data root/ : /\/nonexistent does not exist/);
        }
      }
    });

    it(
      'changed nothing: the tree is byte for byte the same, and the daemon on it runs every healthy image',
      async () => {
        const after = snapshotTree(s.root, { dirTimes: true });
        expect(diffSnapshots(before, after)).toEqual({ onlyBefore: [], onlyAfter: [], changed: [] });
        expect(fs.existsSync(path.join(s.root, 'layergc'))).toBe(false);
        await timed(times, 'restart', () => s.d.restart());
        expect(await s.d.run('busybox:base', ['echo', 'ok'])).toBe('ok\n');
        expect(await s.d.run('app:legacy', ['cat', '/srv/index.html', '/srv/hello.txt'])).toBe('legacy\nhello from app:legacy\n');
        expect(await s.d.run('app:bk', ['cat', '/bk.txt', '/opt/bk/two.txt'])).toBe('bk\ntwo\n');
        expect((await s.d.docker(['start', '-a', 'created'])).stdout).toBe('legacy\nhello from app:legacy\n');
        // and the daemon agrees with the scan on what is broken
        const imgs = (await s.d.docker(['images', '--format', '{{.Repository}}:{{.Tag}}'])).stdout.split('\n');
        expect(imgs).toEqual(expect.arrayContaining([...HEALTHY_TAGS, 'victim:1']));
        expect(imgs).not.toContain('empty:1');
        const victim = await s.d.docker(['run', '--rm', '--pull', 'never', '--network', 'none', 'victim:1', 'true'], { allowFail: true });
        expect(victim.code).not.toBe(0);
        expect(victim.stderr).toContain(s.victim.cacheId);
      },
      LONG,
    );
  });
});
