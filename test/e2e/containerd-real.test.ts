/**
 * The containerd image store on a real Docker 28.5 root (daemon.json features.containerd-snapshotter,
 * dockerd's managed containerd 1.6, private sockets, no pulls), damaged the ways
 * containerd-store-format.md §7 reproduced: an immutable file during `docker rm` (F1) and during
 * `docker rmi` (F2), `kill -9`
 * during `docker load` (F4), an emptied ingest `ref` (F8), a stray name in blobs/ (F9) and a
 * truncated blob (F10). The daemon is restarted cleanly first (the leftovers survive it), then
 * stopped, and layergc scans, verifies and explains the root; purge removes the files and writes
 * meta.db again without the dead lease, restore puts the old file back, and containerd itself opens
 * both files; its GC then frees what the lease held.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestDaemon, chattr, dockerAvailable } from '../helpers/dockerd.js';
import { runCli } from '../helpers/synthetic.js';
import { pausedCli } from '../helpers/signal.js';
import { du } from './scenario.js';
import { readMetaDb } from '../../src/store/containerd/meta.js';
import { writeBbolt } from '../../src/store/bbolt-write.js';

const LONG = 300_000;

interface F {
  kind: string;
  paths: string[];
  bytes: number;
  reclaimable: boolean;
  reason: string;
  affects: { images: string[]; containers: string[] };
  containerd?: Record<string, string>;
}

/** What a daemon's run leaves once stopped (moby's and BuildKit's expiring leases outlive it) is only dead leases; purge drops them. */
function dropRunLeases(cli: (args: string[]) => ReturnType<typeof runCli>): void {
  const left = cli(['scan', '--json']).json.findings as F[];
  expect(
    left.filter((f) => f.kind !== 'containerd-dead-lease'),
    JSON.stringify(left, null, 2),
  ).toEqual([]);
  if (left.length) expect(cli(['purge', '--yes', '--json']).json.containerdLeases.status).toBe('rewritten');
}

