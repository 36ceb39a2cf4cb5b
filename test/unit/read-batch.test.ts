/**
 * readSmallFilesIn: one listing of a dir, then only the files it holds are opened. Each name must
 * come out as readSmallFileSync (or an lstat, for the `present` names) would say it.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readSmallFileSync, readSmallFilesIn } from '../../src/fsx/read.js';

const dir = fs.mkdtempSync(path.join(tmpdir(), 'layergc-readin-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('readSmallFilesIn', () => {
  fs.writeFileSync(path.join(dir, 'diff'), 'sha256:abc\n');
  fs.writeFileSync(path.join(dir, 'empty'), '');
  fs.writeFileSync(path.join(dir, 'big'), Buffer.alloc(100 << 10, 0x61)); // past the 64 KiB scratch buffer
  fs.symlinkSync('/etc/passwd', path.join(dir, 'link'));
  fs.mkdirSync(path.join(dir, 'sub'));
  execFileSync('mkfifo', [path.join(dir, 'fifo')]);
  fs.writeFileSync(path.join(dir, 'tar-split.json.gz'), 'x');
  fs.symlinkSync('nowhere', path.join(dir, 'ts-link'));
  const names = ['diff', 'empty', 'big', 'link', 'sub', 'fifo', 'absent'];

  it('says for each name what reading it alone says', () => {
    const got = readSmallFilesIn(dir, names);
    for (const n of names) {
      const alone = readSmallFileSync(path.join(dir, n));
      const g = got.get(n)!;
      expect(g.state, n).toBe(alone.state);
      if (g.state === 'ok' && alone.state === 'ok') expect(g.text).toBe(alone.text);
      if (g.state === 'symlink' && alone.state === 'symlink') expect(g.target).toBe(alone.target);
      if (g.state === 'not-a-file' && alone.state === 'not-a-file') expect(g.type).toBe(alone.type);
    }
    expect(got.get('big')).toMatchObject({ state: 'ok' });
    expect((got.get('big') as { text: string }).text).toHaveLength(100 << 10);
    expect(readSmallFileSync(path.join(dir, 'big'), 1000)).toMatchObject({ state: 'unreadable' });
  });

  it('answers `present` names from the listing without reading them', () => {
    const got = readSmallFilesIn(dir, [], ['tar-split.json.gz', 'ts-link', 'fifo', 'sub', 'absent']);
    expect(Object.fromEntries([...got].map(([k, v]) => [k, v.state]))).toEqual({
      'tar-split.json.gz': 'present',
      'ts-link': 'symlink',
      fifo: 'not-a-file',
      sub: 'not-a-file',
      absent: 'missing',
    });
  });

  it('a dir that cannot be listed (here: not there) gives each name as opened alone', () => {
    const got = readSmallFilesIn(path.join(dir, 'absent'), ['diff'], ['tar-split.json.gz']);
    expect([...got.values()].map((v) => v.state)).toEqual(['missing', 'missing']);
    const file = readSmallFilesIn(path.join(dir, 'diff'), ['x']);
    expect(file.get('x')!.state).toBe('missing');
  });
});
