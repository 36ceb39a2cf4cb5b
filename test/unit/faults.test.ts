/**
 * A full disk (ENOSPC), a read-only filesystem (EROFS) and a refusal (EACCES/EPERM) at each write a
 * purge makes (issue 8): the lock, the journal, the staging rename, a removal, the metrics file. The
 * faults are injected through the real CLI at the filesystem seam (LAYERGC_TEST_WRITE_ERROR,
 * src/fsx/fault.ts), and made for real where the machine allows (a read-only bind mount, a full
 * tmpfs, an unprivileged user). Each case: one line naming the cause, no stack trace, nothing left
 * that the next run does not clean, a report that says exactly what was and was not done.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { hostname } from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, diffSnapshots, REPO, rootMaker, runCliAsync, snapshotTree, type SyntheticRoot } from '../helpers/synthetic.js';

const root = rootMaker();
const tree = (dir: string) => snapshotTree(dir, { exclude: ['layergc'] });
const purge = (s: SyntheticRoot | string, args: string[], fault?: string) =>
  runCliAsync(['purge', '--data-root', typeof s === 'string' ? s : s.root, ...args], { env: fault ? { LAYERGC_TEST_WRITE_ERROR: fault } : {} });
const asRoot = process.getuid?.() === 0;
const ROOT_DENIED = 'permission denied even to root: an immutable or append-only attribute, a security module or a root-squashed network filesystem';
const CAUSE: Record<string, string> = {
  ENOSPC: 'the filesystem is full (ENOSPC)',
  EROFS: 'the filesystem is read-only (EROFS)',
  EACCES: `${asRoot ? ROOT_DENIED : 'permission denied: run as root'} (EACCES)`,
};

type Action = { kind: string; status: string; paths: string[]; reason?: string };

function expectSame(before: Map<string, string>, after: Map<string, string>, what = 'tree'): void {
  expect(diffSnapshots(before, after), `${what} changed`).toEqual({ onlyBefore: [], onlyAfter: [], changed: [] });
}

/** A populated root, its healthy tree, then two leaked driver dirs: `a` holds victim.bin. */
function twoLeaks() {
  const s = root();
  s.populate();
  const healthy = tree(s.root);
  const a = s.makeLeakedDriverDir();
  fs.writeFileSync(path.join(a.dir, 'diff/victim.bin'), 'x'.repeat(10000));
  const b = s.makeLeakedDriverDir();
  return { s, healthy, a, b, garbage: tree(s.root), outside: snapshotTree(s.outside, { dirTimes: true }) };
}
const stateFiles = (s: SyntheticRoot) => (fs.existsSync(path.join(s.root, 'layergc')) ? fs.readdirSync(path.join(s.root, 'layergc')).sort() : []);
const statusOf = (r: { json?: { actions: Action[] } }) => Object.fromEntries(r.json!.actions.map((x) => [x.paths[0], x.status]));

/** The next run, with the fault gone, finishes: exit 0, the tree is the healthy one. */
async function nextRunFinishes(g: ReturnType<typeof twoLeaks>): Promise<void> {
  const r = await purge(g.s, ['--yes', '--json']);
  expect(r.code, r.stderr).toBe(0);
  expect(r.json.summary.failed).toBe(0);
  expectSame(g.healthy, tree(g.s.root));
  expectSame(g.outside, snapshotTree(g.s.outside, { dirTimes: true }), 'outside');
  expect(stateFiles(g.s)).toEqual(['journal.jsonl']);
}

