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
