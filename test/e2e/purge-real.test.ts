/**
 * `layergc purge` on a real damaged overlay2 data root made by a real dockerd 20.10 and 28.5
 * (test/e2e/scenario.ts): safe, crash-resumable removal, proven by the daemon that runs on the result.
 *
 * - --dry-run leaves the tree byte for byte as it was;
 * - the failed removal's file is still immutable: that item fails naming the file and `chattr -i`,
 *   everything else goes; after `chattr -i` a second purge finishes it; the daemon then runs every
 *   healthy image, starts the created container, hits the BuildKit cache, and its clean shutdown
 *   finds nothing for moby's orphan GC; du of the data root shrank by what purge reported;
 * - with the daemon running: a fresh failed-removal orphan goes, a young leaked dir is kept (--min-age)
 *   while containers keep running, and --min-age 0 removes it;
 * - crash and resume: for every fault point (SIGKILL via LAYERGC_TEST_CRASH_AT) on a `cp -a` copy of
 *   the damaged root, a second purge finishes with exit 0, leaves no garbage and touches nothing live;
 *   a daemon started on some of the copies runs the images and finds nothing to GC.
 *
 * Observed here (kernel 6.18, ext4 /tmp), the same on 20.10.24 and 28.5.2: ~25 s per version
 * (setup ~7-8 s; each purge ~0.15-0.3 s; a daemon start/stop on a copy ~1.5-2.5 s with its runs).
 * - the emptied entry lost its cache-id, so the two unclaimed dirs (the leaked dir and the entry's own)
 *   may be its only copy: every default purge skips them as kept; `purge --include broken` then
 *   removes empty:1 and victim:1 with their broken layers, and the kept dirs with them.
 * - purge 1 removes 2 items (write-set, victim's dangling l/ link) and fails the orphan after staging its driver dir as
 *   `<id>-layergc-removing`, naming `<staged>/diff/stuff/a/1.txt` and `chattr -i '<that path>'`;
 *   purge 2 removes the `-removing` entry and the staged dir. du of the root shrinks by the reported
 *   reclaimedBytes less 8 kB (the journal and lock dir layergc leaves in <root>/layergc).
 * - the crash points are first reached by the orphan (the first item); `after-intent:2` stops at the
 *   2nd item's intent and `remove-tree:3` in the 3rd tree removal.
 *   Every resume logs the lock takeover and finishes with exit 0.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TestDaemon, chattr, clearImmutable, dockerAvailable, mountsUnder, type DockerVersion } from '../helpers/dockerd.js';
import { driverDirFor, failedRemoval, imageTopChain, layerCacheId } from '../helpers/damage.js';
import { runCli, runCliAsync, snapshotTree, diffSnapshots, type CliResult } from '../helpers/synthetic.js';
import { GARBAGE_KINDS } from '../../src/findings/types.js';
import { BK_DOCKERFILE, HEALTHY_TAGS, buildCapture, buildScenario, copyRoot, du, leftovers, logSinceLastStart, timed, type Scenario } from './scenario.js';

const LONG = 240_000;
const VERSIONS: DockerVersion[] = ['20.10', '28.5'];
const CRASH_STEPS = ['after-intent', 'before-rename', 'after-rename', 'after-stage', 'remove-tree', 'after-driver', 'after-metadata'];
/** later items too: the 2nd item's intent line and the 3rd tree removal */
const EXTRA_CRASH_STEPS = ['after-intent:2', 'remove-tree:3'];
/** a daemon is started on the copies of these steps; the others are checked on disk */
const DAEMON_STEPS = new Set(['after-rename', 'after-driver']);
const BROKEN_KINDS = ['image-missing-layers', 'invalid-layer-metadata', 'missing-driver-data'];

interface JsonAction {
  kind: string;
  paths: string[];
  bytes: number;
  status: string;
  reason?: string;
}