describe('taking the lock', () => {
  for (const [code, op] of [
    ['ENOSPC', 'write'],
    ['EROFS', 'open'],
    ['EACCES', 'open'],
  ] as const) {
    it.concurrent(`${code}: one line naming the cause, exit 2, nothing changed, no lock or temp file left`, async () => {
      const g = twoLeaks();
      const r = await purge(g.s, ['--yes', '--json'], `${code}:${op}:/layergc/lock.`);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(`layergc: cannot take the lock ${g.s.root}/layergc/lock: ${CAUSE[code]}; nothing was changed\n`);
      expectSame(g.garbage, tree(g.s.root));
      expect(stateFiles(g.s)).toEqual([]);
      await nextRunFinishes(g);
    });
  }

  it.concurrent("ENOSPC taking over a dead holder's lock: one line, exit 2; its lock stays as it was and no takeover mutex is left", async () => {
    const g = twoLeaks();
    const dead = spawnSync('true').pid;
    fs.mkdirSync(path.join(g.s.root, 'layergc'), { mode: 0o700 });
    const lock = `${JSON.stringify({ pid: dead, host: hostname(), since: '2026-01-02T03:04:05.000Z' })}\n`;
    fs.writeFileSync(path.join(g.s.root, 'layergc/lock'), lock);
    const r = await purge(g.s, ['--yes'], 'ENOSPC:write:lock.takeover');
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`layergc: cannot take over the lock ${g.s.root}/layergc/lock of a layergc that died: the filesystem is full (ENOSPC); nothing was changed\n`);
    expect(stateFiles(g.s)).toEqual(['lock']);
    expect(fs.readFileSync(path.join(g.s.root, 'layergc/lock'), 'utf8')).toBe(lock);
    expectSame(g.garbage, tree(g.s.root));
  });

  it.concurrent('EROFS making the state dir: one line, never "no such file" (node reports a recursive mkdir on a read-only filesystem as ENOENT)', async () => {
    const g = twoLeaks();
    const r = await purge(g.s, ['--yes'], 'EROFS:mkdir:/layergc');
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`layergc: ${g.s.root}/layergc cannot be made a directory: the filesystem is read-only (EROFS); layergc keeps its lock and journal there; nothing was changed\n`);
    expectSame(g.garbage, tree(g.s.root));
  });
});

describe('appending to the journal', () => {
  it.concurrent('ENOSPC at the first intent line: no item begun, each reported failed "not begun" with the cause, exit 1; the next run finishes', async () => {
    const g = twoLeaks();
    const r = await purge(g.s, ['--yes', '--json'], 'ENOSPC:write:journal.jsonl');
    expect(r.code).toBe(1);
    const why = `not begun: the journal ${g.s.root}/layergc/journal.jsonl cannot be written: the filesystem is full (ENOSPC)`;
    expect(r.json.actions.map((x: Action) => [x.status, x.reason])).toEqual([
      ['failed', why],
      ['failed', why],
    ]);
    expect(r.json.summary).toMatchObject({ removed: 0, failed: 2 });
    expect(r.stderr).not.toContain('internal error');
    expectSame(g.garbage, tree(g.s.root));
    expect(stateFiles(g.s)).toEqual(['journal.jsonl']); // created empty, as a full disk leaves it; no lock
    await nextRunFinishes(g);
  });

  it.concurrent('ENOSPC at the outcome line of the first item: it is reported removed (it was), the rest not begun; the next run closes the journal entry and finishes', async () => {
    const g = twoLeaks();
    const r = await purge(g.s, ['--yes', '--json'], 'ENOSPC:write:journal.jsonl:2');
    expect(r.code).toBe(1);
    const [first, second] = r.json.actions as Action[];
    expect(first.status).toBe('removed');
    expect(fs.existsSync(first.paths[0])).toBe(false);
    expect(second).toMatchObject({ status: 'failed', reason: `not begun: the journal ${g.s.root}/layergc/journal.jsonl cannot be written: the filesystem is full (ENOSPC)` });
    expect(fs.existsSync(second.paths[0])).toBe(true);
    const again = await purge(g.s, ['--yes', '--json']);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain('finishing 1 item(s) an interrupted purge left');
    expectSame(g.healthy, tree(g.s.root));
  });

  it.concurrent('a line torn by a full disk does not swallow the next one: each later line parses', async () => {
    const g = twoLeaks();
    fs.mkdirSync(path.join(g.s.root, 'layergc'), { mode: 0o700 });
    const journal = path.join(g.s.root, 'layergc/journal.jsonl');
    fs.writeFileSync(journal, '{"time":"2026-01-01T00:00:00Z","run":"x","event":"int');
    await nextRunFinishes(g);
    const lines = fs.readFileSync(journal, 'utf8').split('\n').filter(Boolean);
    expect(lines[0]).toBe('{"time":"2026-01-01T00:00:00Z","run":"x","event":"int');
    expect(lines.slice(1).map((l) => JSON.parse(l).event)).toEqual(['intent', 'removed', 'intent', 'removed']);
  });
});

