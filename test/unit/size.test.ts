/**
 * SizeAccounting walks as du does (entries lstat'ed by name from inside their dir): its bytes
 * equal `du -s -B1 -x`, hard links count once and only when every link was measured, a symlinked
 * dir is counted as the link and never followed, and the process's cwd is what it was.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SizeAccounting } from '../../src/fsx/size.js';
import { MountTable } from '../../src/fsx/mounts.js';

const top = fs.mkdtempSync(path.join(tmpdir(), 'layergc-size-'));
afterAll(() => fs.rmSync(top, { recursive: true, force: true }));
const du = (p: string) => Number(execFileSync('du', ['-s', '-B1', '-x', p], { encoding: 'utf8' }).split('\t')[0]);

describe('SizeAccounting.measure', () => {
  const tree = path.join(top, 'tree');
  for (let d = 0; d < 5; d++) {
    fs.mkdirSync(path.join(tree, `d${d}`, 'deeper', 'still'), { recursive: true });
    for (let f = 0; f < 20; f++) fs.writeFileSync(path.join(tree, `d${d}`, f % 2 ? `f${f}` : `deeper/still/f${f}`), Buffer.alloc(f * 3000, 1));
  }
  const outside = path.join(top, 'outside');
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(outside, 'big'), Buffer.alloc(1 << 20, 1));
  fs.symlinkSync(outside, path.join(tree, 'd0', 'link-out'));
  fs.writeFileSync(path.join(tree, 'd1', 'linked-inside'), Buffer.alloc(50_000, 2));
  fs.linkSync(path.join(tree, 'd1', 'linked-inside'), path.join(tree, 'd2', 'linked-inside-too'));
  fs.writeFileSync(path.join(outside, 'linked-out'), Buffer.alloc(70_000, 3));
  fs.linkSync(path.join(outside, 'linked-out'), path.join(tree, 'd3', 'linked-out'));

  it('counts what du counts, follows no symlink, and leaves the cwd as it was', () => {
    const before = process.cwd();
    const s = new SizeAccounting(MountTable.read());
    const m = s.measure(tree);
    expect(process.cwd()).toBe(before);
    // du counts a hard link's blocks at its first name; layergc only when every name was measured,
    // so the file also linked from outside is the difference, and waits in unfinishedBytes
    const outBlocks = fs.lstatSync(path.join(outside, 'linked-out')).blocks * 512;
    expect(m.bytes).toBe(du(tree) - outBlocks);
    expect(s.unfinishedBytes()).toBe(outBlocks);
    expect(m.files).toBe(Number(execFileSync('sh', ['-c', `find '${tree}' | wc -l`], { encoding: 'utf8' })));
    expect(m.mountsInside).toEqual([]);
    // the outside dir, measured too, completes the hard link
    expect(s.measure(outside).bytes).toBe(du(outside));
    expect(s.unfinishedBytes()).toBe(0);
  });

  it('a file, a symlink and a missing path measure as themselves', () => {
    const s = new SizeAccounting(MountTable.read());
    expect(s.measure(path.join(outside, 'big')).bytes).toBe(fs.lstatSync(path.join(outside, 'big')).blocks * 512);
    expect(s.measure(path.join(tree, 'd0', 'link-out')).files).toBe(1);
    expect(s.measure(path.join(top, 'absent'))).toEqual({ bytes: 0, files: 0, newestMs: 0, mountsInside: [] });
  });

  it('walks with whole paths when the cwd is gone, with the same result', () => {
    const before = process.cwd();
    const gone = fs.mkdtempSync(path.join(top, 'cwd-'));
    const expected = new SizeAccounting(MountTable.read()).measure(tree);
    try {
      process.chdir(gone);
      fs.rmdirSync(gone);
      expect(new SizeAccounting(MountTable.read()).measure(tree)).toEqual(expected);
    } finally {
      process.chdir(before);
    }
  });

  it.skipIf(process.getuid?.() !== 0)('a mount point inside is named and not entered (root only: a bind mount)', () => {
    const mnt = path.join(tree, 'd4', 'mnt');
    fs.mkdirSync(mnt);
    execFileSync('mount', ['--bind', outside, mnt]);
    try {
      const m = new SizeAccounting(MountTable.read()).measure(tree);
      expect(m.mountsInside).toEqual([mnt]);
    } finally {
      execFileSync('umount', [mnt]);
      fs.rmdirSync(mnt);
    }
  });
});

describe('SizeAccounting in a worker thread (no chdir there)', () => {
  it('measures with whole paths, the same bytes', async () => {
    const { Worker } = await import('node:worker_threads');
    const src = `
      const { parentPort, workerData } = require('node:worker_threads');
      import(workerData.size).then(async ({ SizeAccounting }) => {
        const { MountTable } = await import(workerData.mounts);
        parentPort.postMessage(new SizeAccounting(MountTable.read()).measure(workerData.dir).bytes);
      });`;
    const dist = path.join(__dirname, '../../dist/fsx');
    const w = new Worker(src, { eval: true, workerData: { size: `${dist}/size.js`, mounts: `${dist}/mounts.js`, dir: top } });
    const bytes = await new Promise((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
    await w.terminate();
    expect(bytes).toBe(new SizeAccounting(MountTable.read()).measure(top).bytes);
  });
});

describe('SizeAccounting with a helper thread (the built module: a worker loads its own file)', () => {
  const dist = path.join(__dirname, '../../dist/fsx');
  const tree = path.join(top, 'wide');
  for (let d = 0; d < 40; d++) {
    fs.mkdirSync(path.join(tree, `d${d}`, 'sub'), { recursive: true });
    for (let f = 0; f < 25; f++) fs.writeFileSync(path.join(tree, `d${d}`, f % 3 ? `f${f}` : `sub/f${f}`), Buffer.alloc(f * 700, 1));
  }
  // links between dirs the two threads may split, one to outside, and a symlink never followed
  fs.writeFileSync(path.join(tree, 'd0', 'linked'), Buffer.alloc(40_000, 2));
  for (const d of ['d13', 'd27', 'd39/sub']) fs.linkSync(path.join(tree, 'd0', 'linked'), path.join(tree, d, 'linked-too'));
  const wideOut = path.join(top, 'wide-outside');
  fs.mkdirSync(wideOut);
  fs.writeFileSync(path.join(wideOut, 'linked-out'), Buffer.alloc(90_000, 3));
  fs.linkSync(path.join(wideOut, 'linked-out'), path.join(tree, 'd20', 'linked-out'));
  fs.symlinkSync(wideOut, path.join(tree, 'd5', 'link-out'));

  it('shares the walk and counts exactly what one thread counts, the cwd put back', async () => {
    const { SizeAccounting: Built } = (await import(`${dist}/size.js`)) as typeof import('../../src/fsx/size.js');
    const one = new SizeAccounting(MountTable.read());
    const expected = one.measure(tree);
    const before = process.cwd();
    const two = new Built(MountTable.read(), true, 0);
    expect(await two.startHelperNow()).toBe(true); // work goes only to a running helper
    expect(two.measure(tree)).toEqual(expected);
    expect(process.cwd()).toBe(before);
    expect(two.sharedWalks).toBe(1);
    expect(two.unfinishedBytes()).toBe(one.unfinishedBytes());
    expect(expected.bytes).toBe(du(tree) - fs.lstatSync(path.join(wideOut, 'linked-out')).blocks * 512);
    // the hard link to outside completes when outside is measured (too small a tree to share)
    expect(two.measure(wideOut).bytes).toBe(du(wideOut));
    expect(two.unfinishedBytes()).toBe(0);
    expect(two.sharedWalks).toBe(1);
    // the same helper shares the next tree (its hard links, all seen already, count no more)
    const again = two.measure(tree);
    expect({ ...again, bytes: 0 }).toEqual({ ...expected, bytes: 0 });
    expect(two.sharedWalks).toBe(2);
  });

  it('a tree walked before the helper runs is not kept waiting for it, and counts the same', async () => {
    const { SizeAccounting: Built } = (await import(`${dist}/size.js`)) as typeof import('../../src/fsx/size.js');
    const expected = new SizeAccounting(MountTable.read()).measure(tree);
    const before = process.cwd();
    const two = new Built(MountTable.read(), true, 0);
    expect(two.measure(tree)).toEqual(expected); // the helper starts here; the walk ends before it runs, or shares
    expect(process.cwd()).toBe(before);
  });

  it.skipIf(process.getuid?.() !== 0)('a mount point inside is named and not entered by either thread (root only: a bind mount)', async () => {
    const { SizeAccounting: Built } = (await import(`${dist}/size.js`)) as typeof import('../../src/fsx/size.js');
    const mnts = [path.join(tree, 'd2', 'mnt'), path.join(tree, 'd31', 'sub', 'mnt')];
    for (const m of mnts) {
      fs.mkdirSync(m);
      execFileSync('mount', ['--bind', wideOut, m]);
    }
    try {
      const two = new Built(MountTable.read(), true, 0);
      expect(await two.startHelperNow()).toBe(true);
      const m = two.measure(tree);
      expect(m.mountsInside.sort()).toEqual(mnts.sort());
      expect(two.sharedWalks).toBe(1);
    } finally {
      for (const m of mnts) {
        execFileSync('umount', [m]);
        fs.rmdirSync(m);
      }
    }
  });
});
