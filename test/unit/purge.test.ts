/**
 * `layergc purge` through the real CLI on synthetic data roots: the dry run changes nothing, a real
 * run removes exactly the garbage (the tree that is left equals the healthy tree) and nothing
 * outside the data root or live, a failing removal is reported and finished by the next run, the
 * lock keeps two runs apart, the journal records each item, and a run killed between any two steps
 * is finished by the next one.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { hostname } from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { diffSnapshots, REPO, rootMaker, runCliAsync, scan, snapshotTree, type SyntheticRoot, type CliResult } from '../helpers/synthetic.js';

const root = rootMaker();

/** layergc's own state (lock, journal) is not part of the store's tree */
const STATE = ['layergc'];

/** Structure and content (file mtimes included; dir times change when entries go). */
const tree = (dir: string) => snapshotTree(dir, { exclude: STATE });

function expectSameTree(before: Map<string, string>, after: Map<string, string>, what = 'tree'): void {
  expect(diffSnapshots(before, after), `${what} changed`).toEqual({ onlyBefore: [], onlyAfter: [], changed: [] });
}

interface GarbageRoot {
  s: SyntheticRoot;
  healthy: Map<string, string>;
  outside: Map<string, string>;
  /** how many items a default purge has */
  items: number;
}

/** A populated root, its healthy tree, then one of each kind of garbage a default purge removes. */
function garbageRoot(): GarbageRoot {
  const s = root();
  s.populate();
  const healthy = tree(s.root);
  const outside = snapshotTree(s.outside, { dirTimes: true });
  s.makeRemovingOrphan();
  s.makeRemovingOrphan({ cacheIdFile: null, driverData: 'none' });
  s.makeWriteSet({ withDriverDir: true });
  s.makeWriteSet({ withDriverDir: true, cacheId: true });
  s.makeLeakedDriverDir();
  s.makeLeakedDriverDir({ init: true });
  s.makeBuildkitDir();
  s.danglingLink();
  // removing-orphan ×2, stale-write-set ×2, unreferenced-driver-dir ×4 (the killed load's dir too), dangling-link
  return { s, healthy, outside, items: 9 };
}

const purge = (s: SyntheticRoot, args: string[], env?: Record<string, string>) => runCliAsync(['purge', '--data-root', s.root, ...args], { env });

async function expectClean(s: SyntheticRoot): Promise<void> {
  const r = await scan(s.root);
  expect(r.json.findings).toEqual([]);
  expect(r.code).toBe(0);
}

