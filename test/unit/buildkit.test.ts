import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { cp, mkdir, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readBuildkitOwnership } from '../../src/store/buildkit.js';
import type { BuildkitOwnership } from '../../src/store/model.js';
import { bucket, synthBbolt, type Bucket } from '../helpers/bbolt-synth.js';

const FIX = fileURLToPath(new URL('../../fixtures/bbolt/', import.meta.url));
const SCENARIOS = ['docker-20.10-builds', 'docker-28.5-builds', 'docker-20.10-killed-mid-build'];

interface Expected {
  daemon: string;
  overlay2Dirs: string[];
  buildkitDirs: string[];
  layerdbCacheIds: Record<string, string>;
}

async function expected(scenario: string): Promise<Expected> {
  return JSON.parse(await readFile(join(FIX, scenario, 'expected.json'), 'utf8')) as Expected;
}

const sorted = (s: Iterable<string>): string[] => [...s].sort();

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'layergc-buildkit-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

let n = 0;
/** A fresh data root holding a copy of a fixture's buildkit/ dir. */
async function copyRoot(scenario: string): Promise<string> {
  const root = join(tmp, `root-${n++}`);
  await cp(join(FIX, scenario, 'buildkit'), join(root, 'buildkit'), { recursive: true });
  return root;
}

/** A data root whose buildkit/ holds the given synthetic databases. */
async function synthRoot(dbs: Record<string, Bucket | Buffer>): Promise<string> {
  const root = join(tmp, `root-${n++}`);
  await mkdir(join(root, 'buildkit'), { recursive: true });
  for (const [file, content] of Object.entries(dbs)) {
    const buf = Buffer.isBuffer(content) ? content : synthBbolt(content).file;
    await writeFile(join(root, 'buildkit', file), buf);
  }
  return root;
}

function expectUnreadable(o: BuildkitOwnership, re: RegExp): void {
  expect(o.state).toBe('unreadable');
  expect(o.reason).toBeDefined();
  expect(o.reason!).toMatch(re);
  expect(o.reason!).not.toMatch(/\n/);
  expect(o.reason!).toMatch(/\.$/);
}

describe('BuildKit ownership from real daemons', () => {
  for (const scenario of SCENARIOS) {
    it(`${scenario}: owns exactly the BuildKit-made driver dirs and the referenced chain IDs`, async () => {
      const exp = await expected(scenario);
      const root = join(FIX, scenario);
      const o = await readBuildkitOwnership(root);
      expect(o.state).toBe('read');
      expect(o.reason).toBeUndefined();
      expect(o.dbPath).toBe(join(root, 'buildkit', 'snapshots.db'));

      // snapshots.db describes exactly the 25-char dirs BuildKit made
      expect(sorted(o.snapshotDirIds)).toEqual(exp.buildkitDirs);
      // driverIds adds names that are not dirs: among the dirs on disk, it still picks exactly those
      for (const id of o.snapshotDirIds) expect(o.driverIds.has(id)).toBe(true);
      expect(sorted(exp.overlay2Dirs.filter((d) => o.driverIds.has(d)))).toEqual(exp.buildkitDirs);
      // no layer-store dir (64 hex) and not the l/ dir
      expect(exp.overlay2Dirs.filter((d) => /^[0-9a-f]{64}$/.test(d)).some((d) => o.driverIds.has(d))).toBe(false);
      expect(o.driverIds.has('l')).toBe(false);
      for (const id of o.driverIds) expect(id).toMatch(/^[0-9a-z]{25}$/);

      // every layer on these roots is one BuildKit holds (built, or used as a base)
      expect(sorted(o.chainIds)).toEqual(sorted(Object.keys(exp.layerdbCacheIds)));
      // BuildKit-committed layers have the snapshot key as cache-id
      for (const cacheId of Object.values(exp.layerdbCacheIds)) {
        if (/^[0-9a-z]{25}$/.test(cacheId)) expect(o.snapshotDirIds.has(cacheId)).toBe(true);
      }
      expect(o.sources.filter((s) => s.state === 'read').map((s) => s.file)).toEqual(['snapshots.db', 'metadata_v2.db', 'containerdmeta.db']);
    });
  }

  it('docker-20.10-builds: names with `committed` are owned but are not dirs; their targets are dirs', async () => {
    const o = await readBuildkitOwnership(join(FIX, 'docker-20.10-builds'));
    expect(o.driverIds.has('dd1e2das9q488ke81h5qyvkx5')).toBe(true);
    expect(o.snapshotDirIds.has('dd1e2das9q488ke81h5qyvkx5')).toBe(false);
    expect(o.snapshotDirIds.has('cac2q8tzn4mij83svc2bhnc8z')).toBe(true);
    // the base image layer's name bucket has only chainid
    expect(o.driverIds.has('71ub25kgwwdwszb45b0cibnv6')).toBe(true);
    expect(o.snapshotDirIds.has('71ub25kgwwdwszb45b0cibnv6')).toBe(false);
    expect(o.chainIds.has('sha256:0caf08d67498e30fd3253ddd3007330bad508032e91ff25bb7f2007ad5804378')).toBe(true);
    // a record only metadata_v2.db knows (an immutable ref sharing its mutable's snapshot)
    expect(o.driverIds.has('5nsbnr6uiolgg5r6posffgo33')).toBe(true);
  });

  it('docker-20.10-killed-mid-build: the RUN snapshot that was running is owned', async () => {
    const o = await readBuildkitOwnership(join(FIX, 'docker-20.10-killed-mid-build'));
    expect(o.snapshotDirIds.has('hio5iqzqe09y03l01pvjv0nn8')).toBe(true);
  });
});

