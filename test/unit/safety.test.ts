/**
 * Purge never deletes what may be live or outside the data root, on damaged, moved and changing
 * roots (issue 8). Races are made at the test-only pause points (LAYERGC_TEST_PAUSE_AT, src/fsx/fault.ts):
 * the run stops, the test mounts or swaps, the run goes on; sha256 listings before and after prove
 * that nothing outside or live changed, and the item is reported refused with the reason.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { diffSnapshots, rootMaker, runCliAsync, snapshotTree, type CliResult, type SyntheticRoot } from '../helpers/synthetic.js';

const root = rootMaker();
const STATE = ['layergc'];
const tree = (dir: string) => snapshotTree(dir, { exclude: STATE });
const purge = (s: SyntheticRoot, args: string[], env?: Record<string, string>) => runCliAsync(['purge', '--data-root', s.root, ...args], { env });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function expectSame(before: Map<string, string>, after: Map<string, string>, what: string): void {
  expect(diffSnapshots(before, after), `${what} changed`).toEqual({ onlyBefore: [], onlyAfter: [], changed: [] });
}

const asRoot = process.getuid?.() === 0 && spawnSync('mount', ['--version']).status === 0;

/** Run purge until it reaches `step`, do `attack`, then let it go on. */
async function pausedPurge(s: SyntheticRoot, step: string, attack: () => void, args = ['--yes', '--json']): Promise<CliResult> {
  const dir = fs.mkdtempSync(path.join(s.base, 'pause-'));
  const run = purge(s, args, { LAYERGC_TEST_PAUSE_AT: step, LAYERGC_TEST_PAUSE_DIR: dir });
  for (let i = 0; !fs.existsSync(path.join(dir, 'paused')); i++) {
    if (i > 3000) throw new Error(`purge never reached ${step}`);
    await sleep(10);
  }
  try {
    attack();
  } finally {
    fs.writeFileSync(path.join(dir, 'resume'), '');
  }
  return run;
}

