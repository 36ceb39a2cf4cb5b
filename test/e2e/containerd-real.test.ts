/**
 * The containerd image store on a real Docker 28.5 root (daemon.json features.containerd-snapshotter,
 * dockerd's managed containerd 1.6, private sockets, no pulls), damaged the ways
 * containerd-store-format.md §7 reproduced: an immutable file during `docker rm` (F1), `kill -9`
 * during `docker load` (F4), an emptied ingest `ref` (F8), a stray name in blobs/ (F9) and a
 * truncated blob (F10). The daemon is restarted cleanly first (the leftovers survive it), then
 * stopped, and layergc scans, verifies and explains the root.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestDaemon, chattr, dockerAvailable } from '../helpers/dockerd.js';
import { runCli } from '../helpers/synthetic.js';
import { du } from './scenario.js';
import { readMetaDb } from '../../src/store/containerd/meta.js';

const LONG = 300_000;

interface F { kind: string; paths: string[]; bytes: number; reclaimable: boolean; reason: string; affects: { images: string[]; containers: string[] }; containerd?: Record<string, string> }

describe.skipIf(!dockerAvailable('28.5'))('the containerd image store on a real dockerd 28.5', () => {
  let d: TestDaemon;
  let root: string; // containerd root
  let snaps: string;
  let lockedFile = '';
  let lockedDir = '';
  let emptiedIngest = '';
  let loadIngest = '';
  let stray = '';
  let truncated = '';
  let findings: F[] = [];
  const cli = (args: string[]) => runCli([...args, '--data-root', d.dataRoot]);

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
  }, LONG);

  afterAll(async () => {
    if (lockedFile) {
      try { chattr(lockedFile, '-i'); } catch { /* gone */ }
    }
    await d?.destroy();
  }, LONG);

  const of = (kind: string) => findings.filter((f) => f.kind === kind);

  it('reports each leftover with its bytes (= du) and nothing healthy', () => {
    expect(findings.map((f) => f.kind).sort()).toEqual(['containerd-dead-lease', 'containerd-orphan-ingest', 'containerd-orphan-snapshot', 'containerd-stray-blob-name'].sort());
    const [orphan] = of('containerd-orphan-snapshot');
    expect(orphan.paths).toEqual([lockedDir]);
    expect(orphan.bytes).toBe(du([lockedDir]));
    expect(orphan.bytes).toBeGreaterThanOrEqual(4 << 20);
    expect(orphan.reason).toContain(`${lockedFile} (immutable); clear with: chattr -i '${lockedFile}'`);
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
    // every snapshot dir but the orphan and what only the dead lease holds is live; c1's is held by its lease
    const leased = of('containerd-dead-lease').flatMap((f) => f.paths);
    const held = fs.readdirSync(snaps).filter((n) => path.join(snaps, n) !== lockedDir && !leased.includes(path.join(snaps, n)));
    const explained = held.map((n) => cli(['explain', path.join(snaps, n)]));
    expect(explained.map((e) => e.code)).toEqual(held.map(() => 0));
    expect(explained.some((e) => /held by lease moby\/[a-f0-9]{64} of container c1/.test(e.stdout.replace(/\n +/g, ' ')))).toBe(true); // wrapped at 80 columns
    expect(explained.some((e) => e.stdout.includes('held by image app:1 (namespace moby)'))).toBe(true);
  });

  it('purge (after the chattr -i the report names) removes the leftovers; the daemon restarts, healthy images run, c1 starts, the rescan is clean but for the lease', async () => {
    chattr(lockedFile, '-i');
    const removable = findings.filter((f) => f.reclaimable);
    const expectBytes = du(removable.flatMap((f) => f.paths));
    const rootBefore = du([d.dataRoot]);
    const r = cli(['purge', '--yes', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.json.summary).toMatchObject({ removed: 2, failed: 0, skipped: 0 });
    expect(r.json.summary.reclaimedBytes).toBe(expectBytes);
    for (const f of removable) for (const p of f.paths) expect(fs.existsSync(p)).toBe(false);
    // the space came back, as du sees it (the journal adds a few bytes)
    expect(rootBefore - du([d.dataRoot])).toBeGreaterThanOrEqual(expectBytes - 16384);
    fs.unlinkSync(stray); // the report says to move it away by hand

    await d.restart();
    for (const img of ['busybox:base', 'app:1', 'bk:1']) expect(await d.run(img, ['cat', '/etc/passwd'])).toContain('root:x:0:0');
    expect((await d.docker(['start', '-a', 'c1'])).stdout).toBe('hi\n');
    const rebuilt = await d.docker(['build', '--progress=plain', '--network=none', '-t', 'bk:1', '-'], { input: 'FROM busybox:base\nRUN echo bk > /bk.txt\n', env: { DOCKER_BUILDKIT: '1' } });
    expect(rebuilt.stderr + rebuilt.stdout).toContain('CACHED');
    await d.stop();
    // only leases are left: the killed load's, and those a clean run's operations leave behind
    // (moby's and BuildKit's expiring leases outlive the daemon that made them)
    const again = (cli(['scan', '--json']).json.findings as F[]);
    expect(new Set(again.map((f) => f.kind)), JSON.stringify(again, null, 2)).toEqual(new Set(['containerd-dead-lease']));
    expect(again.some((f) => f.containerd?.lease === of('containerd-dead-lease')[0].containerd?.lease)).toBe(true);
  }, LONG);
});
