// The storage-driver adapters other than overlay2, on synthetic driver homes built in a temp dir
// (and btrfs also on a real loop-mounted btrfs): listing, checks, content roots, and removal
// (real, idempotent, resumable after an interruption, dry-run, never through a symlink).
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as nfs from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createDriver } from '../../src/drivers/registry/index.js';
import { AufsDriver } from '../../src/drivers/aufs.js';
import { BtrfsDriver } from '../../src/drivers/btrfs.js';
import { DevicemapperDriver } from '../../src/drivers/devicemapper.js';
import { VfsDriver } from '../../src/drivers/vfs.js';
import { WindowsfilterDriver } from '../../src/drivers/windowsfilter.js';
import { ZfsDriver } from '../../src/drivers/zfs.js';
import type { DriverAdapter } from '../../src/drivers/types.js';
import { STAGED_SUFFIX } from '../../src/layout.js';
import { LayergcError } from '../../src/errors.js';
import { fs as fsx } from '../../src/fsx/fs.js';
import { MountTable } from '../../src/fsx/mounts.js';
import { RemovalFailed, Remover } from '../../src/fsx/remove.js';

// ---------------------------------------------------------------------------------------------------
// helpers

const hex = (seed: string) => createHash('sha256').update(seed).digest('hex');
const A = hex('a');
const B = hex('b');
const C = hex('c');
const D = hex('d');
const E = hex('e');
const L = hex('link');
const X = hex('missing');

type Spec = { [name: string]: string | Spec | { symlink: string } };

/** Build files (string), directories (object) and symlinks ({ symlink }) under dir. */
function build(dir: string, spec: Spec): void {
  nfs.mkdirSync(dir, { recursive: true });
  for (const [name, v] of Object.entries(spec)) {
    const p = join(dir, name);
    if (typeof v === 'string') nfs.writeFileSync(p, v);
    else if ('symlink' in v && typeof v.symlink === 'string') nfs.symlinkSync(v.symlink, p);
    else build(p, v as Spec);
  }
}

/** Every entry under dir with type, mode, times and content: equal snapshots mean nothing changed. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (p: string, rel: string) => {
    const st = nfs.lstatSync(p);
    let v = `${st.mode.toString(8)} ${st.size} ${st.mtimeMs} ${st.ino}`;
    if (st.isSymbolicLink()) v += ` -> ${nfs.readlinkSync(p)}`;
    else if (st.isFile()) v += ` ${createHash('sha256').update(nfs.readFileSync(p)).digest('hex')}`;
    out[rel] = v;
    if (st.isDirectory()) for (const n of nfs.readdirSync(p).sort()) walk(join(p, n), `${rel}/${n}`);
  };
  walk(dir, '.');
  return out;
}

const exists = (p: string) => {
  try {
    nfs.lstatSync(p);
    return true;
  } catch {
    return false;
  }
};

let tmp: string;
let root: string; // the data root
let outside: string; // a dir outside the data root that a hostile symlink points to

beforeEach(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'lgc-drivers-'));
  root = join(tmp, 'root');
  outside = join(tmp, 'outside');
  build(outside, { 'precious.txt': 'keep me', sub: { 'f.txt': 'keep me too' } });
});

afterEach(() => {
  nfs.rmSync(tmp, { recursive: true, force: true });
});

const remover = (dryRun = false) => new Remover(root, new MountTable([]), dryRun);

/** Make the n-th fs.unlinkSync (counting from 1) fail with EBUSY, as an interrupted removal. */
async function withUnlinkFailure<T>(n: number, fn: () => Promise<T>): Promise<T> {
  const orig = fsx.unlinkSync;
  let count = 0;
  fsx.unlinkSync = ((p: nfs.PathLike) => {
    if (++count === n) throw Object.assign(new Error(`EBUSY: resource busy or locked, unlink '${String(p)}'`), { code: 'EBUSY' });
    return orig(p);
  }) as typeof fsx.unlinkSync;
  try {
    return await fn();
  } finally {
    fsx.unlinkSync = orig;
  }
}

function expectOutsideIntact(): void {
  expect(nfs.readFileSync(join(outside, 'precious.txt'), 'utf8')).toBe('keep me');
  expect(nfs.readFileSync(join(outside, 'sub', 'f.txt'), 'utf8')).toBe('keep me too');
}

/** A dry run on a copy of the layout plans the same ops as the real run and changes nothing. */
async function expectDryRunMatches(driver: DriverAdapter, id: string): Promise<void> {
  const before = snapshot(root);
  const dry = remover(true);
  await driver.remove(id, dry);
  expect(snapshot(root)).toEqual(before);
  const real = remover(false);
  await driver.remove(id, real);
  expect(dry.ops).toEqual(real.ops);
}

// ---------------------------------------------------------------------------------------------------