function mountBind(from: string, to: string): () => void {
  const r = spawnSync('mount', ['--bind', from, to], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return () => void spawnSync('umount', ['-l', to]);
}

/** A populated root with one leaked driver dir (a tree of a few levels); its healthy tree and what is outside. */
function oneLeak() {
  const s = root();
  s.populate();
  const healthy = tree(s.root);
  const leak = s.makeLeakedDriverDir();
  fs.mkdirSync(path.join(leak.dir, 'diff/a/b'), { recursive: true });
  fs.writeFileSync(path.join(leak.dir, 'diff/a/b/f'), 'garbage\n');
  fs.mkdirSync(path.join(leak.dir, 'diff/z/y'), { recursive: true });
  fs.writeFileSync(path.join(leak.dir, 'diff/z/y/g'), 'garbage\n');
  return { s, healthy, leak, staged: `${leak.dir}-layergc-removing` };
}

type Action = { kind: string; status: string; paths: string[]; reason?: string };

describe.skipIf(!asRoot)('a mount made after the plan is refused (root)', () => {
  it.concurrent('a bind mount (same filesystem) onto a dir inside the garbage, made just before its item: refused, the mounted dir untouched', async () => {
    const { s, leak } = oneLeak();
    const outside = snapshotTree(s.outside, { dirTimes: true });
    let umount = () => undefined as void;
    try {
      const r = await pausedPurge(s, 'before-item', () => (umount = mountBind(s.outside, path.join(leak.dir, 'diff/a'))));
      expect(r.code).toBe(1);
      const [a] = r.json.actions as Action[];
      expect(a).toMatchObject({ kind: 'unreferenced-driver-dir', status: 'failed' });
      expect(a.reason).toBe(`${leak.dir} has a mount point inside (${leak.dir}/diff/a); layergc never crosses a mount point`);
      expect(fs.existsSync(path.join(leak.dir, 'diff/z/y/g'))).toBe(true); // refused whole, before anything went
      expectSame(outside, snapshotTree(s.outside, { dirTimes: true }), 'outside');
    } finally {
      umount();
    }
  });

  it.concurrent('a bind mount made mid-walk onto a dir not yet visited: that dir is refused by its mount id, nothing under it is touched', async () => {
    const { s, staged } = oneLeak();
    const outside = snapshotTree(s.outside, { dirTimes: true });
    let umount = () => undefined as void;
    try {
      // walk:1 is the top of the staged tree, listed; its diff/ is opened next
      const r = await pausedPurge(s, 'walk:1', () => (umount = mountBind(s.outside, path.join(staged, 'diff'))));
      expect(r.code).toBe(1);
      const [a] = r.json.actions as Action[];
      expect(a.status).toBe('failed');
      expect(a.reason).toBe(`${staged}/diff: is a mount point (a bind mount); layergc never crosses one`);
      expectSame(outside, snapshotTree(s.outside, { dirTimes: true }), 'outside');
    } finally {
      umount();
    }
  });

  it.concurrent('a tmpfs mounted on the staged dir itself before its tree goes: refused as a mount point', async () => {
    const { s, staged } = oneLeak();
    let umount = () => undefined as void;
    try {
      const r = await pausedPurge(s, 'remove-tree', () => {
        expect(spawnSync('mount', ['-t', 'tmpfs', 'none', staged]).status).toBe(0);
        fs.writeFileSync(path.join(staged, 'on-tmpfs'), 'mounted data\n');
        umount = () => void spawnSync('umount', ['-l', staged]);
      });
      expect(r.code).toBe(1);
      expect((r.json.actions as Action[])[0].reason).toBe(`${staged} is a mount point; layergc never removes or crosses one`);
      expect(fs.readFileSync(path.join(staged, 'on-tmpfs'), 'utf8')).toBe('mounted data\n');
    } finally {
      umount();
    }
  });
});

describe('a directory swapped for a symlink mid-run is refused, never followed', () => {
  it.concurrent('a dir inside the garbage, swapped after its parent was listed: refused; the moved dir and the link target are untouched', async () => {
    const { s, staged } = oneLeak();
    let outside = new Map<string, string>();
    const r = await pausedPurge(s, 'walk:1', () => {
      fs.renameSync(path.join(staged, 'diff'), path.join(s.outside, 'moved-diff'));
      fs.symlinkSync(s.outside, path.join(staged, 'diff'));
      outside = snapshotTree(s.outside, { dirTimes: true });
    });
    expect(r.code).toBe(1);
    const [a] = r.json.actions as Action[];
    expect(a.status).toBe('failed');
    expect(a.reason).toBe(`${staged}/diff: became a symlink or a file after it was planned; layergc never follows one, and left it alone`);
    expectSame(outside, snapshotTree(s.outside, { dirTimes: true }), 'outside');
    expect(fs.readFileSync(path.join(s.outside, 'moved-diff/a/b/f'), 'utf8')).toBe('garbage\n');
  });

  it.concurrent('the staged dir itself, swapped for a symlink to outside before its tree goes: refused, outside untouched', async () => {
    const { s, staged } = oneLeak();
    let outside = new Map<string, string>();
    const r = await pausedPurge(s, 'remove-tree', () => {
      fs.renameSync(staged, path.join(s.outside, 'moved-top'));
      fs.symlinkSync(s.outside, staged);
      outside = snapshotTree(s.outside, { dirTimes: true });
    });
    expect(r.code).toBe(1);
    const [a] = r.json.actions as Action[];
    expect(a.status).toBe('failed');
    expect(a.reason).toBe(`${staged}: became a symlink or a file after it was planned; layergc never follows one, and left it alone`);
    expectSame(outside, snapshotTree(s.outside, { dirTimes: true }), 'outside');
    expect(fs.lstatSync(staged).isSymbolicLink()).toBe(true);
  });

  it.concurrent('the staged dir replaced by another real directory: refused, it is not the one that was staged', async () => {
    const { s, staged } = oneLeak();
    const r = await pausedPurge(s, 'remove-tree', () => {
      fs.renameSync(staged, path.join(s.outside, 'moved-top'));
      fs.mkdirSync(staged);
      fs.writeFileSync(path.join(staged, 'someone-elses'), 'x');
    });
    expect(r.code).toBe(1);
    expect((r.json.actions as Action[])[0].reason).toBe(`${staged}: is no longer the directory that was staged for removal; it was left alone`);
    expect(fs.readFileSync(path.join(staged, 'someone-elses'), 'utf8')).toBe('x');
  });

  it.concurrent('the l/ dir swapped for a symlink to a copy outside before a dangling link goes: refused, the copy keeps every link', async () => {
    const s = root();
    s.populate();
    const link = s.danglingLink();
    let outside = new Map<string, string>();
    const r = await pausedPurge(s, 'before-item', () => {
      fs.renameSync(s.links, path.join(s.outside, 'l-moved'));
      fs.symlinkSync(path.join(s.outside, 'l-moved'), s.links);
      outside = snapshotTree(s.outside, { dirTimes: true });
    });
    expect(r.code).toBe(1);
    const [a] = r.json.actions as Action[];
    expect(a).toMatchObject({ kind: 'dangling-link', status: 'failed' });
    expect(a.reason).toBe(`${link}: ${s.links} is a symlink; layergc never follows one`);
    expectSame(outside, snapshotTree(s.outside, { dirTimes: true }), 'outside');
  });
});

/** A chain of nested dirs made relative to open dirs (a path string could not name the bottom). */
function deepTree(top: string, names: string[]): void {
  fs.mkdirSync(top);
  let fd = fs.openSync(top, 'r');
  for (const n of names) {
    fs.mkdirSync(`/proc/self/fd/${fd}/${n}`);
    const next = fs.openSync(`/proc/self/fd/${fd}/${n}`, 'r');
    fs.closeSync(fd);
    fd = next;
  }
  fs.writeFileSync(`/proc/self/fd/${fd}/f`, 'deep\n');
  fs.closeSync(fd);
}

describe('names are bytes', () => {
  it.concurrent('non-UTF-8 names and a tree of multibyte names deeper than PATH_MAX (and deeper than 1000 dirs) are removed', async () => {
    const s = root();
    s.populate();
    const healthy = tree(s.root);
    const leak = s.makeLeakedDriverDir();
    const diff = path.join(leak.dir, 'diff');
    // bytes that are not UTF-8, a newline and an escape sequence in names
    const bad = Buffer.concat([Buffer.from(`${diff}/bad`), Buffer.from([0xff, 0xfe])]);
    fs.mkdirSync(bad);
    fs.writeFileSync(Buffer.concat([bad, Buffer.from('/f'), Buffer.from([0x80])]), 'x');
    fs.writeFileSync(path.join(diff, 'nl\nname'), 'x');
    fs.writeFileSync(path.join(diff, 'esc\x1b[31mred'), 'x');
    // 40 levels of 120 two-byte chars (9600 bytes: deeper than PATH_MAX), then 1100 more levels
    deepTree(path.join(diff, 'deep'), [...Array(40).fill('é'.repeat(120)), ...Array(1100).fill('x')]);
    const r = await purge(s, ['--yes', '--json']);
    expect((r.json.actions as Action[]).map((a) => a.reason ?? a.status)).toEqual(['removed']);
    expect(r.code).toBe(0);
    expectSame(healthy, tree(s.root), 'data root');
  });
});

describe('unknown is not empty: a reference source that cannot be read keeps what it could claim', () => {
  /** A populated root, then `damage`; purge --yes: nothing of the store changes but the expected garbage. */
  async function purgeWithSource(damage: (s: SyntheticRoot) => string, args: string[] = []) {
    const s = root();
    const { app, web } = s.populate();
    const leak = s.makeLeakedDriverDir();
    const where = damage(s);
    const before = tree(s.root);
    const outside = snapshotTree(s.outside, { dirTimes: true });
    const r = await purge(s, ['--yes', '--json', ...args]);
    expectSame(outside, snapshotTree(s.outside, { dirTimes: true }), 'outside');
    return { s, app, web, leak, where, before, r };
  }

  /** Move a source dir to outside/ and leave a symlink to it (people move these to other disks; moby follows it). */
  const symlinked = (rel: (s: SyntheticRoot) => string) => (s: SyntheticRoot) => {
    const p = rel(s);
    const moved = path.join(s.outside, path.basename(p));
    fs.renameSync(p, moved);
    fs.symlinkSync(moved, p);
    return p;
  };

  it.concurrent('layerdb/sha256 a symlink: no driver dir is removed; each is reported kept with the source and why', async () => {
    const { s, leak, where, before, r } = await purgeWithSource(symlinked((s) => path.join(s.layerdb, 'sha256')));
    expect(r.code).toBe(0);
    expectSame(before, tree(s.root), 'data root');
    const acts = r.json.actions as Action[];
    expect(acts.length).toBeGreaterThan(0); // the others are kept already: the container's mount and the lower chains it stacks on
    for (const a of acts) {
      expect(a.status).toBe('skipped');
      expect(a.reason).toBe(
        `kept: ${where} is a symlink (to ${path.join(s.outside, 'sha256')}); layergc never follows one, so layergc cannot tell which driver dirs hold layers; it removes none of them`,
      );
    }
    expect(acts.some((a) => a.paths[0] === leak.dir)).toBe(true);
    expect(r.stderr).toContain(
      `layergc: ${where} is a symlink (to ${path.join(s.outside, 'sha256')}); layergc never follows one: layergc cannot tell which driver dirs hold layers, so purge removes none of the driver dirs it could claim and calls no layer unreferenced`,
    );
  });

  it.concurrent('layerdb/sha256 missing while the driver home holds layer dirs: nothing removed', async () => {
    const { s, before, r, where } = await purgeWithSource((s) => {
      const p = path.join(s.layerdb, 'sha256');
      fs.rmSync(p, { recursive: true });
      return p;
    });
    expect(r.code).toBe(0);
    expectSame(before, tree(s.root), 'data root');
    expect(new Set((r.json.actions as Action[]).map((a) => a.status))).toEqual(new Set(['skipped']));
    expect((r.json.actions as Action[])[0].reason).toMatch(new RegExp(`^kept: ${where} is missing, but the driver home holds \\d+ layer dir\\(s\\)`));
  });

  it.concurrent('layerdb/sha256 a plain file: nothing removed', async () => {
    const { s, before, r } = await purgeWithSource((s) => {
      const p = path.join(s.layerdb, 'sha256');
      fs.renameSync(p, path.join(s.outside, 'sha256'));
      fs.writeFileSync(p, '');
      return p;
    });
    expect(r.code).toBe(0);
    expectSame(before, tree(s.root), 'data root');
  });

  it.concurrent("layerdb/mounts a symlink: the container's RW and init dirs stay; the leaked dir that is no container's goes too only when its name could not be one", async () => {
    const { s, web, leak, where, r } = await purgeWithSource(symlinked((s) => path.join(s.layerdb, 'mounts')));
    expect(r.code).toBe(0);
    const acts = r.json.actions as Action[];
    const byPath = new Map(acts.map((a) => [a.paths[0], a]));
    for (const d of [web.mountDriverDir, web.initDriverDir, leak.dir]) {
      expect(byPath.get(d)?.status, d).toBe('skipped');
      expect(byPath.get(d)?.reason).toBe(
        `kept: ${where} is a symlink (to ${path.join(s.outside, 'mounts')}); layergc never follows one, so layergc cannot tell which driver dirs are containers' layers; it removes none of them`,
      );
      expect(fs.existsSync(d)).toBe(true);
    }
    expect(fs.readFileSync(path.join(web.mountDriverDir, 'diff/written-by-container'), 'utf8')).toBe('rw data\n');
  });

  it.concurrent('imagedb/content/sha256 a symlink, with --include unreferenced-layer: no layer is called unreferenced, none removed', async () => {
    const { s, before, r } = await purgeWithSource(
      (s) => {
        s.addDanglingLayer();
        return symlinked((t) => path.join(t.imageDir, 'imagedb/content/sha256'))(s);
      },
      ['--include', 'unreferenced-layer'],
    );
    expect(r.code).toBe(0);
    const acts = r.json.actions as Action[];
    // only the leaked dir (its name is no layer's) is garbage; every layer stays
    expect(acts.map((a) => a.kind)).toEqual(['unreferenced-driver-dir']);
    const after = tree(s.root);
    expect([...before.keys()].filter((k) => !after.has(k)).every((k) => k.startsWith(path.relative(s.root, acts[0].paths[0])) || k.startsWith('overlay2/l/'))).toBe(true);
  });

  it.concurrent('containers missing while layerdb/mounts holds mounts, with --include unreferenced-layer: no layer removed', async () => {
    const { s, app, r } = await purgeWithSource(
      (s) => {
        s.addDanglingLayer();
        const p = path.join(s.root, 'containers');
        fs.rmSync(p, { recursive: true });
        return p;
      },
      ['--include', 'unreferenced-layer'],
    );
    expect(r.code).toBe(0);
    expect((r.json.actions as Action[]).filter((a) => a.kind === 'unreferenced-layer')).toEqual([]);
    for (const l of app.layers) expect(fs.existsSync(l.driverDir)).toBe(true);
    expect(r.stderr).toContain(`${path.join(s.root, 'containers')} is missing, but layerdb/mounts holds 1 mount(s)`);
  });
});

describe('ids that are not ids are never items', () => {
  it.concurrent('overlay2: entries named exactly -layergc-removing and -removing, and a bookkeeping name, are not items', async () => {
    const s = root();
    s.populate();
    for (const n of ['-layergc-removing', '-removing', 'work']) {
      fs.mkdirSync(path.join(s.home, n));
      fs.writeFileSync(path.join(s.home, n, 'f'), 'x');
    }
    const before = tree(s.root);
    const r = await purge(s, ['--yes', '--json']);
    expect(r.code).toBe(0);
    expect(r.json.actions).toEqual([]);
    expectSame(before, tree(s.root), 'data root');
  });

  /** The layout of `driver` beside the synthetic root's overlay2 one: layerdb dirs and the driver home. */
  function otherDriver(s: SyntheticRoot, driver: string): string {
    const img = path.join(s.root, 'image', driver);
    for (const d of ['layerdb/sha256', 'layerdb/mounts', 'layerdb/tmp', 'imagedb/content/sha256', 'imagedb/metadata/sha256']) fs.mkdirSync(path.join(img, d), { recursive: true });
    return path.join(s.root, driver);
  }

  it.concurrent('aufs: a diff/ entry named exactly -removing does not take aufs/layers/ with it', async () => {
    const s = root();
    const home = otherDriver(s, 'aufs');
    for (const d of ['diff/-removing', 'mnt/-removing', 'layers']) fs.mkdirSync(path.join(home, d), { recursive: true });
    fs.writeFileSync(path.join(home, 'diff/-removing/half'), 'x');
    fs.writeFileSync(path.join(home, 'layers', 'a'.repeat(64)), '');
    const r = await purge(s, ['--yes', '--json', '--driver', 'aufs']);
    expect(r.code).toBe(0);
    // the leftover layers/<id> file is garbage of its own; the dirs are not items
    expect((r.json.actions as Action[]).map((a) => a.paths)).toEqual([[path.join(home, 'layers', 'a'.repeat(64))]]);
    expect(fs.readdirSync(path.join(home, 'diff/-removing'))).toEqual(['half']);
    expect(fs.existsSync(path.join(home, 'layers'))).toBe(true);
  });

  it.concurrent('btrfs: a subvolumes/ entry named exactly -layergc-removing does not take btrfs/quotas/ with it', async () => {
    const s = root();
    const home = otherDriver(s, 'btrfs');
    for (const d of ['subvolumes/-layergc-removing', 'quotas']) fs.mkdirSync(path.join(home, d), { recursive: true });
    fs.writeFileSync(path.join(home, 'subvolumes/-layergc-removing/left'), 'x');
    fs.writeFileSync(path.join(home, 'quotas', 'b'.repeat(64)), '1048576');
    const r = await purge(s, ['--yes', '--json', '--driver', 'btrfs']);
    expect(r.code).toBe(0);
    expect((r.json.actions as Action[]).map((a) => a.paths)).toEqual([[path.join(home, 'quotas', 'b'.repeat(64))]]);
    expect(fs.readdirSync(path.join(home, 'subvolumes/-layergc-removing'))).toEqual(['left']);
    expect(fs.existsSync(path.join(home, 'quotas'))).toBe(true);
  });
});

describe('what may be an only copy is kept', () => {
  it.concurrent('an empty layerdb entry (power loss, moby#44909): the unclaimed dir that may be its data is reported kept, pointing to --include broken', async () => {
    const s = root();
    const { app } = s.populate();
    const leak = s.makeLeakedDriverDir();
    const lost = s.addDanglingLayer({ 'built.txt': 'only copy\n' });
    s.emptyLayerDir(lost.chainId);
    const before = tree(s.root);
    const r = await purge(s, ['--yes', '--json']);
    expect(r.code).toBe(0);
    const acts = r.json.actions as Action[];
    const why = (d: string) => acts.find((a) => a.paths[0] === d);
    for (const d of [leak.dir, lost.driverDir]) {
      expect(why(d)?.status).toBe('skipped');
      expect(why(d)?.reason).toBe(
        `kept: layer ${lost.chainId.slice(7, 19)} has lost its cache-id (cache-id is missing), and this dir may be its only copy, so it is kept; \`layergc purge --include broken\` resolves it`,
      );
    }
    expectSame(before, tree(s.root), 'data root');
    expect(fs.readFileSync(path.join(lost.driverDir, 'diff/built.txt'), 'utf8')).toBe('only copy\n');
    void app;
  });

  it.concurrent('a lost cache-id whose parent is known: a dir whose lower chain does not stack on that parent is ruled out and purged', async () => {
    const s = root();
    const { app } = s.populate();
    const leak = s.makeLeakedDriverDir(); // no lower: a base layer's dir, not a child of app's top
    const lost = s.addDanglingLayer({ 'child.txt': 'child\n' }, app.layers[2]);
    s.writeLayerFile(lost.chainId, 'cache-id', '\0\0\0\0');
    const r = await purge(s, ['--yes', '--json']);
    expect(r.code).toBe(0);
    const acts = r.json.actions as Action[];
    expect(acts.find((a) => a.paths[0] === leak.dir)?.status).toBe('removed');
    expect(acts.find((a) => a.paths[0] === lost.driverDir)?.status).toBe('skipped');
    expect(fs.existsSync(path.join(lost.driverDir, 'diff/child.txt'))).toBe(true);
  });

  it.concurrent('an l/ link whose layer dir exists but lost diff/ is not dangling: it stays', async () => {
    const s = root();
    const { app } = s.populate();
    const top = app.layers[2];
    fs.rmSync(path.join(top.driverDir, 'diff'), { recursive: true });
    const r = await purge(s, ['--yes', '--json']);
    expect((r.json.actions as Action[]).filter((a) => a.kind === 'dangling-link')).toEqual([]);
    expect(fs.readlinkSync(top.linkPath)).toBe(`../${top.cacheId}/diff`);
  });
});

describe('files layergc writes', () => {
  it.concurrent('--metrics-file in a dir that does not exist, or at a symlink: exit 2 before anything is removed', async () => {
    const s = root();
    s.populate();
    const leak = s.makeLeakedDriverDir();
    const before = tree(s.root);
    const link = path.join(s.base, 'metrics.prom');
    fs.symlinkSync(path.join(s.outside, 'precious.txt'), link);
    for (const [target, why] of [
      [path.join(s.base, 'no-such-dir/layergc.prom'), 'ENOENT'],
      [link, 'it is a symlink'],
    ]) {
      const r = await purge(s, ['--yes', '--json', '--metrics-file', target]);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain(`cannot write the metrics file ${target}: `);
      expect(r.stderr).toContain(why);
      expect(r.stderr).toContain('nothing was removed');
    }
    expectSame(before, tree(s.root), 'data root');
    expect(fs.existsSync(leak.dir)).toBe(true);
    expect(fs.readFileSync(path.join(s.outside, 'precious.txt'), 'utf8')).toBe('not docker data\n');
  });

  it.concurrent('the metrics temp file has a random name: a link planted at the old predictable names is never written through', async () => {
    const s = root();
    s.populate();
    const dir = path.join(s.base, 'metrics');
    fs.mkdirSync(dir);
    for (let pid = 1; pid < 50; pid++) fs.symlinkSync(path.join(s.outside, 'precious.txt'), path.join(dir, `.layergc.prom.${pid}.tmp`));
    const r = await purge(s, ['--yes', '--json', '--metrics-file', path.join(dir, 'layergc.prom')]);
    expect(r.code).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'layergc.prom'), 'utf8')).toContain('layergc_purge_items');
    expect(fs.readFileSync(path.join(s.outside, 'precious.txt'), 'utf8')).toBe('not docker data\n');
    expect(fs.readdirSync(dir).filter((n) => !n.endsWith('.tmp') || !fs.lstatSync(path.join(dir, n)).isSymbolicLink())).toEqual(['layergc.prom']);
  });
});