function journal(s: SyntheticRoot): { event: string; kind: string; paths: string[]; run: string; reason?: string }[] {
  return fs
    .readFileSync(path.join(s.root, 'layergc/journal.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
}

describe('dry run and real run', () => {
  it.concurrent('--dry-run plans every item and leaves the tree byte for byte as it was', async () => {
    const g = garbageRoot();
    const before = snapshotTree(g.s.root, { dirTimes: true });
    const r = await purge(g.s, ['--dry-run', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.json.dryRun).toBe(true);
    expect(r.json.actions).toHaveLength(g.items);
    expect(r.json.actions.every((a: { status: string }) => a.status === 'planned')).toBe(true);
    expect(r.json.summary).toEqual({ removed: 0, failed: 0, skipped: 0, planned: g.items, reclaimedBytes: 0, plannedBytes: expect.any(Number) });
    expect(r.json.summary.plannedBytes).toBeGreaterThan(0);
    const human = await purge(g.s, ['--dry-run']);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`Would remove ${g.items} items`);
    expect(human.stdout).toContain('Nothing was changed.');
    expect(snapshotTree(g.s.root, { dirTimes: true })).toEqual(before);
    expect(fs.existsSync(path.join(g.s.root, 'layergc'))).toBe(false);
  });

  it.concurrent('--yes removes exactly the garbage: what is left is the healthy tree; a second scan is clean', async () => {
    const g = garbageRoot();
    const planned = (await purge(g.s, ['--dry-run', '--json'])).json.actions;
    const r = await purge(g.s, ['--yes', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.json.dryRun).toBe(false);
    // the real run carries out the dry run's plan, item for item (bytes: what each freed, as measured)
    const shape = (a: { kind: string; paths: string[] }) => ({ kind: a.kind, paths: a.paths });
    expect(r.json.actions.map(shape)).toEqual(planned.map(shape));
    expect(r.json.actions.every((a: { status: string }) => a.status === 'removed')).toBe(true);
    expect(r.json.summary).toMatchObject({ removed: g.items, failed: 0, skipped: 0, planned: 0, plannedBytes: 0 });
    expect(r.json.summary.reclaimedBytes).toBe(r.json.actions.reduce((t: number, a: { bytes: number }) => t + a.bytes, 0));
    expectSameTree(g.healthy, tree(g.s.root));
    expectSameTree(g.outside, snapshotTree(g.s.outside, { dirTimes: true }), 'outside');
    await expectClean(g.s);
    // nothing is left to do, and the lock is released
    const again = await purge(g.s, ['--yes', '--json']);
    expect(again.code).toBe(0);
    expect(again.json.actions).toEqual([]);
    expect(fs.readdirSync(path.join(g.s.root, 'layergc'))).toEqual(['journal.jsonl']);
  });

  it.concurrent('journal: an intent line and then a removed line for every item', async () => {
    const g = garbageRoot();
    const r = await purge(g.s, ['--yes', '--json']);
    expect(r.code).toBe(0);
    const lines = journal(g.s);
    expect(lines).toHaveLength(2 * g.items);
    expect(new Set(lines.map((l) => l.run)).size).toBe(1);
    for (const [i, a] of (r.json.actions as { kind: string; paths: string[] }[]).entries()) {
      expect(lines[2 * i]).toMatchObject({ event: 'intent', kind: a.kind, paths: a.paths });
      expect(lines[2 * i + 1]).toMatchObject({ event: 'removed', kind: a.kind, paths: a.paths });
    }
    expect(fs.statSync(path.join(g.s.root, 'layergc/journal.jsonl')).mode & 0o777).toBe(0o600);
  });

  it.concurrent('without --yes and without a terminal: exit 2, nothing changed', async () => {
    const g = garbageRoot();
    const before = snapshotTree(g.s.root, { dirTimes: true });
    const r = await purge(g.s, []);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toEqual(['layergc: refusing to remove anything without --yes when not on a terminal; pass --yes to remove, or --dry-run to see the plan']);
    expect(snapshotTree(g.s.root, { dirTimes: true })).toEqual(before);
    for (const [args, msg] of [
      [['--dry-run', '--yes'], '--dry-run and --yes contradict each other'],
      [['--yes', '--include', 'invalid-image'], '--include invalid-image: not a kind purge can remove'],
      [['--yes', '--min-age', 'soon'], '--min-age "soon" is not a duration'],
    ] as const) {
      const bad = await purge(g.s, [...args]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain(msg);
    }
    expect(snapshotTree(g.s.root, { dirTimes: true })).toEqual(before);
  });

  it.concurrent('unreferenced layers go only with --include unreferenced-layer, children first', async () => {
    const s = root();
    s.populate();
    const healthy = tree(s.root);
    const p = s.addDanglingLayer({ p: 'parent' });
    const c = s.addDanglingLayer({ c: 'child' }, p);
    const dflt = await purge(s, ['--yes', '--json']);
    expect(dflt.code).toBe(0);
    expect(dflt.json.actions).toEqual([]);
    const r = await purge(s, ['--yes', '--json', '--include', 'unreferenced-layer']);
    expect(r.code).toBe(0);
    expect(r.json.actions.map((a: { paths: string[]; status: string }) => [a.paths[0], a.status])).toEqual([
      [c.dir, 'removed'],
      [p.dir, 'removed'],
    ]);
    expectSameTree(healthy, tree(s.root));
    await expectClean(s);
  });
});

describe('hostile trees: nothing outside the data root, nothing live', () => {
  async function purgeHostile(s: SyntheticRoot, healthy: Map<string, string>, outside: Map<string, string>, keep: string[]): Promise<CliResult> {
    const r = await purge(s, ['--yes', '--json']);
    expect(r.code).toBe(0);
    expectSameTree(outside, snapshotTree(s.outside, { dirTimes: true }), 'outside');
    // the hostile entries themselves are reported by scan, never removed or followed
    const after = tree(s.root);
    for (const k of keep) expect(after.has(path.relative(s.root, k)), `${k} kept`).toBe(true);
    const rest = new Map([...after].filter(([p]) => !keep.some((k) => path.relative(s.root, k) === p)));
    expectSameTree(healthy, rest);
    expectSameTree(outside, snapshotTree(s.outside, { dirTimes: true }), 'outside');
    return r;
  }

  it.concurrent('a -removing entry that is a symlink to an outside folder: the link stays, its target survives', async () => {
    const s = root();
    s.populate();
    const healthy = tree(s.root);
    const outside = snapshotTree(s.outside, { dirTimes: true });
    const l = s.removingSymlinkOutside();
    s.makeRemovingOrphan();
    await purgeHostile(s, healthy, outside, [l.path]);
    expect(fs.readFileSync(path.join(l.target, 'keep.txt'), 'utf8')).toBe('keep me\n');
  });

  it.concurrent('a cache-id of ../../..: only the -removing entry goes', async () => {
    const s = root();
    s.populate();
    const healthy = tree(s.root);
    const outside = snapshotTree(s.outside, { dirTimes: true });
    const o = s.makeRemovingOrphan({ cacheIdFile: '../../..', driverData: 'none' });
    const r = await purgeHostile(s, healthy, outside, []);
    expect(r.json.actions).toEqual([{ kind: 'removing-orphan', paths: [o.dir], bytes: expect.any(Number), status: 'removed' }]);
    expect(fs.existsSync(s.base)).toBe(true);
  });

  it.concurrent("a -removing entry and a write-set whose cache-ids are live layers': the metadata goes, the live driver dirs stay", async () => {
    const s = root();
    const { app } = s.populate();
    const healthy = tree(s.root);
    const outside = snapshotTree(s.outside, { dirTimes: true });
    const top = app.layers[2];
    const o = s.makeRemovingOrphan({ cacheId: top.cacheId });
    const w = s.makeWriteSet({ cacheIdValue: app.layers[0].cacheId });
    const r = await purgeHostile(s, healthy, outside, []);
    expect(r.json.actions).toEqual([
      { kind: 'removing-orphan', paths: [o.dir], bytes: expect.any(Number), status: 'removed' },
      { kind: 'stale-write-set', paths: [w.dir], bytes: expect.any(Number), status: 'removed' },
    ]);
    expect(fs.existsSync(o.dir)).toBe(false);
    expect(fs.readdirSync(top.driverDir).sort()).toEqual(['committed', 'diff', 'link', 'lower', 'work']);
    expect(fs.readlinkSync(top.linkPath)).toBe(`../${top.cacheId}/diff`);
    await expectClean(s);
  });

  it.concurrent('an unreferenced driver entry that is a symlink out, and an l/ link to /etc: both stay, their targets untouched', async () => {
    const s = root();
    s.populate();
    const healthy = tree(s.root);
    const outside = snapshotTree(s.outside, { dirTimes: true });
    const etc = snapshotTree('/etc/ssl', { dirTimes: true });
    const d = s.driverSymlinkOutside();
    const l = s.shortLinkTo('/etc/ssl');
    const r = await purgeHostile(s, healthy, outside, [d.path, l]);
    expect(r.json.actions).toEqual([]);
    expectSameTree(etc, snapshotTree('/etc/ssl', { dirTimes: true }), '/etc/ssl');
  });

  it.concurrent('a -removing entry whose cache-id names a symlink in overlay2/ that points out: the target survives, the unsafe link is left alone', async () => {
    const s = root();
    s.populate();
    const healthy = tree(s.root);
    const outside = snapshotTree(s.outside, { dirTimes: true });
    const d = s.driverSymlinkOutside();
    s.makeRemovingOrphan({ cacheId: path.basename(d.path) });
    // unsafe-path says: reported, never followed, never removed
    await purgeHostile(s, healthy, outside, [d.path]);
  });

  it.concurrent('a -removing entry with cache-id "l" does not take overlay2/l (every layer\'s short links) with it', async () => {
    const s = root();
    s.populate();
    const healthy = tree(s.root);
    const outside = snapshotTree(s.outside, { dirTimes: true });
    s.makeRemovingOrphan({ cacheIdFile: 'l', driverData: 'none' });
    await purge(s, ['--yes', '--json']);
    expectSameTree(healthy, tree(s.root));
    expectSameTree(outside, snapshotTree(s.outside, { dirTimes: true }), 'outside');
  });

  it.concurrent('a layergc state dir that is a symlink out: no lock or journal is written outside', async () => {
    const s = root();
    s.populate();
    s.makeLeakedDriverDir();
    fs.symlinkSync(s.outside, path.join(s.root, 'layergc'));
    const outside = snapshotTree(s.outside, { dirTimes: true });
    await purge(s, ['--yes', '--json']);
    expectSameTree(outside, snapshotTree(s.outside, { dirTimes: true }), 'outside');
  });

  it.concurrent('a journal that is a symlink to a file outside: it is not appended to', async () => {
    const s = root();
    s.populate();
    s.makeLeakedDriverDir();
    fs.mkdirSync(path.join(s.root, 'layergc'), { mode: 0o700 });
    fs.symlinkSync(path.join(s.outside, 'precious.txt'), path.join(s.root, 'layergc/journal.jsonl'));
    await purge(s, ['--yes', '--json']);
    expect(fs.readFileSync(path.join(s.outside, 'precious.txt'), 'utf8')).toBe('not docker data\n');
  });

  it.concurrent('/ and a plain file as the data root: exit 2, nothing done', async () => {
    const s = root();
    const file = path.join(s.base, 'plain-file');
    fs.writeFileSync(file, 'x');
    for (const [dr, msg] of [
      ['/', '/ is not a Docker data root'],
      [file, `${file} is not a directory`],
    ]) {
      const r = await runCliAsync(['purge', '--data-root', dr, '--yes', '--json']);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain(msg);
    }
    expect(fs.existsSync('/layergc')).toBe(false);
  });
});

const asRoot = process.getuid?.() === 0 && spawnSync('chattr', ['--help']).error === undefined;

describe('a removal that fails', () => {
  it.skipIf(!asRoot).concurrent('an immutable file: exit 1, the file named with the hint, everything else removed; after chattr -i the next run finishes', async () => {
    const g = garbageRoot();
    const leak = g.s.makeLeakedDriverDir();
    const file = path.join(leak.dir, 'diff/leaked.bin');
    expect(spawnSync('chattr', ['+i', file]).status).toBe(0);
    const r = await purge(g.s, ['--yes', '--json']);
    expect(r.code).toBe(1);
    const failed = r.json.actions.filter((a: { status: string }) => a.status === 'failed');
    const staged = `${leak.dir}-layergc-removing/diff/leaked.bin`;
    expect(failed).toEqual([{ kind: 'unreferenced-driver-dir', paths: [leak.dir, leak.linkPath], bytes: expect.any(Number), status: 'failed', reason: expect.stringContaining(staged) }]);
    expect(failed[0].reason).toContain(`it has the immutable attribute; clear it with: chattr -i '${staged}'`);
    expect(r.json.summary).toMatchObject({ removed: g.items, failed: 1 });
    expect(r.stderr).toContain(`could not remove unreferenced-driver-dir ${leak.dir}`);
    // everything else is gone: what is left is the healthy tree plus the staged dir down to the file
    const left = diffSnapshots(g.healthy, tree(g.s.root));
    const stagedRel = path.relative(g.s.root, `${leak.dir}-layergc-removing`);
    expect(left).toEqual({ onlyBefore: [], onlyAfter: [stagedRel, `${stagedRel}/diff`, `${stagedRel}/diff/leaked.bin`], changed: [] });
    expect(journal(g.s).filter((l) => l.event === 'failed')).toHaveLength(1);

    expect(spawnSync('chattr', ['-i', staged]).status).toBe(0);
    const again = await purge(g.s, ['--yes', '--json']);
    expect(again.code).toBe(0);
    expect(again.json.actions).toEqual([{ kind: 'unreferenced-driver-dir', paths: [`${leak.dir}-layergc-removing`], bytes: expect.any(Number), status: 'removed' }]);
    expectSameTree(g.healthy, tree(g.s.root));
    await expectClean(g.s);
  });
});

describe('lock', () => {
  function writeLock(s: SyntheticRoot, pid: number, since: string): void {
    fs.mkdirSync(path.join(s.root, 'layergc'), { mode: 0o700 });
    // a live holder's start time proves it is the process that took the lock (test/unit/lock.test.ts)
    const stat = fs.existsSync(`/proc/${pid}/stat`) ? fs.readFileSync(`/proc/${pid}/stat`, 'utf8') : undefined;
    const startTime = stat?.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    fs.writeFileSync(path.join(s.root, 'layergc/lock'), `${JSON.stringify({ pid, host: hostname(), since, command: 'layergc purge', startTime })}\n`);
  }

  it.concurrent('held by a live process on this host: exit 5 naming pid, host and since; nothing changed', async () => {
    const g = garbageRoot();
    const since = '2026-01-02T03:04:05.000Z';
    writeLock(g.s, process.pid, since);
    const lock = fs.readFileSync(path.join(g.s.root, 'layergc/lock'), 'utf8');
    const before = snapshotTree(g.s.root, { dirTimes: true, exclude: STATE });
    const r = await purge(g.s, ['--yes', '--json']);
    expect(r.code).toBe(5);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`another layergc holds ${g.s.root}: pid ${process.pid} on ${hostname()}, since ${since}`);
    expect(snapshotTree(g.s.root, { dirTimes: true, exclude: STATE })).toEqual(before);
    expect(fs.readFileSync(path.join(g.s.root, 'layergc/lock'), 'utf8')).toBe(lock);
    expect(fs.readdirSync(path.join(g.s.root, 'layergc'))).toEqual(['lock']);
  });

  it.concurrent('held by a process on another host (even with a pid that is dead here): exit 5', async () => {
    const g = garbageRoot();
    const dead = spawnSync('true');
    fs.mkdirSync(path.join(g.s.root, 'layergc'), { mode: 0o700 });
    fs.writeFileSync(path.join(g.s.root, 'layergc/lock'), JSON.stringify({ pid: dead.pid, host: 'elsewhere.example', since: '2026-01-02T03:04:05.000Z' }));
    const r = await purge(g.s, ['--yes', '--json']);
    expect(r.code).toBe(5);
    expect(r.stderr).toContain(`pid ${dead.pid} on elsewhere.example, since 2026-01-02T03:04:05.000Z`);
    expect(fs.existsSync(path.join(g.s.root, 'overlay2/l'))).toBe(true);
  });

  it.concurrent('held by a dead process: taken over, the purge runs, the takeover is logged', async () => {
    const g = garbageRoot();
    const dead = spawnSync('true');
    expect(dead.status).toBe(0);
    writeLock(g.s, dead.pid!, '2026-01-02T03:04:05.000Z');
    const r = await purge(g.s, ['--yes', '--json']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`took over the lock of a layergc that died: pid ${dead.pid} on ${hostname()}, since 2026-01-02T03:04:05.000Z`);
    expect(r.json.summary.removed).toBe(g.items);
    expect(fs.existsSync(path.join(g.s.root, 'layergc/lock'))).toBe(false);
    expectSameTree(g.healthy, tree(g.s.root));
  });
});

/**
 * Each crash point once, at the n-th time it is reached, so that the crash lands in different items
 * of `crashRoot`'s plan: 1 removing-orphan (driver dir renamed, removed, then its entry), 2
 * stale-write-set with its driver dir, 3 unreferenced-driver-dir, 4 dangling-link.
 */
const CRASHES: [step: string, nth: number, where: string][] = [
  ['after-intent', 4, 'the dangling link, before it is unlinked'],
  ['before-rename', 3, 'the leaked driver dir, before it is staged'],
  ['after-rename', 1, "the -removing entry's driver dir, just staged"],
  ['after-stage', 2, 'the write-set, before its driver dir goes'],
  ['remove-tree', 2, "the -removing entry's metadata, after its driver dir went"],
  ['after-driver', 1, 'the -removing entry, after its driver dir went'],
  ['after-metadata', 2, 'the write-set, gone but not journaled'],
  ['walk', 3, 'the leaked driver dir, half way through its tree'],
];

/** A populated root and its healthy tree, then four garbage items, one of each default kind. */
function crashRoot(): GarbageRoot {
  const s = root();
  s.populate();
  const healthy = tree(s.root);
  const outside = snapshotTree(s.outside, { dirTimes: true });
  s.makeRemovingOrphan();
  s.makeWriteSet({ withDriverDir: true, cacheId: true });
  s.makeLeakedDriverDir();
  s.danglingLink();
  return { s, healthy, outside, items: 4 };
}

describe('killed mid-run (LAYERGC_TEST_CRASH_AT), the next purge finishes', () => {
  async function crashThenResume(g: GarbageRoot, step: string, args: string[] = []): Promise<void> {
    const crashed = await purge(g.s, ['--yes', '--json', ...args], { LAYERGC_TEST_CRASH_AT: step });
    expect(crashed.signal, `${step}: killed`).toBe('SIGKILL');
    expect(crashed.stdout).toBe('');
    const r = await purge(g.s, ['--yes', '--json', ...args]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('took over the lock of a layergc that died');
    expect(r.stderr).toContain('finishing 1 item(s) an interrupted purge left');
    expect(r.json.summary.failed).toBe(0);
    expectSameTree(g.healthy, tree(g.s.root));
    expectSameTree(g.outside, snapshotTree(g.s.outside, { dirTimes: true }), 'outside');
    await expectClean(g.s);
  }

  it('every crash point is one the code has', () => {
    const src = ['src/fsx/remove.ts', 'src/purge/execute.ts'].map((f) => fs.readFileSync(path.join(REPO, f), 'utf8')).join('\n');
    // before-item comes before an item's first change: a pause point for the race tests, nothing to resume
    const points = [...src.matchAll(/faultPoint\('([a-z-]+)'\)/g)]
      .map((m) => m[1])
      .filter((p, i, all) => p !== 'before-item' && all.indexOf(p) === i)
      .sort();
    expect(points).toEqual(CRASHES.map(([step]) => step).sort());
  });

  for (const [step, nth, where] of CRASHES) {
    it.concurrent(`at ${step} (${where})`, async () => {
      await crashThenResume(crashRoot(), `${step}:${nth}`);
    });
  }

  // the layerdb entry is renamed to <chain>-<random>-removing first, as moby's deleteLayer does
  for (const step of ['after-rename', 'after-driver']) {
    it.concurrent(`at ${step} while removing an unreferenced layer (--include unreferenced-layer)`, async () => {
      const s = root();
      s.populate();
      const healthy = tree(s.root);
      const outside = snapshotTree(s.outside, { dirTimes: true });
      const p = s.addDanglingLayer({ p: 'parent' });
      s.addDanglingLayer({ c: 'child' }, p);
      await crashThenResume({ s, healthy, outside, items: 2 }, step, ['--include', 'unreferenced-layer']);
    });
  }

  it.concurrent('a resumed item is closed in the journal: later runs do not report it as unfinished', async () => {
    const s = root();
    s.populate();
    s.makeLeakedDriverDir();
    const crashed = await purge(s, ['--yes', '--json'], { LAYERGC_TEST_CRASH_AT: 'after-rename' });
    expect(crashed.signal).toBe('SIGKILL');
    const resumed = await purge(s, ['--yes', '--json']);
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toContain('finishing 1 item(s)');
    const later = await purge(s, ['--yes', '--json']);
    expect(later.code).toBe(0);
    expect(later.json.actions).toEqual([]);
    expect(later.stderr).not.toContain('finishing');
  });
});
