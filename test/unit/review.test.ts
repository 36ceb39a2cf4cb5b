/**
 * Review reproductions. Tests named "regression: ..." reproduced a bug found in review (each failed
 * before its fix); tests named "SAFE: ..." pin a subtle behaviour that was checked and holds.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { diffSnapshots, randomBuildkitId, randomId, rootMaker, runCliAsync, scan, snapshotTree, type SyntheticRoot } from '../helpers/synthetic.js';

const root = rootMaker();
const purge = (s: SyntheticRoot, args: string[], env?: Record<string, string>) => runCliAsync(['purge', '--data-root', s.root, ...args], { env });
const exists = (p: string) => {
  try {
    fs.lstatSync(p);
    return true;
  } catch {
    return false;
  }
};

describe('safety: purge must not delete what a live dir needs', () => {
  it.concurrent('regression: a -removing entry whose cache-id is in the lower chain of a live container dir: purge deletes that lower', async () => {
    // The image's base layer entry was renamed -removing (no layer names its cache-id any more), but
    // the container's RW and init dirs stack on it through `lower`. unreferenced-driver-dir honours
    // lower chains (stackedOn); removing-orphan does not, so purge deletes the live container's lower.
    const s = root();
    const { app, web } = s.populate();
    const base = app.layers[0];
    const renamed = `${base.dir}-${randomId()}-removing`;
    fs.renameSync(base.dir, renamed);
    const lowerOfInit = fs.readFileSync(path.join(web.initDriverDir, 'lower'), 'utf8');
    expect(lowerOfInit).toContain(`l/${base.lid}`);
    const r = await purge(s, ['--yes', '--json']);
    expect(r.code).toBe(0);
    expect(exists(base.driverDir), `${base.driverDir} (a lower of container web) survives`).toBe(true);
    expect(exists(base.linkPath), 'its l/ link survives').toBe(true);
  });

  it.concurrent('regression: a stale write-set whose cache-id is in the lower chain of a live dir: purge deletes that lower', async () => {
    const s = root();
    const { app } = s.populate();
    const base = app.layers[0];
    // base layer entry lost (moved aside as a write-set, e.g. by hand), but app's upper layers stack on its dir
    const ws = path.join(s.layerdb, 'tmp', 'write-set-123456789');
    fs.renameSync(base.dir, ws);
    const r = await purge(s, ['--yes', '--json']);
    expect(r.code).toBe(0);
    expect(exists(base.driverDir), `${base.driverDir} (a lower of app's layers) survives`).toBe(true);
  });

  it.concurrent('regression: BuildKit DB unreadable: a -removing entry whose cache-id is a 25-char BuildKit dir: purge deletes the BuildKit dir', async () => {
    // README: "If those databases cannot be read, every dir BuildKit might own is kept".
    const s = root({ buildkit: 'garbage' });
    s.populate();
    const bk = s.makeBuildkitDir();
    s.makeRemovingOrphan({ cacheId: bk.id });
    const r = await purge(s, ['--yes', '--json']);
    expect(r.code).toBe(0);
    expect(exists(bk.dir), `BuildKit dir ${bk.id} kept`).toBe(true);
  });

  it.concurrent('regression: BuildKit DB unreadable: a killed RegisterByGraphID write-set naming a BuildKit dir: purge deletes the BuildKit dir', async () => {
    // migration.go:RegisterByGraphID registers an existing BuildKit dir through a write-set whose
    // cache-id is the BuildKit snapshot key; a killed daemon leaves that write-set behind.
    const s = root({ buildkit: 'garbage' });
    s.populate();
    const bk = s.makeBuildkitDir();
    s.makeWriteSet({ cacheIdValue: bk.id });
    const r = await purge(s, ['--yes', '--json']);
    expect(r.code).toBe(0);
    expect(exists(bk.dir), `BuildKit dir ${bk.id} kept`).toBe(true);
  });

  it.concurrent('regression: BuildKit DB unreadable: the 64-hex lower of a kept 25-char BuildKit dir is purged as unreferenced', async () => {
    // BuildKit Prepare(key, parent) on a layer whose entry is gone: the kept 25-char dir reads
    // through the 64-hex dir; the 25-char dir is kept (DB unreadable) but its lower is deleted.
    const s = root({ buildkit: 'garbage' });
    s.populate();
    const lowerId = randomId();
    s.createDriverDir(lowerId);
    const bkId = randomBuildkitId();
    s.createDriverDir(bkId, lowerId);
    const r = await purge(s, ['--yes', '--json']);
    expect(r.code).toBe(0);
    expect(exists(s.driverDir(bkId))).toBe(true);
    expect(exists(s.driverDir(lowerId)), 'the lower of a kept BuildKit dir survives').toBe(true);
  });
});

describe('error handling', () => {
  it.concurrent('regression: <root>/layergc is a file: purge --yes dies with an internal error and a stack trace', async () => {
    const s = root();
    s.populate();
    s.makeLeakedDriverDir();
    fs.writeFileSync(path.join(s.root, 'layergc'), 'not a dir\n');
    const r = await purge(s, ['--yes']);
    expect(r.code).toBe(2);
    expect(r.stderr).not.toContain('internal error');
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});

describe('lock', () => {
  it.concurrent('regression: an empty lock file (power loss: the lock is linked into place without fsync) blocks every purge forever as "pid 0"', async () => {
    // acquireLock treats an unparsable lock as dead ({pid: 0}), but holderAlive(pid 0) calls
    // process.kill(0, 0), which signals our own process group and succeeds: "alive", exit 5, forever.
    const s = root();
    s.populate();
    const leak = s.makeLeakedDriverDir();
    fs.mkdirSync(path.join(s.root, 'layergc'), { mode: 0o700 });
    fs.writeFileSync(path.join(s.root, 'layergc/lock'), '');
    const r = await purge(s, ['--yes', '--json']);
    expect(r.stderr).not.toContain('another layergc holds');
    expect(r.code).toBe(0);
    expect(exists(leak.dir)).toBe(false);
  });

  it.concurrent('SAFE: a lock of a dead pid from this boot is taken over; a live one gives exit 5', async () => {
    const s = root();
    s.populate();
    fs.mkdirSync(path.join(s.root, 'layergc'), { mode: 0o700 });
    // pid 2^22+1 is above pid_max on typical hosts: dead
    fs.writeFileSync(path.join(s.root, 'layergc/lock'), JSON.stringify({ pid: 4194305, host: (await import('node:os')).hostname(), since: 'x' }));
    const r = await purge(s, ['--yes']);
    expect(r.code).toBe(0);
    fs.writeFileSync(path.join(s.root, 'layergc/lock'), JSON.stringify({ pid: process.pid, host: (await import('node:os')).hostname(), since: 'x' }));
    const r2 = await purge(s, ['--yes']);
    expect(r2.code).toBe(5);
  });
});

describe('deep trees', () => {
  it.concurrent('regression: a garbage dir deeper than PATH_MAX can never be purged (ENAMETOOLONG from full-path lstat/unlink)', async () => {
    // A layer diff can hold paths longer than 4096 bytes once prefixed with <root>/overlay2/<id>/diff;
    // moby's os.RemoveAll works with openat/unlinkat and removes such trees; TreeRemoval uses full paths.
    const s = root();
    s.populate();
    const leak = s.makeLeakedDriverDir();
    const name = 'd'.repeat(200);
    const { spawnSync } = await import('node:child_process');
    const sh = spawnSync('bash', ['-c', `cd "$1" && for i in $(seq 1 30); do mkdir ${name} && cd ${name} || exit 1; done; echo deep > f`, 'x', path.join(leak.dir, 'diff')]);
    expect(sh.status).toBe(0);
    const r = await purge(s, ['--yes', '--json']);
    expect(r.json.actions.map((a: { status: string; reason?: string }) => a.reason ?? a.status)).toEqual(['removed']);
    expect(r.code).toBe(0);
    expect(exists(leak.dir)).toBe(false);
    expect(exists(`${leak.dir}-layergc-removing`)).toBe(false);
  });
});

describe('SAFE pins', () => {
  it.concurrent("SAFE: an l/ link to a live dir's diff under a LID other than the dir's own is not dangling, and purge leaves it", async () => {
    const s = root();
    const { app } = s.populate();
    const extra = s.danglingLink(`../${app.layers[1].cacheId}/diff`);
    const r = await scan(s.root);
    expect(r.json.findings.filter((f: { kind: string }) => f.kind === 'dangling-link')).toEqual([]);
    await purge(s, ['--yes']);
    expect(exists(extra)).toBe(true);
  });

  it.concurrent('SAFE: hard links from a garbage dir into a live dir: the live file survives intact; shared blocks are not counted', async () => {
    const s = root();
    const { app } = s.populate();
    const leak = s.makeLeakedDriverDir();
    const live = path.join(app.layers[2].driverDir, 'diff/app/data.bin');
    const before = fs.readFileSync(live);
    const bytesOf = async () => (await scan(s.root)).json.findings.find((x: { kind: string }) => x.kind === 'unreferenced-driver-dir').bytes;
    const alone = await bytesOf();
    fs.linkSync(live, path.join(leak.dir, 'diff/hardlink.bin'));
    expect(await bytesOf()).toBe(alone);
    const p = await purge(s, ['--yes']);
    expect(p.code).toBe(0);
    expect(fs.readFileSync(live)).toEqual(before);
    expect(exists(leak.dir)).toBe(false);
  });

  it.concurrent('SAFE: --data-root with a trailing slash or a .. component is normalised; <root>/image and <root>/overlay2 are refused in one line', async () => {
    const s = root();
    s.populate();
    const leak = s.makeLeakedDriverDir();
    for (const dr of [`${s.root}/`, `${s.root}/image/..`]) {
      const r = await runCliAsync(['scan', '--data-root', dr, '--json']);
      expect(r.json.dataRoot).toBe(s.root);
      expect(r.json.findings.map((f: { paths: string[] }) => f.paths[0])).toEqual([leak.dir]);
    }
    for (const dr of [`${s.root}/image`, `${s.root}/overlay2`, `${s.root}/image/overlay2`]) {
      const r = await runCliAsync(['purge', '--yes', '--data-root', dr]);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    expect(exists(leak.dir)).toBe(true);
  });

  it.concurrent('SAFE: driver dir names with spaces, newlines and unicode are purged by exact name; neighbours survive', async () => {
    const s = root();
    s.populate();
    const before = snapshotTree(s.root, { exclude: ['layergc'] });
    for (const n of ['a b', 'x\ny', 'ünï', `${randomId()} `]) {
      fs.mkdirSync(path.join(s.home, n));
      fs.writeFileSync(path.join(s.home, n, 'f'), 'x');
    }
    const r = await purge(s, ['--yes', '--json']);
    expect(r.code).toBe(0);
    expect(diffSnapshots(before, snapshotTree(s.root, { exclude: ['layergc'] }))).toEqual({ onlyBefore: [], onlyAfter: [], changed: [] });
  });

  it.concurrent('SAFE: a -removing entry whose cache-id is a live mount-id or init-id: only the metadata goes', async () => {
    const s = root();
    const { web } = s.populate();
    const a = s.makeRemovingOrphan({ cacheId: web.mountId });
    const b = s.makeRemovingOrphan({ cacheId: web.initId });
    const r = await purge(s, ['--yes']);
    expect(r.code).toBe(0);
    expect(exists(a.dir) || exists(b.dir)).toBe(false);
    expect(exists(web.mountDriverDir) && exists(web.initDriverDir)).toBe(true);
  });

  it.concurrent('SAFE: layerdb/sha256/<hex> that is a file, not a dir, is ignored like moby does', async () => {
    const s = root();
    s.populate();
    const f = path.join(s.layerdb, 'sha256', randomId());
    fs.writeFileSync(f, 'x');
    const r = await scan(s.root);
    expect(r.code).toBe(0);
    await purge(s, ['--yes']);
    expect(exists(f)).toBe(true);
  });
});

describe('more error handling', () => {
  it.concurrent('regression: verify --jobs abc: internal error (TypeError) instead of a one-line usage error', async () => {
    const s = root();
    s.populate();
    const r = await runCliAsync(['verify', '--data-root', s.root, '--jobs', 'abc']);
    expect(r.code).toBe(2);
    expect(r.stderr).not.toContain('internal error');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it.concurrent('regression: a --data-root whose lstat fails with ELOOP or ENAMETOOLONG: internal error with a stack trace', async () => {
    const s = root();
    const a = path.join(s.base, 'loopA');
    const b = path.join(s.base, 'loopB');
    fs.symlinkSync(b, a);
    fs.symlinkSync(a, b);
    for (const dr of [`${a}/x`, `${s.base}/${'a'.repeat(300)}`]) {
      const r = await runCliAsync(['scan', '--data-root', dr]);
      expect(r.code).toBe(2);
      expect(r.stderr, dr).not.toContain('internal error');
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });
});

describe('BuildKit databases, partly present', () => {
  it.concurrent('regression: snapshots.db absent but another BuildKit database present and unreadable: a 25-char dir is purged instead of kept', async () => {
    // buildkit.ts header: "Any BuildKit database that is present but cannot be read makes the whole
    // result 'unreadable'". With snapshots.db absent the state is 'absent' whatever the others say.
    const s = root();
    s.populate();
    fs.mkdirSync(path.join(s.root, 'buildkit'), { mode: 0o711 });
    fs.writeFileSync(path.join(s.root, 'buildkit/containerdmeta.db'), Buffer.alloc(8192, 7));
    const bk = s.makeBuildkitDir();
    const r = await purge(s, ['--yes', '--json']);
    expect(r.code).toBe(0);
    expect(exists(bk.dir), 'a dir only a lease in an unreadable containerdmeta.db may name is kept').toBe(true);
  });
});

describe('crash states of non-atomic mount files', () => {
  it('both mount-id and init-id empty (a crash right after docker create): the container dirs are kept, and the mount is reported', async () => {
    const s = root();
    const { web } = s.populate();
    fs.writeFileSync(path.join(web.mountDir, 'mount-id'), '');
    fs.writeFileSync(path.join(web.mountDir, 'init-id'), '');
    const r = await scan(s.root);
    expect(r.json.findings.filter((f: { kind: string }) => f.kind === 'unreferenced-driver-dir')).toEqual([]);
    expect(r.json.findings.map((f: { kind: string }) => f.kind)).toContain('broken-mount');
    const p = await purge(s, ['--yes', '--json']);
    expect(p.code).toBe(0);
    expect(exists(web.mountDriverDir)).toBe(true);
    expect(exists(web.initDriverDir)).toBe(true);
  });
});