describe('the lock and the journal are never trusted', () => {
  it.concurrent('journal lines of the wrong shape (42, null, {"paths":[1]}) are skipped with a warning; the purge runs and reports', async () => {
    const s = root();
    s.populate();
    const leak = s.makeLeakedDriverDir();
    fs.mkdirSync(path.join(s.root, 'layergc'), { mode: 0o700 });
    fs.writeFileSync(path.join(s.root, 'layergc/journal.jsonl'), '42\nnull\n{"paths":[1]}\n{"event":"intent","kind":"x","paths":[]}\n');
    const r = await purge(s, ['--yes', '--json']);
    expect(r.code).toBe(0);
    expect((r.json.actions as Action[]).map((a) => [a.paths[0], a.status])).toEqual([[leak.dir, 'removed']]);
    for (const l of ['42', 'null', '{"paths":[1]}']) expect(r.stderr).toContain(`skipped a journal line of the wrong shape: ${JSON.stringify(l)}`);
  });

  it.concurrent('a FIFO at the lock and at the journal, a lock that is a symlink to /dev/zero: no hang, no memory blow-up; the run ends with a report', async () => {
    const s = root();
    s.populate();
    s.makeLeakedDriverDir();
    const state = path.join(s.root, 'layergc');
    fs.mkdirSync(state, { mode: 0o700 });
    expect(spawnSync('mkfifo', [path.join(state, 'journal.jsonl')]).status).toBe(0);
    fs.symlinkSync('/dev/zero', path.join(state, 'lock'));
    const r = await purge(s, ['--yes', '--json']);
    expect([0, 1]).toContain(r.code);
    expect(r.json.actions).toHaveLength(1);
    expect(fs.existsSync('/dev/zero')).toBe(true);
    fs.rmSync(path.join(state, 'journal.jsonl'));
    expect(spawnSync('mkfifo', [path.join(state, 'lock')]).status).toBe(0);
    const r2 = await purge(s, ['--yes', '--json']);
    expect([0, 1]).toContain(r2.code);
    expect(r2.json).toBeDefined();
  });
});