describe('staging and removing', () => {
  it.concurrent('EROFS at the staging rename: that item failed "not renamed", never called staged; the other is removed; exit 1; the next run finishes', async () => {
    const g = twoLeaks();
    const r = await purge(g.s, ['--yes', '--json'], `EROFS:rename:/${g.a.id}`);
    expect(r.code).toBe(1);
    expect(statusOf(r)).toEqual({ [g.a.dir]: 'failed', [g.b.dir]: 'removed' });
    expect(r.json.actions.find((x: Action) => x.paths[0] === g.a.dir).reason).toBe(`${g.a.dir}: the filesystem is read-only (EROFS); it was not renamed, nothing of it changed`);
    // exactly b went: a is where it was, byte for byte, with no staged name
    const left = diffSnapshots(g.garbage, tree(g.s.root));
    const bRel = path.relative(g.s.root, g.b.dir);
    expect(left.onlyAfter).toEqual([]);
    expect(left.onlyBefore.every((p) => p.startsWith(bRel) || p === path.relative(g.s.root, g.b.linkPath))).toBe(true);
    expect(fs.existsSync(`${g.a.dir}-layergc-removing`)).toBe(false);
    const human = await purge(g.s, ['--yes'], `EROFS:rename:/${g.a.id}`);
    expect(human.stdout).toContain(`why: ${g.a.dir}: the filesystem is read-only (EROFS); it was not renamed, nothing of it changed`);
    expect(human.stdout).toContain('Failed items are left as their reasons say');
    await nextRunFinishes(g);
  });

  for (const code of ['EACCES', 'EROFS'] as const) {
    it.concurrent(`${code} removing a file: the item failed naming that file and the cause; it stays staged and the next run finishes`, async () => {
      const g = twoLeaks();
      const r = await purge(g.s, ['--yes', '--json'], `${code}:unlink:victim.bin`);
      expect(r.code).toBe(1);
      expect(statusOf(r)).toEqual({ [g.a.dir]: 'failed', [g.b.dir]: 'removed' });
      const staged = `${g.a.dir}-layergc-removing`;
      expect(r.json.actions.find((x: Action) => x.paths[0] === g.a.dir).reason).toBe(`${staged}/diff/victim.bin: ${CAUSE[code]}`);
      expect(fs.readdirSync(staged, { recursive: true })).toEqual(['diff', 'diff/victim.bin']);
      expect(r.stderr).not.toContain('internal error');
      await nextRunFinishes(g);
    });
  }
});

describe('the metrics file', () => {
  it.concurrent('ENOSPC writing it after the removal: the report is printed whole, then one line; exit 2; no temp file left', async () => {
    const g = twoLeaks();
    const dir = fs.mkdtempSync(path.join(g.s.base, 'metrics-'));
    const file = path.join(dir, 'layergc.prom');
    const r = await purge(g.s, ['--yes', '--json', '--metrics-file', file], 'ENOSPC:write:layergc.prom.');
    expect(r.code).toBe(2);
    expect(statusOf(r)).toEqual({ [g.a.dir]: 'removed', [g.b.dir]: 'removed' });
    expect(r.stderr).toBe(`layergc: cannot write the metrics file ${file}: the filesystem is full (ENOSPC); the purge ran, its report above says what was removed\n`);
    expect(fs.readdirSync(dir)).toEqual([]);
    expectSame(g.healthy, tree(g.s.root));
  });

  it.concurrent('EROFS in its dir, found before anything is removed: exit 2, nothing removed', async () => {
    const g = twoLeaks();
    const dir = fs.mkdtempSync(path.join(g.s.base, 'metrics-'));
    const r = await purge(g.s, ['--yes', '--metrics-file', path.join(dir, 'layergc.prom')], 'EROFS:open:layergc.prom.');
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`layergc: cannot write the metrics file ${dir}/layergc.prom: the filesystem is read-only (EROFS); nothing was removed\n`);
    expectSame(g.garbage, tree(g.s.root));
  });
});

const canMount = asRoot && spawnSync('mount', ['--version']).status === 0;