/** Everything live in a root (relative paths, so a copy compares with its original): byte for byte. */
function liveSnapshot(s: Scenario, root: string, opts: { images?: boolean } = {}): Map<string, string> {
  const rel = (p: string) => path.relative(s.root, p);
  const targets = [
    ...s.healthyDriverDirs.map(rel),
    ...s.healthyLayerDirs.map(rel),
    ...s.healthyLinks.map(rel),
    'image/overlay2/layerdb/mounts',
    // a repair removes the broken images' configs and tags: compare those only where none runs
    ...(opts.images === false ? [] : ['image/overlay2/imagedb', 'image/overlay2/repositories.json']),
    'containers',
    'buildkit',
  ];
  const out = new Map<string, string>();
  for (const t of targets) for (const [k, v] of snapshotTree(path.join(root, t), { dirTimes: true })) out.set(k ? `${t}/${k}` : t, v);
  return out;
}

const noDiff = { onlyBefore: [], onlyAfter: [], changed: [] };

/** The dirs kept because a layer lost its cache-id: skipped, pointing at `purge --include broken`. */
function expectKept(actions: JsonAction[], dirs: string[]): void {
  const kept = actions.filter((a) => a.status === 'skipped');
  expect(kept.map((a) => a.kind)).toEqual(dirs.map(() => 'unreferenced-driver-dir'));
  expect(kept.map((a) => a.paths[0]).sort()).toEqual([...dirs].sort());
  for (const a of kept) expect(a.reason).toMatch(/lost its cache-id.*--include broken/);
}

async function runsHealthyImages(d: TestDaemon): Promise<void> {
  expect(await d.run('busybox:base', ['echo', 'ok'])).toBe('ok\n');
  expect(await d.run('app:legacy', ['cat', '/srv/index.html', '/srv/hello.txt'])).toBe('legacy\nhello from app:legacy\n');
  expect(await d.run('app:bk', ['cat', '/bk.txt', '/opt/bk/two.txt'])).toBe('bk\ntwo\n');
}