const canChattr = process.getuid?.() === 0 && spawnSync('chattr', ['--help']).error === undefined;

describe('output is safe', () => {
  it.skipIf(!canChattr).concurrent('a name with a quote, a newline and an escape sequence: printed escaped, and the chattr remedy is one POSIX shell word for exactly those bytes', async () => {
    const s = root();
    s.populate();
    const leak = s.makeLeakedDriverDir();
    const name = "x'$(touch pwned)\n\x1b[31mred";
    const file = path.join(leak.dir, 'diff', name);
    fs.writeFileSync(file, 'x');
    expect(spawnSync('chattr', ['+i', file]).status).toBe(0);
    try {
      const r = await purge(s, ['--yes']);
      expect(r.code).toBe(1);
      expect(r.stdout).not.toContain('\x1b');
      expect(r.stderr).not.toContain('\x1b');
      const staged = `${leak.dir}-layergc-removing/diff/${name}`;
      expect(r.stdout).toContain(`${leak.dir}-layergc-removing/diff/x'$(touch pwned)\\x0a\\x1b[31mred`);
      // the printed remedy, run by sh, names the file itself and runs nothing else
      const cmd = /clear it with: (chattr -i .*?)\)?$/m.exec(r.stdout)![1];
      expect(cmd).toMatch(/^chattr -i "\$\(printf '[^']*'\)"$/);
      const sh = spawnSync('sh', ['-c', cmd.replace(/^chattr -i /, 'printf %s ')], { cwd: s.base });
      expect(sh.stdout.toString()).toBe(staged);
      expect(fs.existsSync(path.join(s.base, 'pwned'))).toBe(false);
    } finally {
      spawnSync('chattr', ['-R', '-i', s.base]);
    }
  });
});