describe.skipIf(!canMount)('real filesystems (root)', () => {
  it('a read-only mount of the root: one line, "read-only", never "no such file"; scan still reads it', async () => {
    const g = twoLeaks();
    const ro = path.join(g.s.base, 'ro');
    fs.mkdirSync(ro);
    expect(spawnSync('mount', ['--bind', g.s.root, ro]).status).toBe(0);
    try {
      expect(spawnSync('mount', ['-o', 'remount,bind,ro', ro]).status).toBe(0);
      const r = await purge(ro, ['--yes', '--json']);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(`layergc: ${ro}/layergc cannot be made a directory: the filesystem is read-only (EROFS); layergc keeps its lock and journal there; nothing was changed\n`);
      fs.mkdirSync(path.join(g.s.root, 'layergc'));
      const r2 = await purge(ro, ['--yes', '--json']);
      expect(r2.code).toBe(2);
      expect(r2.stderr).toBe(`layergc: cannot take the lock ${ro}/layergc/lock: the filesystem is read-only (EROFS); nothing was changed\n`);
      const sc = await runCliAsync(['scan', '--data-root', ro, '--json']);
      expect(sc.code).toBe(1);
      expect(sc.json.findings).toHaveLength(2);
    } finally {
      spawnSync('umount', [ro]);
    }
    expectSame(g.garbage, tree(g.s.root));
    expect(stateFiles(g.s)).toEqual([]);
  });

  it("mkdirs (quarantine dirs) on a read-only mount: EROFS, where node's recursive mkdir says ENOENT", async () => {
    const { mkdirs } = await import('../../src/fsx/fs.js');
    const g = twoLeaks();
    const ro = path.join(g.s.base, 'ro-q');
    fs.mkdirSync(ro);
    expect(spawnSync('mount', ['--bind', g.s.outside, ro]).status).toBe(0);
    try {
      expect(spawnSync('mount', ['-o', 'remount,bind,ro', ro]).status).toBe(0);
      await expect(mkdirs(path.join(ro, 'q/data'), 0o700)).rejects.toMatchObject({ code: 'EROFS' });
    } finally {
      spawnSync('umount', [ro]);
    }
  });

  it('a full filesystem (tmpfs): one line, "full", no lock.<pid>.tmp left; once there is room the purge runs', async () => {
    const g = twoLeaks();
    const t = path.join(g.s.base, 'full');
    fs.mkdirSync(t);
    expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', t]).status).toBe(0);
    try {
      expect(spawnSync('cp', ['-a', g.s.root, t]).status).toBe(0);
      spawnSync('sh', ['-c', `dd if=/dev/zero of=${t}/fill bs=4k 2>/dev/null; mkdir ${t}/docker/layergc 2>/dev/null; dd if=/dev/zero of=${t}/fill2 bs=1 2>/dev/null`]);
      const before = tree(`${t}/docker`);
      const r = await purge(`${t}/docker`, ['--yes', '--json']);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(
        new RegExp(`^layergc: (cannot take the lock ${t}/docker/layergc/lock|${t}/docker/layergc cannot be made a directory): the filesystem is full \\(ENOSPC\\)[^\\n]*nothing was changed\\n$`),
      );
      expectSame(before, tree(`${t}/docker`));
      expect(fs.existsSync(`${t}/docker/layergc`) ? fs.readdirSync(`${t}/docker/layergc`) : []).toEqual([]);
      fs.rmSync(`${t}/fill`);
      const ok = await purge(`${t}/docker`, ['--yes', '--json']);
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.json.summary.removed).toBe(2);
      expectSame(g.healthy, tree(`${t}/docker`));
    } finally {
      spawnSync('umount', [t]);
    }
  });
});

const nobody = asRoot && spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'true']).status === 0;

describe.skipIf(!nobody)('not root (setpriv to nobody)', () => {
  it('purge as an unprivileged user: one line "permission denied: run as root", exit 2, nothing changed', async () => {
    const g = twoLeaks();
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, BIN, 'purge', '--data-root', g.s.root, '--yes'], {
      encoding: 'utf8',
      cwd: REPO,
      env: { ...process.env, NO_COLOR: '1' },
    });
    expect(r.status).toBe(2);
    expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    expect(r.stderr).toContain('permission denied: run as root (EACCES)');
    expect(r.stderr).not.toContain('internal error');
    expectSame(g.garbage, tree(g.s.root));
  });
});