describe.each(VERSIONS)('purge on a real damaged overlay2 root (dockerd %s)', (version) => {
  describe.skipIf(!dockerAvailable(version))('overlay2', () => {
    let s: Scenario;
    let golden = '';
    let goldenLive: Map<string, string>;
    const times: Record<string, number> = {};
    const purge = (root: string, extra: string[] = [], env?: Record<string, string>) => runCli(['purge', '--data-root', root, '--json', ...extra], { env });

    beforeAll(async () => {
      s = await timed(times, 'scenario', () => buildScenario(version, times));
      // the crash tests start from copies of the damaged root as it is now, file made mutable
      golden = await timed(times, 'golden copy', () => copyRoot(s.root, path.join(s.d.workDir, 'golden')));
      clearImmutable(golden);
      goldenLive = liveSnapshot(s, golden);
      expect(diffSnapshots(liveSnapshot(s, s.root), goldenLive)).toEqual(noDiff);
    }, LONG);

    afterAll(async () => {
      if (s) await timed(times, 'destroy', () => s.d.destroy());
      console.log(`[purge-real ${version}] times (ms): ${JSON.stringify(times)}`);
    }, LONG);

    it(
      '--dry-run leaves the tree byte for byte as it was',
      async () => {
        const before = snapshotTree(s.root, { dirTimes: true });
        const r = await timed(times, 'dry-run', () => purge(s.root, ['--dry-run']));
        expect(r.code, r.stderr).toBe(0);
        expect(r.json.dryRun).toBe(true);
        expect(r.json.daemonRunning).toBe(false);
        const actions = r.json.actions as JsonAction[];
        const planned = actions.filter((a) => a.status === 'planned');
        expect(planned.map((a) => a.kind).sort()).toEqual(['dangling-link', 'removing-orphan', 'stale-write-set']);
        // the emptied entry lost its cache-id: every unclaimed dir may be its only copy (the killed
        // load's leaked dir and its own), kept until `purge --include broken` proves or removes it
        expectKept(actions, [s.kl.leakedDriverDir, s.empty.driverDir]);
        expect(r.json.summary.planned).toBe(3);
        expect(r.json.summary.plannedBytes).toBeGreaterThan(0);
        expect(r.json.summary.reclaimedBytes).toBe(0);
        const human = runCli(['purge', '--data-root', s.root, '--dry-run']);
        expect(human.code).toBe(0);
        expect(human.stdout).toMatch(/Would remove 3 items, .*Nothing was changed\./);
        expect(diffSnapshots(before, snapshotTree(s.root, { dirTimes: true }))).toEqual(noDiff);
        expect(fs.existsSync(path.join(s.root, 'layergc'))).toBe(false);
      },
      LONG,
    );

    let reclaimed = 0;
    let duBefore = 0;

    it(
      'an immutable file fails only its own item, naming the file and chattr -i; after chattr -i the next purge finishes',
      async () => {
        const liveBefore = liveSnapshot(s, s.root);
        duBefore = du([s.root]);
        const r1 = await timed(times, 'purge 1', () => purge(s.root, ['--yes']));
        expect(r1.code, r1.stderr).toBe(1);
        expect(r1.json.dryRun).toBe(false);
        const actions = r1.json.actions as JsonAction[];
        const failed = actions.filter((a) => a.status === 'failed');
        expect(failed).toHaveLength(1);
        expect(failed[0].kind).toBe('removing-orphan');
        // the driver dir was staged (renamed) before its removal failed: the file is named there
        const staged = `${s.fr.driverDir}-layergc-removing`;
        const immutable = path.join(staged, path.relative(s.fr.driverDir, s.fr.immutableFile));
        expect(failed[0].reason).toContain(immutable);
        expect(failed[0].reason).toContain('chattr -i');
        expect(failed[0].reason).toContain(`chattr -i '${immutable}'`);
        expect(r1.stderr).toContain(immutable); // logged too
        expect(
          actions
            .filter((a) => a.status === 'removed')
            .map((a) => a.kind)
            .sort(),
        ).toEqual(['dangling-link', 'stale-write-set']);
        expectKept(actions, [s.kl.leakedDriverDir, s.empty.driverDir]);
        expect(r1.json.summary).toMatchObject({ removed: 2, failed: 1, skipped: 2 });
        for (const p of [s.kl.writeSetDir, s.victim.danglingLink!, s.fr.driverDir]) expect(fs.existsSync(p), p).toBe(false);
        for (const p of [s.kl.leakedDriverDir, s.klLink, s.empty.driverDir, s.empty.link]) expect(fs.existsSync(p), p).toBe(true);
        // only the immutable file and the dirs above it are left of the orphan's driver dir
        expect(fs.existsSync(s.fr.removingDir)).toBe(true);
        expect(fs.existsSync(immutable)).toBe(true);
        expect(diffSnapshots(liveBefore, liveSnapshot(s, s.root))).toEqual(noDiff);
        reclaimed += r1.json.summary.reclaimedBytes;

        chattr(immutable, '-i');
        const r2 = await timed(times, 'purge 2', () => purge(s.root, ['--yes']));
        expect(r2.code, r2.stderr).toBe(0);
        const a2 = r2.json.actions as JsonAction[];
        expect(a2.filter((a) => a.status !== 'skipped').map((a) => [a.kind, a.status])).toEqual([['removing-orphan', 'removed']]);
        expectKept(a2, [s.kl.leakedDriverDir, s.empty.driverDir]);
        expect(a2.find((a) => a.status === 'removed')!.paths).toEqual([s.fr.removingDir, staged]);
        reclaimed += r2.json.summary.reclaimedBytes;
        expect(fs.existsSync(s.fr.removingDir)).toBe(false);
        expect(fs.existsSync(staged)).toBe(false);
        expect(leftovers(s.root)).toEqual({ removing: [], staged: [], writeSets: [] });
        expect(diffSnapshots(liveBefore, liveSnapshot(s, s.root))).toEqual(noDiff);

        // --include broken: the emptied entry cannot be restored (no diff left), so it goes with
        // empty:1, victim:1 goes with its layer whose data is gone, and the dirs kept for the lost
        // cache-id are garbage now and go in the same run
        const r3 = await timed(times, 'purge broken', () => purge(s.root, ['--yes', '--include', 'broken']));
        expect(r3.code, r3.stderr).toBe(0);
        reclaimed += r3.json.summary.reclaimedBytes;
        for (const p of [s.kl.leakedDriverDir, s.klLink, s.empty.driverDir, s.empty.link, s.empty.dir]) expect(fs.existsSync(p), p).toBe(false);
        expect(diffSnapshots(liveSnapshot(s, golden, { images: false }), liveSnapshot(s, s.root, { images: false }))).toEqual(noDiff);

        // the space came back: du of the data root shrank by what purge says it freed (the journal
        // and lock dir it leaves weigh a few kB)
        const duAfter = du([s.root]);
        expect(reclaimed).toBeGreaterThan(100_000_000);
        expect(duBefore - duAfter).toBeGreaterThanOrEqual(reclaimed - 64 * 1024);
        expect(duBefore - duAfter).toBeLessThanOrEqual(reclaimed);
        console.log(`[purge-real ${version}] reclaimed ${reclaimed} bytes; du ${duBefore} -> ${duAfter} (${duBefore - duAfter})`);

        const scan = runCli(['scan', '--data-root', s.root, '--json']);
        expect(scan.json.findings.map((f: { kind: string }) => f.kind).sort()).toEqual([]);
      },
      LONG,
    );

    it(
      'the daemon on the purged root runs every image, starts the created container, hits the BuildKit cache, and finds nothing to GC',
      async () => {
        await timed(times, 'restart', () => s.d.restart());
        await runsHealthyImages(s.d);
        expect((await s.d.docker(['start', '-a', 'created'])).stdout).toBe('legacy\nhello from app:legacy\n');
        const imgs = (await s.d.docker(['images', '--format', '{{.Repository}}:{{.Tag}}'])).stdout.split('\n');
        expect(imgs).toEqual(expect.arrayContaining([...HEALTHY_TAGS]));
        const rebuild = await timed(times, 'bk rebuild', () => buildCapture(s.d, 'app:bk', BK_DOCKERFILE, { buildkit: true }));
        expect(rebuild.id).toBe(s.images['app:bk'].id);
        expect(rebuild.output).toMatch(/CACHED/);

        expect(leftovers(s.root).removing).toEqual([]);
        await timed(times, 'stop', () => s.d.stop());
        const log = logSinceLastStart(s.d);
        expect(log).not.toMatch(/cannot remove orphan layer/);
        expect(leftovers(s.root).removing).toEqual([]);
        await s.d.restart();
        expect(await s.d.run('busybox:base', ['echo', 'again'])).toBe('again\n');
      },
      LONG,
    );

    it(
      'with the daemon running: removes a failed-removal orphan, keeps a young leaked dir (--min-age), containers keep running; --min-age 0 removes it',
      async () => {
        expect(s.d.running).toBe(true);
        await s.d.docker(['run', '-d', '--name', 'during', '--pull', 'never', '--network', 'none', 'app:legacy', 'sleep', '600']);
        await s.d.build('doomed:2', 'FROM busybox:base\nCOPY more/ /more/\n', { files: { 'more/x/1.txt': 'x1\n', 'more/y.txt': 'y\n' } });
        const fr2 = await failedRemoval(s.d, 'doomed:2');
        chattr(fr2.immutableFile, '-i');
        const young = path.join(s.d.driverHome, randomBytes(32).toString('hex'));
        fs.cpSync(s.healthyDriverDirs.find((p) => path.basename(p) === s.images['busybox:base'].cacheIds[0])!, young, { recursive: true, verbatimSymlinks: true });

        // scan sees the daemon, and with a container running flags only the new damage
        const scan = await runCliAsync(['scan', '--data-root', s.root, '--json']);
        expect(scan.json.daemonRunning).toBe(true);
        const found = scan.json.findings as { kind: string; paths: string[] }[];
        expect(found.map((f) => f.kind).sort()).toEqual(['removing-orphan', 'unreferenced-driver-dir']);
        expect(found.find((f) => f.kind === 'unreferenced-driver-dir')!.paths).toEqual([young]);

        // a container runs while purge runs
        const [r, during] = await Promise.all([timed(times, 'purge running', () => runCliAsync(['purge', '--data-root', s.root, '--json', '--yes'])), s.d.run('app:bk', ['cat', '/bk.txt'])]);
        expect(during).toBe('bk\n');
        expect(r.code, r.stderr).toBe(0);
        expect(r.json.daemonRunning).toBe(true);
        // the container run beside the purge may have its own dirs listed mid-create: young, skipped,
        // and gone with the container (--rm); nothing else may appear
        const all = r.json.actions as JsonAction[];
        const transient = all.filter((a) => a.status === 'skipped' && !a.paths.includes(young) && /younger than --min-age/.test(a.reason ?? ''));
        for (const a of transient) for (const p of a.paths) expect(fs.existsSync(p), p).toBe(false);
        const actions = all.filter((a) => !transient.includes(a));
        expect(actions.map((a) => [a.kind, a.status])).toEqual([
          ['removing-orphan', 'removed'],
          ['unreferenced-driver-dir', 'skipped'],
        ]);
        expect(actions[0].paths).toEqual([fr2.removingDir, fr2.driverDir]);
        expect(actions[1].paths).toEqual([young]);
        expect(actions[1].reason).toMatch(/younger than --min-age/);
        expect(fs.existsSync(fr2.removingDir)).toBe(false);
        expect(fs.existsSync(fr2.driverDir)).toBe(false);
        expect(fs.existsSync(young)).toBe(true);

        expect((await s.d.docker(['exec', 'during', 'cat', '/srv/index.html'])).stdout).toBe('legacy\n');
        await runsHealthyImages(s.d);

        const r0 = await timed(times, 'purge min-age 0', () => runCliAsync(['purge', '--data-root', s.root, '--json', '--yes', '--min-age', '0']));
        expect(r0.code, r0.stderr).toBe(0);
        expect((r0.json.actions as JsonAction[]).map((a) => [a.kind, a.status, a.paths[0]])).toEqual([['unreferenced-driver-dir', 'removed', young]]);
        expect(fs.existsSync(young)).toBe(false);
        expect((await s.d.docker(['exec', 'during', 'cat', '/srv/hello.txt'])).stdout).toBe('hello from app:legacy\n');
        await runsHealthyImages(s.d);
        await s.d.docker(['rm', '-f', 'during']);
        await timed(times, 'stop 2', () => s.d.stop());
        expect(logSinceLastStart(s.d)).not.toMatch(/cannot remove orphan layer/);
        expect(leftovers(s.root)).toEqual({ removing: [], staged: [], writeSets: [] });
      },
      LONG,
    );

    it(
      'an immutable driver dir (chattr +i on the layer dir itself) fails naming the dir and chattr -i; after chattr -i the next purge finishes',
      async () => {
        await s.d.restart();
        await s.d.build('doomed:3', 'FROM busybox:base\nCOPY imm/ /imm/\n', { files: { 'imm/1.txt': 'one\n', 'imm/2.txt': 'two\n' } });
        const dir = driverDirFor(s.d, layerCacheId(s.d, await imageTopChain(s.d, 'doomed:3')));
        chattr(dir, '+i');
        let reason = '';
        try {
          // moby: "unlinkat <dir>/lower: operation not permitted"; the layer is left as a -removing orphan
          const rmi = await s.d.docker(['rmi', '-f', 'doomed:3'], { allowFail: true });
          expect(rmi.stderr).toMatch(/operation not permitted/);
          await s.d.stop();
          expect(leftovers(s.root).removing).toHaveLength(1);
          const r1 = purge(s.root, ['--yes']);
          expect(r1.code, r1.stderr).toBe(1);
          const failed = (r1.json.actions as JsonAction[]).filter((a) => a.status === 'failed');
          expect(failed.map((a) => [a.kind, a.paths[1]])).toEqual([['removing-orphan', dir]]);
          reason = failed[0].reason ?? '';
          expect(fs.existsSync(dir)).toBe(true);
        } finally {
          if (fs.existsSync(dir)) chattr(dir, '-i');
        }
        const r2 = purge(s.root, ['--yes']);
        expect(r2.code, r2.stderr).toBe(0);
        expect(leftovers(s.root)).toEqual({ removing: [], staged: [], writeSets: [] });
        expect(fs.existsSync(dir)).toBe(false);
        // what the operator is told: the dir and how to clear its attribute (as for an immutable file)
        expect(reason).toContain(dir);
        expect(reason, 'the failed rename of an immutable driver dir should say how to clear the attribute').toContain(`chattr -i '${dir}'`);
      },
      LONG,
    );

    describe('crash (SIGKILL) and resume, on copies of the damaged root', () => {
      it.each([...CRASH_STEPS, ...EXTRA_CRASH_STEPS])(
        'at %s',
        async (step) => {
          const copy = copyRoot(golden, path.join(s.d.workDir, `crash-${step.replace(/\W/g, '-')}`));
          try {
            expect(mountsUnder(copy)).toEqual([]);
            const r1: CliResult = await timed(times, `crash ${step}`, () => purge(copy, ['--yes'], { LAYERGC_TEST_CRASH_AT: step }));
            expect(r1.signal, `${step}: exit ${r1.code} ${r1.stderr}`).toBe('SIGKILL');
            expect(r1.stdout).toBe('');
            const r2 = await timed(times, `resume ${step}`, () => purge(copy, ['--yes']));
            expect(r2.code, r2.stderr).toBe(0);
            expect(r2.json.summary.failed).toBe(0);
            expect(r2.stderr).toMatch(/took over the lock of a layergc that died/);

            // no garbage left: only the broken kinds, which purge never touches
            const scan = runCli(['scan', '--data-root', copy, '--json']);
            const kinds = (scan.json.findings as { kind: string }[]).map((f) => f.kind).sort();
            expect(kinds).toEqual([...BROKEN_KINDS, 'unreferenced-driver-dir', 'unreferenced-driver-dir'].sort());
            const reclaimable = (scan.json.findings as { kind: string; reclaimable: boolean }[]).filter((f) => f.reclaimable);
            expect(reclaimable.filter((f) => (GARBAGE_KINDS as readonly string[]).includes(f.kind))).toEqual([]);
            expect(leftovers(copy)).toEqual({ removing: [], staged: [], writeSets: [] });
            const gone = [s.fr.driverDir, s.kl.writeSetDir, s.victim.danglingLink!].map((p) => path.join(copy, path.relative(s.root, p)));
            for (const p of gone) expect(fs.existsSync(p), p).toBe(false);
            // nothing live was touched
            expect(diffSnapshots(goldenLive, liveSnapshot(s, copy))).toEqual(noDiff);

            if (DAEMON_STEPS.has(step)) {
              const d = await timed(times, `daemon ${step}`, () => TestDaemon.start({ version, dataRoot: copy }));
              try {
                await runsHealthyImages(d);
                const imgs = (await d.docker(['images', '--format', '{{.Repository}}:{{.Tag}}'])).stdout.split('\n');
                expect(imgs).toEqual(expect.arrayContaining([...HEALTHY_TAGS]));
                await d.stop();
                expect(logSinceLastStart(d)).not.toMatch(/cannot remove orphan layer/);
                expect(leftovers(copy).removing).toEqual([]);
              } finally {
                await d.destroy();
              }
              expect(mountsUnder(copy)).toEqual([]);
            }
          } finally {
            fs.rmSync(copy, { recursive: true, force: true });
          }
        },
        LONG,
      );
    });
  });
});