describe.skipIf(!asRoot)('whose daemon (root)', () => {
  it.concurrent('a dockerd whose --data-root is another name for this root (a bind mount; through /proc/<pid>/root): matched by device and inode, young leaked dirs kept', async () => {
    const s = root();
    s.populate();
    s.makeLeakedDriverDir();
    const alias = path.join(s.base, 'alias');
    fs.mkdirSync(alias);
    const umount = mountBind(s.root, alias);
    const bin = path.join(s.base, 'fake-bin');
    fs.mkdirSync(bin);
    fs.writeFileSync(path.join(bin, 'dockerd'), '#!/bin/sh\nwhile :; do sleep 1; done\n', { mode: 0o755 });
    const { spawn } = await import('node:child_process');
    const child = spawn(path.join(bin, 'dockerd'), ['--data-root', alias], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 300 && fs.readFileSync(`/proc/${child.pid}/comm`, 'utf8').trim() !== 'dockerd'; i++) await sleep(10);
      const r = await purge(s, ['--yes', '--json']);
      expect(r.json.daemonRunning).toBe(true);
      expect((r.json.actions as Action[]).map((a) => a.status)).toEqual(['skipped']);
      expect((r.json.actions as Action[])[0].reason).toContain('younger than --min-age');
    } finally {
      child.kill('SIGKILL');
      umount();
    }
  });
});