describe.skipIf(!dockerAvailable('28.5'))('the containerd image store on a real dockerd 28.5', () => {
  let d: TestDaemon;
  let root: string; // containerd root
  let snaps: string;
  let lockedFile = '';
  let lockedDir = '';
  let rmiLockedFile = '';
  let rmiLockedDir = '';
  let emptiedIngest = '';
  let loadIngest = '';
  let stray = '';
  let truncated = '';
  let findings: F[] = [];
  let metaDb = '';
  let metaSha = '';
  let loadLease = '';
  const cli = (args: string[]) => runCli([...args, '--data-root', d.dataRoot]);
  const sha = (p: string) => createHash('sha256').update(fs.readFileSync(p)).digest('hex');
  /** the leases of namespace moby, as the running containerd lists them */
  const leasesNow = () =>
    execFileSync('ctr', ['-a', path.join(d.execRoot, 'containerd', 'containerd.sock'), '-n', 'moby', 'leases', 'ls', '-q'], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean);

  beforeAll(async () => {
    d = await TestDaemon.start({ version: '28.5', containerdStore: true });
    root = path.join(d.dataRoot, 'containerd', 'daemon');
    snaps = path.join(root, 'io.containerd.snapshotter.v1.overlayfs', 'snapshots');
    const ingest = path.join(root, 'io.containerd.content.v1.content', 'ingest');
    const blobs = path.join(root, 'io.containerd.content.v1.content', 'blobs', 'sha256');
    await d.importBusybox('busybox:base');
    await d.build('app:1', 'FROM busybox:base\nRUN dd if=/dev/urandom of=/r bs=1k count=3000\nRUN echo hi > /hi\n');
    await d.build('bk:1', 'FROM busybox:base\nRUN echo bk > /bk.txt\n', { buildkit: true });
    await d.docker(['create', '--name', 'c1', '--network', 'none', 'app:1', 'cat', '/hi']);

    // F1: an immutable file in a container's upperdir during `docker rm`
    await d.docker(['run', '--name', 'w1', '--network', 'none', 'busybox:base', 'dd', 'if=/dev/zero', 'of=/locked', 'bs=1M', 'count=4']);
    const dirs = fs.readdirSync(snaps).filter((n) => fs.existsSync(path.join(snaps, n, 'fs', 'locked')));
    expect(dirs).toHaveLength(1);
    lockedDir = path.join(snaps, dirs[0]);
    lockedFile = path.join(lockedDir, 'fs', 'locked');
    chattr(lockedFile, '+i');
    await d.docker(['rm', 'w1']);
    expect(fs.existsSync(lockedFile)).toBe(true);

    // F2: an immutable file in an image's committed layer during `docker rmi`
    await d.build('victim:1', 'FROM busybox:base\nRUN mkdir /data && dd if=/dev/zero of=/data/locked bs=1M count=2\n');
    const vdirs = fs.readdirSync(snaps).filter((n) => fs.existsSync(path.join(snaps, n, 'fs', 'data', 'locked')));
    expect(vdirs).toHaveLength(1);
    rmiLockedDir = path.join(snaps, vdirs[0]);
    rmiLockedFile = path.join(rmiLockedDir, 'fs', 'data', 'locked');
    chattr(rmiLockedFile, '+i');
    await d.docker(['rmi', 'victim:1']);

    // F4: kill -9 of dockerd and containerd while `docker load` writes a layer blob
    await d.build('big:1', 'FROM busybox:base\nRUN dd if=/dev/urandom of=/big bs=1M count=60\n');
    const tar = path.join(d.workDir, 'big.tar');
    await d.docker(['save', '-o', tar, 'big:1']);
    await d.docker(['rmi', 'big:1']);
    const load = d.docker(['load', '-i', tar], { allowFail: true });
    const deadline = Date.now() + 60_000;
    for (;;) {
      const hit = fs.readdirSync(ingest).find((n) => (fs.statSync(path.join(ingest, n, 'data'), { throwIfNoEntry: false })?.size ?? 0) > 20 << 20);
      if (hit) {
        loadIngest = path.join(ingest, hit);
        break;
      }
      if (Date.now() > deadline) throw new Error('docker load never wrote 20 MiB of a layer');
      await sleep(10);
    }
    await d.kill();
    await load;
    await d.restart(); // the leftovers survive a clean restart
    await d.stop();
    expect(fs.existsSync(loadIngest)).toBe(true);

    // F8: an ingest whose ref was emptied (a power cut after os.WriteFile without fsync)
    emptiedIngest = path.join(ingest, createHash('sha256').update('moby/9/tar-blobs/sha256/lost').digest('hex'));
    fs.cpSync(loadIngest, emptiedIngest, { recursive: true });
    fs.writeFileSync(path.join(emptiedIngest, 'ref'), '');
    // F9: a stray name in blobs/sha256
    stray = path.join(blobs, '0123-not-a-digest');
    fs.writeFileSync(stray, 'stray');
    // F10: app:1's largest layer blob truncated to half
    const meta = await readMetaDb(path.join(root, 'io.containerd.metadata.v1.bolt', 'meta.db'));
    const moby = meta.namespaces.find((n) => n.name === 'moby')!;
    const manifest = moby.blobs.find((b) => b.digest === moby.images.find((i) => i.name === 'docker.io/library/app:1')!.target)!;
    const layers = [...manifest.labels].filter(([k]) => /^containerd\.io\/gc\.ref\.content\.(l\.)?\d+$/.test(k)).map(([, v]) => path.join(blobs, v.slice(7)));
    truncated = layers.sort((a, b) => fs.statSync(b).size - fs.statSync(a).size)[0];
    fs.chmodSync(truncated, 0o644);
    fs.truncateSync(truncated, Math.floor(fs.statSync(truncated).size / 2));

    const r = cli(['scan', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(1);
    findings = r.json.findings as F[];
    metaDb = path.join(root, 'io.containerd.metadata.v1.bolt', 'meta.db');
    metaSha = sha(metaDb);
    loadLease = findings.find((f) => f.kind === 'containerd-dead-lease')!.containerd!.lease;
  }, LONG);

  afterAll(async () => {
    for (const f of [lockedFile, rmiLockedFile].filter(Boolean)) {
      try {
        chattr(f, '-i');
      } catch {
        /* gone */
      }
    }
    await d?.destroy();
  }, LONG);

  const of = (kind: string) => findings.filter((f) => f.kind === kind);

  it('reports each leftover with its bytes (= du) and nothing healthy', () => {
    expect(findings.map((f) => f.kind).sort()).toEqual(
      ['containerd-dead-lease', 'containerd-orphan-ingest', 'containerd-orphan-snapshot', 'containerd-orphan-snapshot', 'containerd-stray-blob-name'].sort(),
    );
    expect(of('containerd-stray-blob-name')[0].reclaimable).toBe(true);
    const orphans = of('containerd-orphan-snapshot');
    expect(orphans.map((o) => o.paths)).toEqual([[lockedDir], [rmiLockedDir]].sort((a, b) => a[0].localeCompare(b[0])));
    for (const [dir, file, size] of [
      [lockedDir, lockedFile, 4 << 20],
      [rmiLockedDir, rmiLockedFile, 2 << 20],
    ] as const) {
      const orphan = orphans.find((o) => o.paths[0] === dir)!;
      expect(orphan.bytes).toBe(du([dir]));
      expect(orphan.bytes).toBeGreaterThanOrEqual(size);
      expect(orphan.reason).toContain(`${file} (immutable); clear with: chattr -i '${file}'`);
    }
    const [ing] = of('containerd-orphan-ingest');
    expect([ing.paths, ing.bytes, ing.reason]).toEqual([[emptiedIngest], du([emptiedIngest]), expect.stringContaining('ref file is empty')]);
    const [lease] = of('containerd-dead-lease');
    expect(lease.containerd?.namespace).toBe('moby');
    expect(lease.containerd?.lease).toMatch(/^\d+-[A-Za-z0-9_-]{4}$/);
    expect(lease.reason).toContain('an expiring client lease (docker load, import, push)');
    expect(lease.paths).toContain(loadIngest);
    expect(lease.bytes).toBe(du(lease.paths));
    expect(lease.bytes).toBeGreaterThan(20 << 20);
    expect(of('containerd-stray-blob-name')[0].paths).toEqual([stray]);
  });

  it('verify names the truncated blob and the image it breaks; explain says who holds a live snapshot', () => {
    const v = cli(['verify', '--json']);
    expect(v.code).toBe(1);
    const f = v.json.findings as F[];
    expect(f.map((x) => [x.kind, x.paths])).toEqual([['containerd-blob-mismatch', [truncated]]]);
    expect(f[0].affects.images).toContain('app:1'); // and the classic builder's untagged intermediate images on it
    expect(f[0].reason).toContain('its content hashes to sha256:');
    // every unpacked layer matches its blob's tar and diff ID, but the one whose blob is truncated (left to blob verify)
    const h = cli(['verify']).stdout.replace(/\s+/g, ' ');
    console.log(`[containerd-real] ${/\d+ unpacked layers[^.]*\./.exec(h)?.[0]}`);
    expect(h).toMatch(/(\d+) unpacked layers against their blobs' tars and diff IDs: (\d+) match, 1 not verified \(1 whose blob is damaged, see its finding\)\./);
    const [, n, ok] = /(\d+) unpacked layers against their blobs' tars and diff IDs: (\d+) match/.exec(h)!;
    expect([Number(n) >= 4, Number(ok)]).toEqual([true, Number(n) - 1]);
    // every snapshot dir but the orphans and what only the dead lease holds is live (c1's is held by its
    // lease), or a record containerd's own next GC sweeps (BuildKit drops leases at its start, and a
    // daemon stopped right after that leaves their records for the next GC): never garbage for layergc
    const leased = of('containerd-dead-lease').flatMap((f) => f.paths);
    const held = fs.readdirSync(snaps).filter((n) => ![lockedDir, rmiLockedDir].includes(path.join(snaps, n)) && !leased.includes(path.join(snaps, n)));
    const explained = held.map((n) => cli(['explain', path.join(snaps, n), '--json']));
    const status = explained.map((e) =>
      e.json.status === 'garbage' && !e.json.findings.length && e.json.because.some((b: string) => /^nothing holds it: .*containerd's next GC removes it/.test(b)) ? 'gc' : e.json.status,
    );
    expect(
      status,
      JSON.stringify(
        explained.map((e) => e.json),
        null,
        2,
      ),
    ).toEqual(held.map((_, i) => (status[i] === 'gc' ? 'gc' : 'live')));
    expect(status.filter((x) => x === 'live').length).toBeGreaterThanOrEqual(6);
    expect(explained.some((e) => e.json.because.some((b: string) => /held by lease moby\/[a-f0-9]{64} of container c1/.test(b)))).toBe(true);
    expect(explained.some((e) => e.json.because.includes('held by image app:1 (namespace moby)'))).toBe(true);
  });

  it(
    'purge (after the chattr -i the report names) removes the leftover files and the stray name and writes meta.db again without the dead lease; restore of the backup puts the old file back, which containerd opens, lease and all',
    async () => {
      chattr(lockedFile, '-i');
      chattr(rmiLockedFile, '-i');
      const removable = findings.filter((f) => f.reclaimable);
      const expectBytes = du(removable.flatMap((f) => f.paths));
      const rootBefore = du([d.dataRoot]);
      const dry = cli(['purge', '--dry-run', '--json']);
      expect(dry.code).toBe(0);
      expect(dry.json.containerdLeases).toMatchObject({ status: 'planned', metaDb });
      expect(sha(metaDb)).toBe(metaSha);
      const r = cli(['purge', '--yes', '--json']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.json.summary).toMatchObject({ removed: 4, failed: 0, skipped: 0 });
      expect(r.json.summary.reclaimedBytes).toBe(expectBytes);
      for (const f of removable) for (const p of f.paths) expect(fs.existsSync(p)).toBe(false);
      // the space came back, as du sees it (the journal and the meta.db backup add a little)
      expect(rootBefore - du([d.dataRoot])).toBeGreaterThanOrEqual(expectBytes - 2 * (1 << 20));
      const cl = r.json.containerdLeases;
      expect(cl.status).toBe('rewritten');
      expect(cl.leases.map((l: { id: string }) => l.id)).toEqual(of('containerd-dead-lease').map((f) => f.containerd!.lease));
      expect(cl.bytesAtNextStart).toBe(of('containerd-dead-lease').reduce((t, f) => t + f.bytes, 0));
      expect(sha(cl.backup)).toBe(metaSha);
      expect(sha(metaDb)).not.toBe(metaSha);

      // put the old one back before containerd ever saw the new one: byte for byte, and containerd opens it
      const back = runCli(['restore', cl.backup, '--json']);
      expect([back.code, back.json.items[0].status]).toEqual([0, 'restored']);
      expect(sha(metaDb)).toBe(metaSha);
      await d.restart();
      expect(leasesNow()).toContain(loadLease);
      expect(await d.run('busybox:base', ['cat', '/etc/passwd'])).toContain('root:x:0:0');
      await d.stop();
    },
    LONG,
  );

  it(
    'purged again and restarted: containerd opens the new meta.db, its GC frees what the lease held (du), images run, c1 starts, the BuildKit rebuild is cached, and after that run is purged a rescan is clean',
    async () => {
      const before = cli(['scan', '--json']).json.findings as F[];
      const dead = before.filter((f) => f.kind === 'containerd-dead-lease' || f.kind === 'containerd-orphan-lease');
      expect(dead.map((f) => f.containerd?.lease)).toContain(loadLease);
      const held = dead.flatMap((f) => f.paths).filter((p) => p !== metaDb);
      expect(held).toContain(loadIngest);
      const heldBytes = du(held);
      const r = cli(['purge', '--yes', '--json']);
      expect(r.code).toBe(0);
      expect(r.json.containerdLeases).toMatchObject({ status: 'rewritten', bytesAtNextStart: heldBytes });
      const rootBefore = du([d.dataRoot]);

      await d.restart();
      // containerd opened the new file: the lease is gone, and its startup GC collects what only it held
      expect(leasesNow()).not.toContain(loadLease);
      const deadline = Date.now() + 60_000;
      while (held.some((p) => fs.existsSync(p)) && Date.now() < deadline) await sleep(200);
      expect(held.filter((p) => fs.existsSync(p))).toEqual([]);
      const freed = rootBefore - du([d.dataRoot]);
      console.log(`[containerd-real] meta.db rewrite: bytesAtNextStart ${heldBytes}, du of the data root shrank by ${freed} after containerd's GC`);
      expect(freed).toBeGreaterThanOrEqual(heldBytes - (1 << 20));
      for (const img of ['busybox:base', 'app:1', 'bk:1']) expect(await d.run(img, ['cat', '/etc/passwd'])).toContain('root:x:0:0');
      expect((await d.docker(['start', '-a', 'c1'])).stdout).toBe('hi\n');
      const rebuilt = await d.docker(['build', '--progress=plain', '--network=none', '-t', 'bk:1', '-'], { input: 'FROM busybox:base\nRUN echo bk > /bk.txt\n', env: { DOCKER_BUILDKIT: '1' } });
      expect(rebuilt.stderr + rebuilt.stdout).toContain('CACHED');
      await d.build('bk:2', 'FROM busybox:base\nRUN echo v > /v.txt\n', { buildkit: true }); // a step run anew reads its refs through views
      await d.stop();
      // the views BuildKit read its cache through: explained as such, with who holds them and their parents
      const views = (await readMetaDb(metaDb)).namespaces.flatMap((n) => n.snapshots).filter((sn) => sn.key.endsWith('-view'));
      expect(views.length).toBeGreaterThanOrEqual(1);
      console.log(`[containerd-real] ${views.length} BuildKit -view snapshots explained`);
      for (const v of views) {
        const e = cli(['explain', v.key, '--json']);
        expect([e.code, e.json.type, e.json.status]).toEqual([1, 'snapshot', 'garbage']);
        expect(e.json.because).toContain(`it is BuildKit's read-only view of its cache snapshot ${v.parent}, made while a build reads it, under a temporary lease moby/${v.key}`);
        expect(e.json.because.some((b: string) => b.startsWith(`its parent ${v.parent} is held by `))).toBe(true);
        expect(e.json.because.some((b: string) => b.startsWith('held by lease') || b.startsWith('nothing holds it: BuildKit released the view'))).toBe(true);
      }

      // what that run left (moby's and BuildKit's expiring leases outlive the daemon that made them) is purged the same way
      dropRunLeases(cli);
      await d.restart();
      expect((await d.docker(['start', '-a', 'c1'])).stdout).toBe('hi\n');
      await d.stop();
      const again = cli(['scan', '--json']);
      expect([again.code, again.json.findings], JSON.stringify(again.json.findings, null, 2)).toEqual([0, []]);
    },
    LONG,
  );

  it(
    'F11 and F7 made for real: a removed image snapshot dir is an error naming app:1 and c1, a run that fails on it leaves an orphan container lease; the lease rewrite waits until the dir is back, then drops it',
    async () => {
      const hiDir = fs
        .readdirSync(snaps)
        .map((n) => path.join(snaps, n))
        .find((p) => fs.existsSync(path.join(p, 'fs', 'hi')))!;
      const away = path.join(root, 'moved-away');
      fs.renameSync(hiDir, away);
      try {
        const f11 = cli(['scan', '--json']).json.findings as F[];
        expect(f11.map((f) => [f.kind, f.paths])).toEqual([['containerd-missing-snapshot', [hiDir]]]);
        expect(f11[0].affects.images).toContain('app:1');
        expect(f11[0].affects.containers).toEqual(['c1']);
        await d.restart();
        const failed = await d.docker(['run', '--pull', 'never', '--network', 'none', 'app:1', 'true'], { allowFail: true });
        expect(failed.code).not.toBe(0);
        expect(failed.stderr).toContain('no such file or directory');
        await d.stop();
        const f7 = cli(['scan', '--json']).json.findings as F[];
        const orphan = f7.filter((f) => f.kind === 'containerd-orphan-lease');
        expect(orphan).toHaveLength(1);
        expect(orphan[0].containerd?.lease).toMatch(/^[a-f0-9]{64}$/);
        // with an error in the store, purge leaves meta.db alone
        const before = sha(metaDb);
        const skipped = cli(['purge', '--yes', '--json']);
        expect([skipped.code, skipped.json.containerdLeases.status]).toEqual([0, 'skipped']);
        expect(sha(metaDb)).toBe(before);
      } finally {
        if (fs.existsSync(away)) fs.renameSync(away, hiDir);
      }
      const left = cli(['scan', '--json']).json.findings as F[];
      // the failed run's lease (F7), maybe its config-less dir, and what the run's own operations left
      expect(left.map((f) => f.kind)).toContain('containerd-orphan-lease');
      expect(left.filter((f) => !['containerd-orphan-lease', 'containerd-dead-lease', 'containerd-configless-container'].includes(f.kind))).toEqual([]);
      const r = cli(['purge', '--yes', '--json']);
      expect(r.json.containerdLeases.status).toBe('rewritten');
      await d.restart();
      expect(await d.run('app:1', ['cat', '/hi'])).toBe('hi\n');
      expect((await d.docker(['start', '-a', 'c1'])).stdout).toBe('hi\n');
      await d.stop();
      const after = cli(['scan', '--json']).json.findings as F[];
      expect(after.filter((f) => f.kind !== 'containerd-dead-lease')).toEqual([]);
      if (after.length) cli(['purge', '--yes']);
    },
    LONG,
  );

  it(
    'F13 made for real (meta.db truncated, re-created empty by containerd) and F12 (metadata.db emptied): errors, and purge removes nothing; the saved files put back, the images run',
    async () => {
      const backendDb = path.join(root, 'io.containerd.snapshotter.v1.overlayfs', 'metadata.db');
      const listing = () => execFileSync('find', [root, '-path', `${root}/io.containerd.metadata.v1.bolt`, '-prune', '-o', '-print'], { encoding: 'utf8' });
      // F13: containerd itself re-creates the empty meta.db (with nothing recorded its GC sweeps nothing)
      const savedMeta = fs.readFileSync(metaDb);
      fs.truncateSync(metaDb, 0);
      await d.restart();
      await d.stop();
      expect(fs.statSync(metaDb).size).toBeGreaterThan(0);
      // F12: an empty snapshotter database, as containerd re-creates a truncated one (not started on it
      // here: its next snapshot removal would wipe every dir, which is the failure itself)
      const savedBackend = fs.readFileSync(backendDb);
      for (const [what, count] of [
        ['meta.db', 2],
        ['metadata.db', 1],
      ] as const) {
        if (what === 'metadata.db') {
          fs.writeFileSync(metaDb, savedMeta);
          fs.writeFileSync(backendDb, writeBbolt({ sequence: 0n, entries: [] }, { pageSize: 4096, txid: 1n }));
        }
        const f = cli(['scan', '--json']).json.findings as F[];
        expect(
          f.map((x) => x.kind),
          JSON.stringify(f, null, 2),
        ).toEqual(Array(count).fill('containerd-db-mismatch'));
        const tree = listing();
        const p = cli(['purge', '--yes', '--json']);
        expect([p.code, p.json.summary.removed, p.json.summary.planned, p.json.containerdLeases?.status ?? 'none']).toEqual([0, 0, 0, expect.stringMatching(/^(none|skipped)$/)]);
        expect(listing()).toBe(tree);
      }
      fs.writeFileSync(backendDb, savedBackend);
      await d.restart();
      for (const img of ['busybox:base', 'app:1', 'bk:1']) expect(await d.run(img, ['cat', '/etc/passwd'])).toContain('root:x:0:0');
      await d.stop();
    },
    LONG,
  );
});

/**
 * The kill -9 classes of containerd-store-format.md §7 made for real on one daemon: F5 (`docker load`
 * killed while it unpacks a layer), F6 (a storm of `docker create` killed half way) and F3 (`docker
 * rmi` of a 30,000-file layer killed while containerd removes its dir). dockerd and its containerd
 * are killed together (containerd first: it is the one doing the work), each at the moment the disk
 * shows the operation under way. Then scan, purge, restart: the images run, the containers that were
 * created start, the same tar loads again, and a rescan is clean.
 */
describe.skipIf(!dockerAvailable('28.5'))('kill -9 during docker load, its unpack, docker create and docker rmi (F3, F5, F6), on a real dockerd 28.5', () => {
  let d: TestDaemon;
  let root: string;
  let snaps: string;
  let bigTar = '';
  let unpackDir = ''; // F5: the extract snapshot the load was writing
  let rmiDir = ''; // F3: the 30,000-file layer dir containerd was removing
  let rmiLeft = 0;
  let storms = 0; // F6: storms killed until one caught a create half way
  const created: string[] = []; // F6: containers whose create finished
  let findings: F[] = [];
  const cli = (args: string[]) => runCli([...args, '--data-root', d.dataRoot]);
  const numericDirs = () => new Set(fs.readdirSync(snaps).filter((n) => /^\d+$/.test(n)));
  /** SIGKILL containerd (it does the work) and dockerd at once, as a power cut would stop them */
  const killBoth = async () => {
    const pid = Number(fs.readFileSync(path.join(d.execRoot, 'containerd', 'containerd.pid'), 'utf8').trim());
    process.kill(pid, 'SIGKILL');
    await d.kill();
  };
  const until = async (what: string, ms: number, test: () => boolean) => {
    const deadline = Date.now() + ms;
    while (!test()) {
      if (Date.now() > deadline) throw new Error(`never saw ${what} within ${ms} ms`);
      await sleep(1);
    }
  };

  beforeAll(async () => {
    d = await TestDaemon.start({ version: '28.5', containerdStore: true });
    root = path.join(d.dataRoot, 'containerd', 'daemon');
    snaps = path.join(root, 'io.containerd.snapshotter.v1.overlayfs', 'snapshots');
    await d.importBusybox('busybox:base');
    await d.build('big:1', 'FROM busybox:base\nRUN dd if=/dev/urandom of=/big bs=1M count=64\n');
    await d.build('many:1', 'FROM busybox:base\nRUN for i in $(seq 150); do mkdir -p /m/$i && cd /m/$i && seq 200 | xargs touch; done\n');
    bigTar = path.join(d.workDir, 'big.tar');
    await d.docker(['save', '-o', bigTar, 'big:1']);
    await d.docker(['rmi', 'big:1']);

    // F5: kill while the load unpacks the 64 MiB layer into a new snapshot dir
    const before = numericDirs();
    const load = d.docker(['load', '-i', bigTar], { allowFail: true, timeoutMs: 60_000 });
    await until('the unpack of big:1', 60_000, () => {
      for (const n of numericDirs()) if (!before.has(n) && (fs.statSync(path.join(snaps, n, 'fs', 'big'), { throwIfNoEntry: false })?.size ?? 0) > 4 << 20) return !!(unpackDir = path.join(snaps, n));
      return false;
    });
    await killBoth();
    await load;
    await d.restart();

    // F6: eight loops of docker create, killed when a create is between its snapshots and its config.v2.json;
    // a kill that lands between two creates leaves nothing, so storms are repeated until one is caught
    const containers = path.join(d.dataRoot, 'containers');
    for (storms = 1; ; storms++) {
      let storm = true;
      const loops = Array.from({ length: 8 }, async () => {
        while (storm) {
          const r = await d.docker(['create', '--network', 'none', 'busybox:base', 'echo', 'created'], { allowFail: true });
          if (r.code === 0 && storm) created.push(r.stdout.trim());
        }
      });
      const before = created.length;
      await until('four finished creates', 60_000, () => created.length >= before + 4);
      const seen = numericDirs();
      await until(
        'a create half way',
        60_000,
        () => [...numericDirs()].some((n) => !seen.has(n)) || fs.readdirSync(containers).some((c) => !fs.existsSync(path.join(containers, c, 'config.v2.json'))),
      );
      await killBoth();
      storm = false;
      await Promise.all(loops);
      const caught = (cli(['scan', '--json']).json.findings as F[]).some((f) => f.kind === 'containerd-orphan-lease');
      await d.restart();
      if (caught) break;
      if (storms === 5) throw new Error('five docker create storms killed, none half way through a create');
    }

    // F3: kill while containerd removes the 30,000-file layer dir of many:1 (its record already gone)
    const m = (dir: string) => fs.readdirSync(path.join(dir, 'fs', 'm'), { withFileTypes: false } as never).length;
    rmiDir = [...numericDirs()].map((n) => path.join(snaps, n)).find((p) => fs.existsSync(path.join(p, 'fs', 'm', '150')))!;
    expect(m(rmiDir)).toBe(150);
    const rmi = d.docker(['rmi', 'many:1'], { allowFail: true });
    await until('the removal of the 30,000-file dir', 60_000, () => {
      try {
        return m(rmiDir) < 150;
      } catch {
        return true;
      }
    });
    await killBoth();
    await rmi;
    rmiLeft = fs.existsSync(path.join(rmiDir, 'fs', 'm')) ? m(rmiDir) : 0;

    const r = cli(['scan', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(1);
    findings = r.json.findings as F[];
    const tree = (p: string) => execFileSync('sh', ['-c', 'find "$1" -mindepth 2 -maxdepth 3 | head -4', 'sh', p], { encoding: 'utf8' }).replaceAll(`${p}/`, '').split('\n').join(' ');
    console.log(
      `[containerd-kill] F5 killed at ${du([unpackDir])} B of the unpack; F6 caught in storm ${storms} after ${created.length} creates; F3 left ${rmiLeft} of 150 dirs; found ${findings.map((f) => `${f.kind} ${f.paths.map((p) => path.basename(p)).join(',')} ${f.bytes} B${f.kind === 'containerd-orphan-snapshot' ? ` [${tree(f.paths[0])}]` : ''}`).join('; ')}`,
    );
  }, LONG);

  afterAll(async () => {
    await d?.destroy();
  }, LONG);

  const of = (kind: string) => findings.filter((f) => f.kind === kind);

  it('scan finds each for what it is, with its bytes (= du), and nothing healthy', () => {
    const kinds = new Set(findings.map((f) => f.kind));
    expect(
      [...kinds].filter((k) => !['containerd-orphan-snapshot', 'containerd-orphan-blob', 'containerd-configless-container', 'containerd-dead-lease', 'containerd-orphan-lease'].includes(k)),
    ).toEqual([]);
    for (const f of findings) expect([f.kind, f.bytes]).toEqual([f.kind, f.kind.endsWith('-lease') && f.paths[0].endsWith('meta.db') ? 0 : du(f.paths)]);
    // F3: the half-removed dir, with no record (and maybe a second one whose removal in the same GC had not begun)
    expect(of('containerd-orphan-snapshot').map((f) => f.paths[0])).toContain(rmiDir);
    // the F6 kill may also catch a snapshot mid-create: the snapshotter's new-<n> temp dir, never renamed into place
    for (const f of of('containerd-orphan-snapshot')) {
      expect(f.reason).toContain(
        path.basename(f.paths[0]).startsWith('new-')
          ? 'a snapshot being created when containerd stopped (its temp dir was never renamed)'
          : 'the overlayfs snapshotter has no record of this dir: a removal that failed or was interrupted',
      );
    }
    expect(rmiLeft).toBeLessThan(150);
    // F5: the extract snapshot, held only by the load's expiring lease
    const f5 = of('containerd-dead-lease').filter((f) => f.paths.includes(unpackDir));
    expect(f5).toHaveLength(1);
    expect(f5[0].reason).toContain('an expiring client lease (docker load, import, push)');
    expect(f5[0].containerd?.lease).toMatch(/^\d+-[A-Za-z0-9_-]{4}$/);
    // F6: leases named by containers dockerd cannot load, and maybe their config-less dirs; never a finished create's
    const f6 = of('containerd-orphan-lease');
    expect(f6.length).toBeGreaterThanOrEqual(1);
    for (const f of f6) {
      expect(f.containerd?.lease).toMatch(/^[a-f0-9]{64}$/);
      expect(created).not.toContain(f.containerd!.lease);
      expect(f.reason).toContain('a container lease that never expires, named by a container dockerd cannot load');
      expect(fs.existsSync(path.join(d.dataRoot, 'containers', f.containerd!.lease!, 'config.v2.json'))).toBe(false);
    }
    for (const f of of('containerd-configless-container')) expect(created).not.toContain(path.basename(f.paths[0]));
    for (const f of findings) for (const c of created) expect(f.paths.join(' ')).not.toContain(c);
  });

  it(
    'purge, restart: what the leases held is collected, the images run, every finished create starts, the same tar loads again, and a rescan is clean',
    async () => {
      const metaDb = path.join(root, 'io.containerd.metadata.v1.bolt', 'meta.db');
      const leased = findings.filter((f) => f.kind.endsWith('-lease')).flatMap((f) => f.paths.filter((p) => p !== metaDb));
      const rootBefore = du([d.dataRoot]);
      const r = cli(['purge', '--yes', '--json']);
      expect([r.code, r.stderr]).toEqual([0, '']);
      expect(r.json.summary).toMatchObject({ removed: findings.filter((f) => f.reclaimable).length, failed: 0 });
      expect(r.json.containerdLeases.status).toBe('rewritten');
      expect(r.json.containerdLeases.leases.map((l: { id: string }) => l.id).sort()).toEqual(
        findings
          .filter((f) => f.kind.endsWith('-lease'))
          .map((f) => f.containerd!.lease)
          .sort(),
      );
      for (const f of findings.filter((x) => x.reclaimable)) for (const p of f.paths) expect(fs.existsSync(p)).toBe(false);

      await d.restart();
      const deadline = Date.now() + 60_000;
      while (leased.some((p) => fs.existsSync(p)) && Date.now() < deadline) await sleep(200);
      expect(leased.filter((p) => fs.existsSync(p))).toEqual([]);
      const planned = r.json.summary.reclaimedBytes + r.json.containerdLeases.bytesAtNextStart;
      const freed = rootBefore - du([d.dataRoot]);
      expect(freed).toBeGreaterThanOrEqual(planned - (2 << 20)); // the journal and the meta.db backup add a little
      expect(await d.run('busybox:base', ['cat', '/etc/passwd'])).toContain('root:x:0:0');
      // F5 leaves big:1's record when the kill comes after it (the unpack runs after the import); it runs, unpacked anew
      const images = (await d.docker(['images', '--format', '{{.Repository}}:{{.Tag}}'])).stdout;
      console.log(
        `[containerd-kill] purge: ${r.json.summary.reclaimedBytes} B removed + ${r.json.containerdLeases.bytesAtNextStart} B for containerd's GC; du of the data root shrank by ${freed} B; big:1 ${images.includes('big:1') ? 'listed' : 'not listed'} after the kill`,
      );
      if (images.includes('big:1')) expect(await d.run('big:1', ['wc', '-c', '/big'])).toContain('67108864');
      expect((await d.docker(['load', '-i', bigTar])).stdout).toContain('big:1');
      expect(await d.run('big:1', ['wc', '-c', '/big'])).toContain('67108864');
      for (const c of created) expect((await d.docker(['start', '-a', c])).stdout).toBe('created\n');
      await d.stop();

      dropRunLeases(cli);
      const again = cli(['scan', '--json']);
      expect([again.code, again.json.findings], JSON.stringify(again.json.findings, null, 2)).toEqual([0, []]);
    },
    LONG,
  );
  it(
    'verify on a real unpack: an OCI image loaded with a gzip layer and a zstd layer whose tar makes data/ opaque; containerd hides the lower files, verify matches every layer (zstd through the zstd command); the opaque xattr lost or a file added is a containerd-layer-mismatch',
    async () => {
      const work = fs.mkdtempSync(path.join(d.workDir, 'oci-'));
      const stage = (name: string, files: Record<string, string>) => {
        const dir = path.join(work, name);
        for (const [p, v] of Object.entries(files)) {
          fs.mkdirSync(path.dirname(path.join(dir, p)), { recursive: true });
          fs.writeFileSync(path.join(dir, p), v);
        }
        return execFileSync('tar', ['--sort=name', '--format=posix', '--pax-option=delete=atime,delete=ctime', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '-C', dir, '-cf', '-', '.']);
      };
      const tars = [fs.readFileSync(path.join(d.workDir, 'busybox.tar')), stage('l2', { 'data/a': 'a', 'data/b': 'b' }), stage('l3', { 'data/.wh..wh..opq': '', 'data/new': 'new' })];
      const blobs = [tars[0], gzipSync(tars[1]), execFileSync('zstd', ['-c', '-q'], { input: tars[2] })];
      const types = ['tar', 'tar+gzip', 'tar+zstd'];
      const digest = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
      const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/sh'] }, rootfs: { type: 'layers', diff_ids: tars.map(digest) } }));
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digest(config), size: config.length },
          layers: blobs.map((b, i) => ({ mediaType: `application/vnd.oci.image.layer.v1.${types[i]}`, digest: digest(b), size: b.length })),
        }),
      );
      const layout = path.join(work, 'layout');
      fs.mkdirSync(path.join(layout, 'blobs', 'sha256'), { recursive: true });
      for (const b of [...blobs, config, manifest]) fs.writeFileSync(path.join(layout, 'blobs', 'sha256', digest(b).slice(7)), b);
      fs.writeFileSync(path.join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
      fs.writeFileSync(
        path.join(layout, 'index.json'),
        JSON.stringify({
          schemaVersion: 2,
          manifests: [
            {
              mediaType: 'application/vnd.oci.image.manifest.v1+json',
              digest: digest(manifest),
              size: manifest.length,
              annotations: { 'io.containerd.image.name': 'docker.io/library/zst:1', 'org.opencontainers.image.ref.name': '1' },
            },
          ],
        }),
      );
      const tar = path.join(work, 'zst.tar');
      execFileSync('tar', ['-C', layout, '-cf', tar, '.']);
      await d.restart();
      await d.docker(['load', '-i', tar]);
      expect(await d.run('zst:1', ['ls', '/data'])).toBe('new\n'); // containerd made data/ opaque: a and b are hidden
      await d.stop();
      const note = () => cli(['verify', '--json']).json.notes.find((n: string) => n.includes('unpacked layers'));
      const ok = cli(['verify', '--json']);
      expect([ok.code, ok.json.findings]).toEqual([0, []]);
      const [, n, m] = /^(\d+) unpacked layers against their blobs' tars and diff IDs: (\d+) match\.$/.exec(note())!;
      expect(Number(m)).toBe(Number(n));
      console.log(`[containerd-kill] verify after the OCI load: ${note()}`);
      const top = [...numericDirs()].map((x) => path.join(snaps, x)).find((p) => fs.existsSync(path.join(p, 'fs', 'data', 'new')))!;
      const data = path.join(top, 'fs', 'data');
      expect(execFileSync('getfattr', ['--only-values', '-n', 'trusted.overlay.opaque', data], { encoding: 'utf8' })).toBe('y');
      execFileSync('setfattr', ['-x', 'trusted.overlay.opaque', data]);
      fs.writeFileSync(path.join(data, 'extra'), 'x');
      const bad = cli(['verify', '--json']);
      expect(bad.code).toBe(1);
      expect((bad.json.findings as F[]).map((f) => [f.kind, f.paths, f.affects.images])).toEqual([['containerd-layer-mismatch', [top], ['zst:1']]]);
      expect(bad.json.findings[0].reason).toContain('data should be opaque (the overlay opaque xattr "y"): the layers below show through it');
      expect(bad.json.findings[0].reason).toContain("1 entry the layer's tar does not have: data/extra");
      execFileSync('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', data]);
      fs.rmSync(path.join(data, 'extra'));
      expect(cli(['verify', '--json']).code).toBe(0);
    },
    LONG,
  );
  it(
    "a real containerd starting while purge swaps meta.db: it opens the old file and waits for bbolt's lock, which layergc holds; the swap is undone (exit 3), containerd then runs on the file that is meta.db, lease and all; the next purge drops it",
    async () => {
      await d.restart();
      const sock = path.join(d.execRoot, 'containerd', 'containerd.sock');
      execFileSync('ctr', ['-a', sock, '-n', 'moby', 'leases', 'create', '--id', 'layergc-race']);
      await d.stop();
      const metaDb = path.join(root, 'io.containerd.metadata.v1.bolt', 'meta.db');
      const ino = fs.statSync(metaDb).ino;
      const pause = fs.mkdtempSync(path.join(d.workDir, 'pause-'));
      // paused after its last checks, lock held, right before the rename
      const run = pausedCli(['purge', '--yes', '--data-root', d.dataRoot], 'containerd-swap-checked', pause);
      await run.paused;
      const starting = d.launch();
      const opened = () =>
        fs.readdirSync('/proc').some((p) => {
          if (!/^\d+$/.test(p)) return false;
          try {
            return fs.readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'containerd' && fs.readdirSync(`/proc/${p}/fd`).some((fd) => fs.statSync(`/proc/${p}/fd/${fd}`).ino === ino);
          } catch {
            return false;
          }
        });
      const deadline = Date.now() + 60_000;
      while (!opened()) {
        if (Date.now() > deadline) throw new Error('containerd never opened meta.db');
        await sleep(20);
      }
      run.resume();
      const r = await run.done;
      expect([r.code, r.stderr]).toEqual([3, expect.stringContaining('(a containerd starting?); the rewrite was undone: meta.db is the old file again')]);
      await starting;
      expect(fs.statSync(metaDb).ino).toBe(ino);
      const leases = execFileSync('ctr', ['-a', sock, '-n', 'moby', 'leases', 'ls', '-q'], { encoding: 'utf8' });
      expect(leases.split('\n')).toContain('layergc-race');
      expect(await d.run('busybox:base', ['cat', '/etc/passwd'])).toContain('root:x:0:0');
      await d.stop();
      const p = cli(['purge', '--yes', '--json']);
      expect([p.code, p.json.containerdLeases.status]).toEqual([0, 'rewritten']);
      expect(p.json.containerdLeases.leases.map((l: { id: string }) => l.id)).toContain('layergc-race');
      await d.restart();
      expect(execFileSync('ctr', ['-a', sock, '-n', 'moby', 'leases', 'ls', '-q'], { encoding: 'utf8' }).split('\n')).not.toContain('layergc-race');
      await d.stop();
    },
    LONG,
  );
});