describe('registry', () => {
  it('creates each adapter by driver name with the home it is given', () => {
    const cases: [string, Function][] = [
      ['vfs', VfsDriver],
      ['btrfs', BtrfsDriver],
      ['aufs', AufsDriver],
      ['zfs', ZfsDriver],
      ['devicemapper', DevicemapperDriver],
      ['windowsfilter', WindowsfilterDriver],
    ];
    for (const [name, cls] of cases) {
      const d = createDriver(name, `/x/${name}`);
      expect(d).toBeInstanceOf(cls);
      expect(d.name).toBe(name);
      expect(d.home).toBe(`/x/${name}`);
    }
    expect(createDriver('zfs', '/x').removal).toBe('report-only');
    expect(createDriver('devicemapper', '/x').removal).toBe('report-only');
    expect(createDriver('windowsfilter', '/x').removal).toBe('report-only');
    expect(createDriver('btrfs', '/x').removal).toBe('tool');
    expect(createDriver('vfs', '/x').removal).toBe('files');
    expect(createDriver('aufs', '/x').removal).toBe('files');
  });
});

// ---------------------------------------------------------------------------------------------------

describe('vfs', () => {
  let home: string;
  let drv: VfsDriver;
  beforeEach(() => {
    home = join(root, 'vfs');
    build(home, {
      dir: {
        [A]: { bin: { sh: '#!busybox' }, etc: { passwd: 'root:x:0:0' } },
        [B]: { bin: { sh: '#!busybox' }, etc: { passwd: 'root:x:0:0' }, hello: 'hi' }, // full copy of A plus its own file
        [`${C}${STAGED_SUFFIX}`]: { half: { gone: 'x' } },
        [L]: { symlink: outside },
        'stray-file': 'not a layer',
      },
      backingFsBlockDev: '', // the daemon's xfs quota device node sits in the home, not in dir/
    });
    drv = new VfsDriver(home);
  });

  it('lists dir/ entries, staged ones by id with staged:true', async () => {
    const es = await drv.listEntries();
    expect(es.map((e) => [e.id, e.staged, e.path])).toEqual(
      [
        [A, false, join(home, 'dir', A)],
        [B, false, join(home, 'dir', B)],
        [C, true, join(home, 'dir', `${C}${STAGED_SUFFIX}`)],
        [L, false, join(home, 'dir', L)],
      ].sort((x, y) => String(x[2]).localeCompare(String(y[2]))),
    );
    expect(es.find((e) => e.id === L)!.stat.isSymbolicLink()).toBe(true);
  });

  it('checks that dir/<id> is a directory', async () => {
    expect(await drv.checkLayer(A, { hasParent: false })).toEqual([]);
    expect(await drv.checkLayer(B, { hasParent: true })).toEqual([]);
    expect(await drv.checkLayer(X, { hasParent: false })).toEqual([`dir/${X} is missing`]);
    expect(await drv.checkLayer(L, { hasParent: false })).toEqual([`dir/${L} is a symlink, not a directory`]);
    expect(await drv.checkLayer('stray-file', { hasParent: false })).toEqual(['dir/stray-file is not a directory']);
  });

  it('reads content from the full copy, and knows the paths of a layer', async () => {
    expect(await drv.contentRoots(B)).toEqual([join(home, 'dir', B)]);
    expect(drv.dirOf(A)).toBe(join(home, 'dir', A));
    expect(await drv.pathsOf(A)).toEqual([join(home, 'dir', A)]);
    expect(await drv.pathsOf(X)).toEqual([]);
    expect(await drv.danglingLinks()).toEqual([]);
  });

  it('removes a layer by staging it, and a second remove does nothing', async () => {
    const rm = remover();
    await drv.remove(A, rm);
    expect(exists(join(home, 'dir', A))).toBe(false);
    expect(exists(join(home, 'dir', `${A}${STAGED_SUFFIX}`))).toBe(false);
    expect(rm.ops).toEqual([
      { op: 'rename', path: join(home, 'dir', A), to: join(home, 'dir', `${A}${STAGED_SUFFIX}`) },
      { op: 'remove-tree', path: join(home, 'dir', `${A}${STAGED_SUFFIX}`) },
    ]);
    expect(exists(join(home, 'dir', B))).toBe(true);
    const again = remover();
    await drv.remove(A, again);
    expect(again.ops).toEqual([]);
  });

  it('finishes a staged entry left by an interrupted run', async () => {
    await drv.remove(C, remover());
    expect(exists(join(home, 'dir', `${C}${STAGED_SUFFIX}`))).toBe(false);
    expect((await drv.listEntries()).map((e) => e.id)).not.toContain(C);
  });

  it('resumes after a removal that failed part way (EBUSY on one file)', async () => {
    await expect(withUnlinkFailure(1, () => drv.remove(B, remover()))).rejects.toBeInstanceOf(RemovalFailed);
    const staged = (await drv.listEntries()).find((e) => e.id === B)!;
    expect(staged.staged).toBe(true);
    expect(staged.path).toBe(join(home, 'dir', `${B}${STAGED_SUFFIX}`));
    await drv.remove(B, remover());
    expect(exists(staged.path)).toBe(false);
    expect(exists(join(home, 'dir', B))).toBe(false);
  });

  it('finishes an old staged copy before staging a new dir of the same id', async () => {
    build(join(home, 'dir', `${A}${STAGED_SUFFIX}`), { old: 'x' });
    await drv.remove(A, remover());
    expect(exists(join(home, 'dir', A))).toBe(false);
    expect(exists(join(home, 'dir', `${A}${STAGED_SUFFIX}`))).toBe(false);
  });

  it('changes nothing in a dry run, yet plans what the real run does', async () => {
    await expectDryRunMatches(drv, A);
    await expectDryRunMatches(drv, C);
    expect(exists(join(home, 'dir', A))).toBe(false);
  });

  it('unlinks a symlink entry and never follows it', async () => {
    const rm = remover();
    await drv.remove(L, rm);
    expect(exists(join(home, 'dir', L))).toBe(false);
    expect(rm.ops).toEqual([{ op: 'unlink', path: join(home, 'dir', L) }]);
    expectOutsideIntact();
  });

  it('refuses a home reached through a symlink', async () => {
    const linked = join(root, 'vfs-linked');
    nfs.symlinkSync(home, linked);
    await expect(new VfsDriver(linked).remove(A, remover())).rejects.toThrow(/symlink/);
    expect(exists(join(home, 'dir', A))).toBe(true);
  });

  it('refuses a layer with a mount point inside', async () => {
    const rm = new Remover(root, new MountTable([join(home, 'dir', A, 'proc')]), false);
    await expect(drv.remove(A, rm)).rejects.toThrow(/mount point/);
    expect(exists(join(home, 'dir', A))).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------------

describe('btrfs (synthetic, not on btrfs)', () => {
  let home: string;
  let drv: BtrfsDriver;
  beforeEach(() => {
    home = join(root, 'btrfs');
    build(home, {
      subvolumes: {
        [A]: { bin: { sh: 'x' } },
        [B]: { bin: { sh: 'x' }, hello: 'hi' },
        [`${C}${STAGED_SUFFIX}`]: { left: 'x' },
        [L]: { symlink: outside },
      },
      quotas: { [B]: '1073741824', [D]: '1048576' }, // D: a quota whose subvolume is gone
    });
    drv = new BtrfsDriver(home, { btrfsCli: null });
  });

  it('lists subvolumes, staged ones, and quota files left without a subvolume', async () => {
    const es = await drv.listEntries();
    const byId = Object.fromEntries(es.map((e) => [e.id, e]));
    expect(Object.keys(byId).sort()).toEqual([A, B, C, D, L].sort());
    expect(byId[C].staged).toBe(true);
    expect(byId[D].path).toBe(join(home, 'quotas', D));
    expect(byId[B].path).toBe(join(home, 'subvolumes', B));
    expect(es.filter((e) => e.id === B)).toHaveLength(1);
  });

  it('checks the subvolume dir (the subvolume test applies only on btrfs)', async () => {
    expect(await drv.checkLayer(A, { hasParent: false })).toEqual([]);
    expect(await drv.checkLayer(X, { hasParent: false })).toEqual([`subvolumes/${X} is missing`]);
    expect(await drv.checkLayer(L, { hasParent: false })).toEqual([`subvolumes/${L} is a symlink, not a subvolume`]);
  });

  it('knows content roots and paths', async () => {
    expect(await drv.contentRoots(B)).toEqual([join(home, 'subvolumes', B)]);
    expect(await drv.pathsOf(B)).toEqual([join(home, 'subvolumes', B), join(home, 'quotas', B)]);
    expect(await drv.pathsOf(D)).toEqual([join(home, 'quotas', D)]);
    expect(await drv.danglingLinks()).toEqual([]);
  });

  it('removes subvolume and quota, idempotently', async () => {
    const rm = remover();
    await drv.remove(B, rm);
    expect(exists(join(home, 'subvolumes', B))).toBe(false);
    expect(exists(join(home, 'quotas', B))).toBe(false);
    expect(rm.ops.map((o) => o.op)).toEqual(['unlink', 'rename', 'remove-tree']);
    const again = remover();
    await drv.remove(B, again);
    expect(again.ops).toEqual([]);
    await drv.remove(D, remover());
    expect(exists(join(home, 'quotas', D))).toBe(false);
  });

  it('finishes a staged subvolume and resumes after an interrupted removal', async () => {
    await drv.remove(C, remover());
    expect(exists(join(home, 'subvolumes', `${C}${STAGED_SUFFIX}`))).toBe(false);
    await expect(withUnlinkFailure(2, () => drv.remove(B, remover()))).rejects.toBeInstanceOf(RemovalFailed);
    expect((await drv.listEntries()).find((e) => e.id === B)?.staged).toBe(true);
    await drv.remove(B, remover());
    expect(await drv.pathsOf(B)).toEqual([]);
    expect(exists(join(home, 'subvolumes', `${B}${STAGED_SUFFIX}`))).toBe(false);
  });

  it('changes nothing in a dry run', async () => {
    await expectDryRunMatches(drv, B);
    await expectDryRunMatches(drv, C);
  });

  it('unlinks a symlink entry and never follows it', async () => {
    await drv.remove(L, remover());
    expect(exists(join(home, 'subvolumes', L))).toBe(false);
    expectOutsideIntact();
  });
});

// A real btrfs: subvolumes and snapshots made with the btrfs CLI, removed through the adapter.
const btrfsReal =
  process.getuid?.() === 0 && spawnSync('which', ['mkfs.btrfs']).status === 0 && spawnSync('which', ['btrfs']).status === 0 && nfs.readFileSync('/proc/filesystems', 'utf8').includes('btrfs');

describe.skipIf(!btrfsReal)('btrfs (real, loop-mounted)', () => {
  let base: string;
  let mnt: string;
  let home: string;
  let sub: string;
  const sh = (...args: string[]) => execFileSync(args[0], args.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
  const listed = () => sh('btrfs', 'subvolume', 'list', mnt);

  beforeEach(() => {
    base = nfs.mkdtempSync('/tmp/lgc-btrfs-');
    mnt = join(base, 'mnt');
    nfs.mkdirSync(mnt);
    sh('truncate', '-s', '1G', join(base, 'img'));
    sh('mkfs.btrfs', '-q', join(base, 'img'));
    sh('mount', '-o', 'loop', join(base, 'img'), mnt);
    root = mnt; // the data root of these tests is the btrfs mount
    home = join(mnt, 'btrfs');
    sub = join(home, 'subvolumes');
    nfs.mkdirSync(sub, { recursive: true });
    // A: a base layer; B: a snapshot of A plus a file; C: a snapshot of B holding a nested subvolume
    sh('btrfs', 'subvolume', 'create', join(sub, A));
    build(join(sub, A), { bin: { sh: 'busybox' }, etc: { passwd: 'root:x:0:0' } });
    sh('btrfs', 'subvolume', 'snapshot', join(sub, A), join(sub, B));
    nfs.writeFileSync(join(sub, B, 'hello'), 'hi');
    sh('btrfs', 'subvolume', 'snapshot', join(sub, B), join(sub, C));
    sh('btrfs', 'subvolume', 'create', join(sub, C, 'nested'));
    nfs.writeFileSync(join(sub, C, 'nested', 'f'), 'x');
    build(join(home, 'quotas'), { [B]: '1073741824' });
  });

  afterEach(() => {
    spawnSync('umount', [mnt]);
    if (spawnSync('mountpoint', ['-q', mnt]).status === 0) spawnSync('umount', ['-l', mnt]);
    nfs.rmSync(base, { recursive: true, force: true });
  });

  it('lists and checks subvolumes; a plain dir is not a subvolume', async () => {
    const drv = new BtrfsDriver(home);
    expect((await drv.listEntries()).map((e) => e.id).sort()).toEqual([A, B, C].sort());
    for (const id of [A, B, C]) expect(await drv.checkLayer(id, { hasParent: id !== A })).toEqual([]);
    nfs.mkdirSync(join(sub, D));
    expect(await drv.checkLayer(D, { hasParent: false })).toEqual([
      `subvolumes/${D} is a plain directory, not a btrfs subvolume (snapshots of it, that is child layers and containers, cannot be created)`,
    ]);
    expect(nfs.readFileSync(join((await drv.contentRoots(B))[0], 'hello'), 'utf8')).toBe('hi');
  });

  it('deletes a snapshot and a subvolume with a nested one through btrfs subvolume delete', async () => {
    const drv = new BtrfsDriver(home);
    const before = snapshot(mnt);
    const dry = remover(true);
    await drv.remove(B, dry);
    expect(snapshot(mnt)).toEqual(before);
    expect(dry.ops.map((o) => o.op)).toEqual(['unlink', 'rename', 'remove-tree']);

    await drv.remove(B, remover());
    expect(exists(join(sub, B))).toBe(false);
    expect(exists(join(home, 'quotas', B))).toBe(false);
    expect(listed()).not.toContain(B);
    // C was snapshotted from B: it stands on its own
    expect(nfs.readFileSync(join(sub, C, 'hello'), 'utf8')).toBe('hi');

    const rm = remover();
    await drv.remove(C, rm);
    expect(exists(join(sub, C))).toBe(false);
    expect(listed()).not.toContain(C);
    expect(listed()).not.toContain('nested');
    expect(rm.ops.map((o) => o.path)).toContain(join(sub, `${C}${STAGED_SUFFIX}`, 'nested'));
    expect(listed()).toContain(A);
    const again = remover();
    await drv.remove(C, again);
    expect(again.ops).toEqual([]);
  });

  it('finishes a staged subvolume left by an interrupted run', async () => {
    nfs.renameSync(join(sub, B), join(sub, `${B}${STAGED_SUFFIX}`));
    const drv = new BtrfsDriver(home);
    expect((await drv.listEntries()).find((e) => e.id === B)?.staged).toBe(true);
    await drv.remove(B, remover());
    expect(exists(join(sub, `${B}${STAGED_SUFFIX}`))).toBe(false);
    expect(listed()).not.toContain(B);
  });

  it('falls back to file removal and rmdir of the empty subvolume without the CLI', async () => {
    const drv = new BtrfsDriver(home, { btrfsCli: null });
    await drv.remove(A, remover());
    await drv.remove(B, remover());
    expect(exists(join(sub, A))).toBe(false);
    expect(listed()).not.toContain(A);
    expect(listed()).not.toContain(B);
    // a nested subvolume is another device to the file walk: it stops there and says so
    await expect(drv.remove(C, remover())).rejects.toThrow(/another filesystem/);
    expect((await drv.listEntries()).find((e) => e.id === C)?.staged).toBe(true);
    await new BtrfsDriver(home).remove(C, remover());
    expect(listed()).not.toContain(C);
  });

  it('unlinks a symlink entry, even one pointing at a subvolume', async () => {
    nfs.symlinkSync(join(sub, A), join(sub, L));
    await new BtrfsDriver(home).remove(L, remover());
    expect(exists(join(sub, L))).toBe(false);
    expect(listed()).toContain(A);
  });
});

// ---------------------------------------------------------------------------------------------------

describe('aufs', () => {
  let home: string;
  let drv: AufsDriver;
  beforeEach(() => {
    home = join(root, 'aufs');
    build(home, {
      diff: {
        [A]: { bin: { sh: 'x' }, '.wh..wh.aufs': '', '.wh..wh.plnk': {}, '.wh..wh.orph': {} },
        [B]: { etc: { '.wh.passwd': '', '.wh..wh.opq': '' }, hello: 'hi' },
        [`${C}-removing`]: { half: 'x' },
        [L]: { symlink: outside },
      },
      mnt: { [A]: {}, [B]: {}, [`${C}-removing`]: {}, [E]: {} },
      layers: { [A]: '', [B]: `${A}\n`, [D]: `${A}\n` },
    });
    drv = new AufsDriver(home);
  });

  it('lists the union of diff/, layers/ and mnt/, with -removing entries staged', async () => {
    const es = await drv.listEntries();
    const live = es.filter((e) => !e.staged);
    expect(live.map((e) => e.id).sort()).toEqual([A, B, D, E, L].sort());
    expect(live.find((e) => e.id === A)!.path).toBe(join(home, 'diff', A));
    expect(live.find((e) => e.id === D)!.path).toBe(join(home, 'layers', D));
    expect(live.find((e) => e.id === E)!.path).toBe(join(home, 'mnt', E));
    const staged = es.filter((e) => e.staged);
    expect(staged.map((e) => [e.id, e.path])).toEqual([[C, join(home, 'diff', `${C}-removing`)]]);
  });

  it('checks diff/<id>, layers/<id> and the parents it lists', async () => {
    expect(await drv.checkLayer(A, { hasParent: false })).toEqual([]);
    expect(await drv.checkLayer(B, { hasParent: true })).toEqual([]);
    expect(await drv.checkLayer(E, { hasParent: false })).toEqual([`diff/${E} is missing`, `layers/${E} is missing (moby#38051: registering a child of this layer fails)`]);
    nfs.writeFileSync(join(home, 'layers', B), `${X}\n${A}\n`);
    expect(await drv.checkLayer(B, { hasParent: true })).toEqual([`layers/${B} names parent ${X}, whose diff/${X} is missing`]);
    nfs.writeFileSync(join(home, 'layers', B), '');
    expect(await drv.checkLayer(B, { hasParent: true })).toEqual([`layers/${B} lists no parent although the layer has one`]);
    nfs.writeFileSync(join(home, 'layers', B), '../../etc\n');
    expect(await drv.checkLayer(B, { hasParent: true })).toEqual([`layers/${B} names "../../etc", not a layer ID`]);
  });

  it("knows when a layer's own list of parents cannot be read whole (then any dir may be one of them)", async () => {
    expect(await drv.lowersUnknown(A, false)).toBeUndefined();
    expect(await drv.lowersUnknown(B, true)).toBeUndefined();
    expect(await drv.lowersUnknown(E, false)).toBeUndefined();
    expect(await drv.lowersUnknown(E, true)).toBe(`layers/${E} is missing`);
    nfs.writeFileSync(join(home, 'layers', B), '');
    expect(await drv.lowersUnknown(B, true)).toBe(`layers/${B} is empty`);
    // cut inside an ID: the partial name has no diff/ dir
    nfs.writeFileSync(join(home, 'layers', B), `${A.slice(0, 10)}`);
    expect(await drv.lowersUnknown(B, true)).toBe(`layers/${B} names "${A.slice(0, 10)}", which has no diff/ dir`);
    nfs.writeFileSync(join(home, 'layers', B), '\0\0garbage/');
    expect(await drv.lowersUnknown(B, true)).toMatch(/not a layer ID$/);
    // cut at a line end: every line well formed, but the direct parent's own list is longer
    nfs.mkdirSync(join(home, 'diff', D));
    nfs.writeFileSync(join(home, 'layers', B), `${D}\n`);
    expect(await drv.lowersUnknown(B, true)).toBe(`layers/${B} does not end as its parent's layers/${D} lists`);
    nfs.writeFileSync(join(home, 'layers', B), `${D}\n${A}\n`);
    expect(await drv.lowersUnknown(B, true)).toBeUndefined();
    nfs.rmSync(join(home, 'layers', B));
    nfs.mkdirSync(join(home, 'layers', B));
    expect(await drv.lowersUnknown(B, true)).toMatch(/^layers\/.* is not readable/);
  });

  it('reads content from diff/<id> only, and knows the paths of a layer', async () => {
    expect(await drv.contentRoots(B)).toEqual([join(home, 'diff', B)]);
    expect(await drv.pathsOf(B)).toEqual([join(home, 'diff', B), join(home, 'mnt', B), join(home, 'layers', B)]);
    expect(await drv.pathsOf(D)).toEqual([join(home, 'layers', D)]);
  });

  it('removes layers/<id>, then diff and mnt through <id>-removing, idempotently', async () => {
    const rm = remover();
    await drv.remove(B, rm);
    expect(await drv.pathsOf(B)).toEqual([]);
    expect(nfs.readdirSync(join(home, 'diff')).filter((n) => n.startsWith(B))).toEqual([]);
    expect(rm.ops).toEqual([
      { op: 'unlink', path: join(home, 'layers', B) },
      { op: 'rename', path: join(home, 'diff', B), to: join(home, 'diff', `${B}-removing`) },
      { op: 'remove-tree', path: join(home, 'diff', `${B}-removing`) },
      { op: 'rename', path: join(home, 'mnt', B), to: join(home, 'mnt', `${B}-removing`) },
      { op: 'remove-tree', path: join(home, 'mnt', `${B}-removing`) },
    ]);
    const again = remover();
    await drv.remove(B, again);
    expect(again.ops).toEqual([]);
    // A (B's parent) is untouched
    expect(await drv.checkLayer(A, { hasParent: false })).toEqual([]);
  });

  it("finishes -removing entries (its own and aufs's) and resumes an interrupted removal", async () => {
    await drv.remove(C, remover());
    expect(exists(join(home, 'diff', `${C}-removing`))).toBe(false);
    expect(exists(join(home, 'mnt', `${C}-removing`))).toBe(false);
    await expect(withUnlinkFailure(2, () => drv.remove(A, remover()))).rejects.toBeInstanceOf(RemovalFailed);
    expect((await drv.listEntries()).find((e) => e.id === A && e.staged)?.path).toBe(join(home, 'diff', `${A}-removing`));
    await drv.remove(A, remover());
    expect(await drv.pathsOf(A)).toEqual([]);
    expect((await drv.listEntries()).filter((e) => e.id === A)).toEqual([]);
  });

  it('changes nothing in a dry run', async () => {
    await expectDryRunMatches(drv, B);
    await expectDryRunMatches(drv, C);
  });

  it('unlinks a symlink entry and never follows it', async () => {
    await drv.remove(L, remover());
    expect(exists(join(home, 'diff', L))).toBe(false);
    expectOutsideIntact();
  });

  it('refuses a layer still mounted on mnt/<id>', async () => {
    const rm = new Remover(root, new MountTable([join(home, 'mnt', A)]), false);
    await expect(drv.remove(A, rm)).rejects.toThrow(/mount point/);
    expect(exists(join(home, 'mnt', A))).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------------

describe('zfs (report-only)', () => {
  let home: string;
  beforeEach(() => {
    home = join(root, 'zfs');
    build(home, { graph: { [A]: {}, [B]: {} } });
  });

  /** A stand-in zfs CLI that logs its arguments and prints a dataset list. */
  function fakeZfs(names: string[], exitCode = 0): string {
    const bin = join(tmp, 'zfs');
    nfs.writeFileSync(bin, `#!/bin/sh\necho "$@" >> ${join(tmp, 'zfs.args')}\ncat <<'EOF'\n${names.join('\n')}\nEOF\nexit ${exitCode}\n`, { mode: 0o755 });
    return bin;
  }

  it('without the CLI: lists graph/ mount points, knows nothing of datasets, says what to run', async () => {
    const drv = new ZfsDriver(home, { zfsCli: null, mountinfo: join(tmp, 'no-mountinfo') });
    expect((await drv.listEntries()).map((e) => e.id)).toEqual([A, B].sort());
    expect(await drv.checkLayer(X, { hasParent: false })).toEqual([]);
    expect(drv.removalNote).toContain('zfs destroy -r <fsname>/<id>');
    expect(drv.removalNote).toContain('the zfs CLI is not installed here');
    expect(await drv.contentRoots(A)).toEqual([]); // an unmounted graph/<id> is an empty dir
    expect(await drv.pathsOf(A)).toEqual([join(home, 'graph', A)]);
    const before = snapshot(root);
    for (const dry of [true, false]) {
      const rm = remover(dry);
      const err = await drv.remove(A, rm).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LayergcError);
      expect((err as Error).message).toContain(`zfs destroy -r <fsname>/${A}`);
      expect(rm.ops).toEqual([]);
    }
    expect(snapshot(root)).toEqual(before);
  });

  it('with the CLI: lists layer datasets under fsname, and names a missing one', async () => {
    const cli = fakeZfs(['tank/docker', `tank/docker/${A}`, `tank/docker/${C}`, `tank/docker/${C}-init`, 'tank/docker/apt', `tank/docker/${D}/deeper`]);
    const drv = new ZfsDriver(home, { zfsCli: cli, fsname: 'tank/docker', mountinfo: join(tmp, 'no-mountinfo') });
    const es = await drv.listEntries();
    expect(es.map((e) => e.id)).toEqual([...[A, B].sort(), C, `${C}-init`]); // graph/ dirs, then datasets without one
    expect(es.find((e) => e.id === C)!.path).toBe(join(home, 'graph', C));
    expect(await drv.checkLayer(A, { hasParent: false })).toEqual([]);
    expect(await drv.checkLayer(B, { hasParent: false })).toEqual([`zfs dataset tank/docker/${B} does not exist`]);
    expect(drv.removalNote).toContain('zfs destroy -r tank/docker/<id>');
    await expect(drv.remove(C, remover())).rejects.toThrow(`zfs destroy -r 'tank/docker/${C}'`);
    expect(nfs.readFileSync(join(tmp, 'zfs.args'), 'utf8').trim()).toBe('list -H -o name -t filesystem -r tank/docker');
  });

  it('finds fsname from the zfs mount of the data root, and reads content only from a mounted dataset', async () => {
    const cli = fakeZfs([`pool/lib/${A}`]);
    const mountinfo = join(tmp, 'mountinfo');
    nfs.writeFileSync(
      mountinfo,
      [
        `22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw`,
        `90 22 0:52 / ${root.replace(/ /g, '\\040')} rw shared:40 - zfs pool/lib rw,xattr,noacl`,
        `91 90 0:53 / ${join(home, 'graph', A)} rw - zfs pool/lib/${A} rw`,
      ].join('\n'),
    );
    const drv = new ZfsDriver(home, { zfsCli: cli, mountinfo });
    expect(await drv.checkLayer(B, { hasParent: false })).toEqual([`zfs dataset pool/lib/${B} does not exist`]);
    expect(await drv.contentRoots(A)).toEqual([join(home, 'graph', A)]);
    expect(await drv.contentRoots(B)).toEqual([]);
  });

  it('reports a failing zfs list without throwing', async () => {
    const drv = new ZfsDriver(home, { zfsCli: fakeZfs([], 1), fsname: 'tank/docker' });
    expect((await drv.listEntries()).map((e) => e.id)).toEqual([A, B].sort());
    expect(await drv.checkLayer(X, { hasParent: false })).toEqual([]);
    expect(drv.removalNote).toContain('zfs list tank/docker failed');
  });
});

// ---------------------------------------------------------------------------------------------------

describe('devicemapper (report-only)', () => {
  let home: string;
  const dev = (o: object) => JSON.stringify({ device_id: 7, size: 10737418240, transaction_id: 9, initialized: false, deleted: false, ...o });
  beforeEach(() => {
    home = join(root, 'devicemapper');
    build(home, {
      devicemapper: { data: '', metadata: '' },
      metadata: {
        base: dev({ device_id: 1, initialized: true }),
        'deviceset-metadata': '{"next_device_id":12,"BaseDeviceUUID":"x","BaseDeviceFilesystem":"xfs"}',
        'transaction-metadata': '{"open_transaction_id":9,"device_hash":"","device_id":0}',
        '.tmp123456': 'partial',
        [A]: dev({ device_id: 3 }),
        [B]: dev({ device_id: 4, deleted: true }),
        [C]: '{"device_id": 5, "size"',
        [`${D}-init`]: dev({ device_id: 6 }),
      },
      mnt: { [A]: { rootfs: {}, id: A } },
    });
  });

  it("lists metadata/ records, not the device set's own files", async () => {
    const drv = new DevicemapperDriver(home);
    expect((await drv.listEntries()).map((e) => e.id)).toEqual([A, B, C, `${D}-init`].sort());
  });

  it('checks that the record parses and is not marked deleted', async () => {
    const drv = new DevicemapperDriver(home);
    expect(await drv.checkLayer(A, { hasParent: true })).toEqual([]);
    expect(await drv.checkLayer(B, { hasParent: true })).toEqual([`metadata/${B} is marked deleted: a deferred deletion is pending, the device is unusable`]);
    expect(await drv.checkLayer(C, { hasParent: true })).toEqual([`metadata/${C} is not valid JSON`]);
    expect(await drv.checkLayer(X, { hasParent: true })).toEqual([`metadata/${X} is missing: the daemon does not know this device`]);
  });

  it('reads content only from a mounted device', async () => {
    expect(await new DevicemapperDriver(home, { mountinfo: join(tmp, 'none') }).contentRoots(A)).toEqual([]);
    const mountinfo = join(tmp, 'mountinfo');
    nfs.writeFileSync(mountinfo, `95 22 253:3 / ${join(home, 'mnt', A)} rw - xfs /dev/mapper/docker-8:1-1234-${A} rw\n`);
    expect(await new DevicemapperDriver(home, { mountinfo }).contentRoots(A)).toEqual([join(home, 'mnt', A, 'rootfs')]);
    expect(await new DevicemapperDriver(home).pathsOf(A)).toEqual([join(home, 'metadata', A), join(home, 'mnt', A)]);
  });

  it('never removes anything, and says why', async () => {
    const drv = new DevicemapperDriver(home);
    expect(drv.removalNote).toMatch(/dmsetup/);
    const before = snapshot(root);
    for (const dry of [true, false]) {
      const rm = remover(dry);
      await expect(drv.remove(A, rm)).rejects.toBeInstanceOf(LayergcError);
      expect(rm.ops).toEqual([]);
    }
    expect(snapshot(root)).toEqual(before);
  });
});

// ---------------------------------------------------------------------------------------------------

describe('windowsfilter (report-only)', () => {
  let home: string;
  beforeEach(() => {
    home = join(root, 'windowsfilter');
    build(home, {
      [A]: { Files: { Windows: {} }, Hives: {}, UtilityVM: {}, 'bcd.bak': '' },
      [B]: { Files: {}, 'layerchain.json': JSON.stringify([`C:\\ProgramData\\docker\\windowsfilter\\${A}`]) },
      [C]: { 'sandbox.vhdx': 'vhd', 'layerchain.json': JSON.stringify([`C:\\ProgramData\\docker\\windowsfilter\\${X}`, `C:\\ProgramData\\docker\\windowsfilter\\${A}`]) },
      [`${D}-removing`]: { Files: {} },
      [E]: { 'layerchain.json': '{"not":"an array"}' },
      [L]: { symlink: outside },
    });
  });

  it("lists layer dirs, the daemon's -removing dirs as staged", async () => {
    const es = await new WindowsfilterDriver(home).listEntries();
    expect(
      es
        .filter((e) => !e.staged)
        .map((e) => e.id)
        .sort(),
    ).toEqual([A, B, C, E, L].sort());
    expect(es.filter((e) => e.staged).map((e) => [e.id, e.path])).toEqual([[D, join(home, `${D}-removing`)]]);
  });

  it('checks the dir and layerchain.json', async () => {
    const drv = new WindowsfilterDriver(home);
    expect(await drv.checkLayer(A, { hasParent: false })).toEqual([]);
    expect(await drv.checkLayer(B, { hasParent: true })).toEqual([]);
    expect(await drv.checkLayer(C, { hasParent: true })).toEqual([`${C}/layerchain.json names parent ${X}, which is not a layer in windowsfilter`]);
    expect(await drv.checkLayer(E, { hasParent: true })).toEqual([`${E}/layerchain.json is not a JSON array of strings`]);
    expect(await drv.checkLayer(X, { hasParent: false })).toEqual([`${X} is missing`]);
    expect(await drv.checkLayer(L, { hasParent: false })).toEqual([`${L} is a symlink, not a layer directory`]);
  });

  it('has no content roots, and never removes anything', async () => {
    const drv = new WindowsfilterDriver(home);
    expect(await drv.contentRoots(A)).toEqual([]);
    expect(drv.removalNote).toMatch(/DestroyLayer/);
    const before = snapshot(root);
    for (const dry of [true, false]) {
      const rm = remover(dry);
      await expect(drv.remove(A, rm)).rejects.toBeInstanceOf(LayergcError);
      await expect(drv.remove(D, rm)).rejects.toBeInstanceOf(LayergcError);
      expect(rm.ops).toEqual([]);
    }
    expect(snapshot(root)).toEqual(before);
  });
});

// ---------------------------------------------------------------------------------------------------

describe('Remover.removeTreeWith (how btrfs deletes a subvolume)', () => {
  let dir: string;
  beforeEach(() => {
    dir = join(root, 'btrfs', 'subvolumes', A);
    build(dir, { 'f.txt': 'data' });
  });

  it('records the op in a dry run and never runs the tool', async () => {
    const calls: string[] = [];
    const rm = remover(true);
    await rm.removeTreeWith(dir, async (p) => void calls.push(p));
    expect(rm.ops).toEqual([{ op: 'remove-tree', path: dir }]);
    expect(calls).toEqual([]);
    expect(exists(join(dir, 'f.txt'))).toBe(true);
  });

  it('runs the tool on a directory that is there, and does nothing for one that is gone', async () => {
    const calls: string[] = [];
    const rm = remover();
    await rm.removeTreeWith(dir, async (p) => void calls.push(p));
    await rm.removeTreeWith(join(root, 'btrfs', 'subvolumes', X), async (p) => void calls.push(p));
    expect(calls).toEqual([dir]);
  });

  it('refuses a staged dir that was swapped for another after the rename, a file, a mount inside, and a path outside the root', async () => {
    const calls: string[] = [];
    const by = async (p: string) => void calls.push(p);
    const rm = remover();
    const staged = `${dir}${STAGED_SUFFIX}`;
    await rm.rename(dir, staged);
    nfs.renameSync(staged, join(tmp, 'moved-away'));
    nfs.mkdirSync(staged);
    await expect(rm.removeTreeWith(staged, by)).rejects.toThrow(/no longer the directory that was staged/);
    const file = join(root, 'btrfs', 'subvolumes', B);
    nfs.writeFileSync(file, 'not a subvolume');
    await expect(rm.removeTreeWith(file, by)).rejects.toBeInstanceOf(RemovalFailed);
    build(join(root, 'btrfs', 'subvolumes', C), { proc: {} });
    const mounted = new Remover(root, new MountTable([join(root, 'btrfs', 'subvolumes', C, 'proc')]), false);
    await expect(mounted.removeTreeWith(join(root, 'btrfs', 'subvolumes', C), by)).rejects.toThrow(/mount point/);
    await expect(rm.removeTreeWith(join(outside, 'sub'), by)).rejects.toThrow(/not inside the data root/);
    expect(calls).toEqual([]);
    expectOutsideIntact();
  });
});