describe('BuildKit ownership edge cases', () => {
  it('is absent without buildkit/snapshots.db', async () => {
    const empty = join(tmp, `root-${n++}`);
    await mkdir(empty);
    const o = await readBuildkitOwnership(empty);
    expect(o.state).toBe('absent');
    expect(o.driverIds.size + o.chainIds.size + o.snapshotDirIds.size).toBe(0);

    await mkdir(join(empty, 'buildkit'));
    expect((await readBuildkitOwnership(empty)).state).toBe('absent');
  });

  it('still trusts snapshots.db when one meta page is damaged (bbolt falls back too)', async () => {
    const root = await copyRoot('docker-20.10-builds');
    const p = join(root, 'buildkit', 'snapshots.db');
    const buf = await readFile(p);
    buf.fill(0, 4096, 8192);
    await writeFile(p, buf);
    const o = await readBuildkitOwnership(root);
    expect(o.state).toBe('read');
    expect(sorted(o.snapshotDirIds)).toEqual((await expected('docker-20.10-builds')).buildkitDirs);
  });

  const corruptions: Array<[string, (buf: Buffer) => Buffer, RegExp]> = [
    ['truncated to 3 pages', (b) => b.subarray(0, 3 * 4096), /truncated/],
    ['truncated mid meta', (b) => b.subarray(0, 4096 + 20), /snapshots\.db/],
    ['both meta pages zeroed', (b) => (b.fill(0, 0, 8192), b), /no valid meta page/],
    ['empty', () => Buffer.alloc(0), /too small/],
    [
      'root leaf page damaged',
      (b) => {
        // meta 1 (txid 41) points at root page 2; break its element count
        b.writeUInt16LE(0xffff, 2 * 4096 + 10);
        return b;
      },
      /do not fit/,
    ],
  ];
  for (const [what, damage, re] of corruptions) {
    it(`is unreadable with a reason when snapshots.db is ${what}`, async () => {
      const root = await copyRoot('docker-20.10-builds');
      const p = join(root, 'buildkit', 'snapshots.db');
      await writeFile(p, damage(await readFile(p)));
      const o = await readBuildkitOwnership(root);
      expectUnreadable(o, re);
      expect(o.reason!).toMatch(/snapshots\.db/);
      expect(o.sources.find((s) => s.file === 'snapshots.db')!.state).toBe('unreadable');
    });
  }

  it('is unreadable when snapshots.db has a page pointer out of range or a cycle', async () => {
    const entries: Record<string, Bucket> = {};
    for (let i = 0; i < 40; i++) entries[`snap${String(i).padStart(21, '0')}`] = bucket({ parent: '' }, { inline: true });
    const s = synthBbolt(bucket(entries, { perLeaf: 4, perBranch: 4 }));
    const rootOff = s.roots[1] * s.pageSize;
    expect(s.file.readUInt16LE(rootOff + 8)).toBe(0x01);

    const good = await readBuildkitOwnership(await synthRoot({ 'snapshots.db': s.file }));
    expect(good.state).toBe('read');
    expect(good.snapshotDirIds.size).toBe(40);

    const outOfRange = Buffer.from(s.file);
    outOfRange.writeBigUInt64LE(1n << 40n, rootOff + 16 + 8);
    expectUnreadable(await readBuildkitOwnership(await synthRoot({ 'snapshots.db': outOfRange })), /outside the data pages/);

    const cycle = Buffer.from(s.file);
    cycle.writeBigUInt64LE(BigInt(s.roots[1]), rootOff + 16 + 16 + 8);
    expectUnreadable(await readBuildkitOwnership(await synthRoot({ 'snapshots.db': cycle })), /cycle/);
  });

  it('is unreadable when snapshots.db is a directory', async () => {
    const root = join(tmp, `root-${n++}`);
    await mkdir(join(root, 'buildkit', 'snapshots.db'), { recursive: true });
    const o = await readBuildkitOwnership(root);
    expectUnreadable(o, /snapshots\.db/);
  });

  it('is unreadable when another BuildKit database is damaged, but keeps what it read', async () => {
    const root = await copyRoot('docker-28.5-builds');
    await truncate(join(root, 'buildkit', 'metadata_v2.db'), 5000);
    const o = await readBuildkitOwnership(root);
    expectUnreadable(o, /metadata_v2\.db/);
    expect(sorted(o.snapshotDirIds)).toEqual((await expected('docker-28.5-builds')).buildkitDirs);
  });

  it('owns a dir known only from a containerd lease (crash between lease and snapshots.db update)', async () => {
    const root = await synthRoot({
      'snapshots.db': bucket({
        aaaaaaaaaaaaaaaaaaaaaaaaa: bucket({ parent: '' }, { inline: true }),
      }),
      'containerdmeta.db': bucket({
        v1: bucket({
          buildkit: bucket({
            leases: bucket({
              bbbbbbbbbbbbbbbbbbbbbbbbb: bucket({
                createdat: Buffer.from([1, 2, 3]),
                snapshots: bucket({ default: bucket({ bbbbbbbbbbbbbbbbbbbbbbbbb: '' }) }),
              }),
            }),
          }),
        }),
      }),
    });
    const o = await readBuildkitOwnership(root);
    expect(o.state).toBe('read');
    expect(sorted(o.snapshotDirIds)).toEqual(['aaaaaaaaaaaaaaaaaaaaaaaaa']);
    expect(sorted(o.driverIds)).toEqual(['aaaaaaaaaaaaaaaaaaaaaaaaa', 'bbbbbbbbbbbbbbbbbbbbbbbbb']);
  });

  it('reads metadata.db (pre-v2 name) and metadata ids and chain IDs', async () => {
    const root = await synthRoot({
      'snapshots.db': bucket({}),
      'metadata.db': bucket({
        _main: bucket({
          rec1aaaaaaaaaaaaaaaaaaaaa: bucket({
            'cache.equalMutable': '{"value":"mut1aaaaaaaaaaaaaaaaaaaaa"}',
            'cache.snapshot': '{"value":"sha256:' + 'ab'.repeat(32) + '"}',
            'cache.description': '{"value":"x"}',
            'cache.parent': 'not json',
          }),
        }),
        _external: bucket({ ext1aaaaaaaaaaaaaaaaaaaaa: bucket({}) }),
      }),
    });
    const o = await readBuildkitOwnership(root);
    expect(o.state).toBe('read');
    expect(sorted(o.driverIds)).toEqual(['ext1aaaaaaaaaaaaaaaaaaaaa', 'mut1aaaaaaaaaaaaaaaaaaaaa', 'rec1aaaaaaaaaaaaaaaaaaaaa']);
    expect(sorted(o.chainIds)).toEqual(['sha256:' + 'ab'.repeat(32)]);
  });

  it('counts unexpected snapshots.db shapes as owned dirs', async () => {
    const root = await synthRoot({
      'snapshots.db': bucket({
        onlysizeaaaaaaaaaaaaaaaaa: bucket({ size: '12' }),
        plainvalueaaaaaaaaaaaaaaa: 'x',
        nameaaaaaaaaaaaaaaaaaaaaa: bucket({ committed: 'keyaaaaaaaaaaaaaaaaaaaaaa', size: '3' }),
        keyaaaaaaaaaaaaaaaaaaaaaa: bucket({ iscommitted: '' }),
        'sha256:0000000000000000000000000000000000000000000000000000000000000000': bucket({}),
        childaaaaaaaaaaaaaaaaaaaa: bucket({ parent: 'sha256:' + '11'.repeat(32) }),
      }),
    });
    const o = await readBuildkitOwnership(root);
    expect(sorted(o.snapshotDirIds)).toEqual(['childaaaaaaaaaaaaaaaaaaaa', 'keyaaaaaaaaaaaaaaaaaaaaaa', 'onlysizeaaaaaaaaaaaaaaaaa', 'plainvalueaaaaaaaaaaaaaaa']);
    expect(o.driverIds.has('nameaaaaaaaaaaaaaaaaaaaaa')).toBe(true);
    expect(sorted(o.chainIds)).toEqual(['sha256:0000000000000000000000000000000000000000000000000000000000000000', 'sha256:' + '11'.repeat(32)]);
  });

  it('is unreadable when snapshots.db holds what moby never writes (undetectable damage to bbolt)', async () => {
    const cases: Array<[Record<string, Bucket | string>, RegExp]> = [
      [{ nameaaaaaaaaaaaaaaaaaaaaa: bucket({ committed: 'keyaaaaaaaaaaaaaaaaaaaaaa' }) }, /has no bucket/],
      [
        {
          nameaaaaaaaaaaaaaaaaaaaaa: bucket({ committed: 'keyaaaaaaaaaaaaaaaaaaaaaa' }),
          keyaaaaaaaaaaaaaaaaaaaaaa: bucket({ parent: '' }),
        },
        /lacks iscommitted/,
      ],
      [{ 'Bad-Key': bucket({ parent: '' }) }, /not a BuildKit snapshot id/],
      [{ childaaaaaaaaaaaaaaaaaaaa: bucket({ parent: 'x/y' }) }, /not a snapshot id/],
      [{ nameaaaaaaaaaaaaaaaaaaaaa: bucket({ chainid: 'sha256:xyz' }) }, /not a sha256 chain ID/],
    ];
    for (const [entries, re] of cases) {
      const o = await readBuildkitOwnership(await synthRoot({ 'snapshots.db': bucket(entries) }));
      expectUnreadable(o, re);
      expect(o.reason!).toMatch(/snapshots\.db is inconsistent/);
    }

    // one character changed in a real file: bbolt reads it fine, the check does not
    const root = await copyRoot('docker-20.10-builds');
    const p = join(root, 'buildkit', 'snapshots.db');
    const buf = await readFile(p);
    const at = buf.indexOf('8dbl82llo7bx5d7t0yg3qxo8q', 2 * 4096); // page 2 is the current root leaf
    expect(at).toBeGreaterThan(2 * 4096);
    expect(at).toBeLessThan(3 * 4096);
    buf.write('8dbm', at, 'latin1');
    await writeFile(p, buf);
    expectUnreadable(await readBuildkitOwnership(root), /8dbl82llo7bx5d7t0yg3qxo8q|8dbm82llo7bx5d7t0yg3qxo8q/);
  });
});