const canUnshareMount = asRoot && spawnSync('unshare', ['--mount', 'true']).status === 0;

describe.skipIf(!canUnshareMount)('whose daemon: a dockerd in another mount namespace (Docker-in-Docker, CI runners)', () => {
  /** A process named dockerd, started in a mount namespace of its own after `setup` (sh) ran there. */
  async function dockerdInNamespace(s: SyntheticRoot, setup: string, args: string[]): Promise<{ pid: number; stop: () => void }> {
    const bin = path.join(s.base, 'ns-bin');
    fs.mkdirSync(bin, { recursive: true });
    fs.writeFileSync(path.join(bin, 'dockerd'), '#!/bin/sh\nwhile :; do sleep 1; done\n', { mode: 0o755 });
    const { spawn } = await import('node:child_process');
    const child = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', `set -e; ${setup}; exec "$0" "$@"`, path.join(bin, 'dockerd'), ...args], { stdio: 'ignore' });
    const pid = child.pid!;
    for (let i = 0; i < 500; i++) {
      try {
        if (fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'dockerd') break;
      } catch {
        /* not yet */
      }
      await sleep(10);
    }
    return { pid, stop: () => child.kill('SIGKILL') };
  }

  it.concurrent('its config file and data root exist only in its namespace (a bind mount at another path): read through /proc/<pid>/root, matched by device and inode; treated as a running daemon', async () => {
    const s = root();
    s.populate();
    const leak = s.makeLeakedDriverDir();
    const before = snapshotTree(s.root, { exclude: STATE });
    const inner = path.join(s.base, 'inner');
    fs.mkdirSync(inner);
    // in its namespace: a tmpfs over inner/, the data root bind-mounted at inner/dind, its config at inner/etc
    const setup = `mount -t tmpfs tmpfs ${inner}; mkdir -p ${inner}/dind ${inner}/etc; mount --bind ${s.root} ${inner}/dind; printf '{"data-root": "${inner}/dind"}' > ${inner}/etc/daemon.json`;
    const d = await dockerdInNamespace(s, setup, ['--config-file', `${inner}/etc/daemon.json`]);
    try {
      expect(fs.readdirSync(inner)).toEqual([]); // none of it is visible here
      const r = await purge(s, ['--yes', '--json']);
      expect(r.json.daemonRunning).toBe(true);
      expect((r.json.actions as Action[]).map((a) => [a.paths[0], a.status])).toEqual([[leak.dir, 'skipped']]);
      expect((r.json.actions as Action[])[0].reason).toContain('younger than --min-age');
      const u = await purge(s, ['--yes', '--include', 'unreferenced-layer']);
      expect(u.code).toBe(3);
      expect(u.stderr).toContain(`a dockerd (pid ${d.pid}) runs on ${s.root}`);
      expectSame(before, snapshotTree(s.root, { exclude: STATE }), 'the root');
    } finally {
      d.stop();
    }
  });

  it.concurrent("a dockerd whose data root has the same path as this root, but is another directory in its namespace: not this root's daemon", async () => {
    const s = root();
    s.populate();
    const leak = s.makeLeakedDriverDir();
    const other = path.join(s.base, 'other-root');
    fs.mkdirSync(other);
    const d = await dockerdInNamespace(s, `mount --bind ${other} ${s.root}`, ['--data-root', s.root]);
    try {
      const r = await purge(s, ['--yes', '--json']);
      expect(r.json.daemonRunning).toBe(false);
      expect((r.json.actions as Action[]).map((a) => [a.paths[0], a.status])).toEqual([[leak.dir, 'removed']]);
    } finally {
      d.stop();
    }
  });
});
