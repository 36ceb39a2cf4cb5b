// Hostile input on the read side (issue 15): every case is the real CLI on a synthetic root, under
// a time limit and with its peak memory measured. Each must end in a finding or a one-line error
// with a documented exit code: never a hang, an "internal error", or a blow-up.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { misbehaviour, runBounded, socketFile, type BoundedResult } from '../helpers/bounded.js';
import { rootMaker, type SyntheticRoot } from '../helpers/synthetic.js';
import { expectValid } from '../helpers/schema.js';

const root = rootMaker({ populate: true });
const LIMITS = { peakMiB: 400 };

function behaved(r: BoundedResult): void {
  expect(misbehaviour(r, LIMITS)).toBe('');
}

const kinds = (r: BoundedResult): string[] => (r.json.findings as { kind: string }[]).map((f) => f.kind);
const findingsOf = (r: BoundedResult, kind: string): any[] => (r.json.findings as any[]).filter((f) => f.kind === kind);

function fifo(p: string): void {
  fs.rmSync(p, { force: true, recursive: true });
  execFileSync('mkfifo', [p]);
}

/** The real CLI, bounded; JSON output is checked against its published schema. */
async function cli(s: SyntheticRoot, args: string[], env?: Record<string, string>): Promise<BoundedResult> {
  const r = await runBounded([...args, '--data-root', s.root], { timeoutMs: 30_000, env });
  if (r.json) expectValid(args[0] === 'purge' ? 'purge' : 'scan', r.json);
  return r;
}

describe('a FIFO where a BuildKit database belongs', () => {
  for (const file of ['snapshots.db', 'metadata_v2.db', 'containerdmeta.db']) {
    it.concurrent(`buildkit/${file}: scan, verify and explain finish, and BuildKit counts as unreadable`, async () => {
      const s = root({ buildkit: 'fixture' });
      fifo(path.join(s.root, 'buildkit', file));
      s.addDanglingLayer(); // would be unreferenced-layer, but BuildKit may own it
      const scan = await cli(s, ['scan', '--json']);
      behaved(scan);
      expect(scan.code).toBe(0);
      expect(scan.json.notes.join(' ')).toContain(`${file}: a FIFO, not a regular file`);
      expect(kinds(scan)).not.toContain('unreferenced-layer');
      const verify = await cli(s, ['verify', '--json']);
      behaved(verify);
      expect(verify.code).toBe(0);
      const explain = await cli(s, ['explain', s.images[0].layers[0].driverDir]);
      behaved(explain);
      expect(explain.code).toBe(0);
    });
  }
});

describe("a layer's tar-split.json.gz that is not a file, or a gzip bomb", () => {
  async function deepAndVerify(s: SyntheticRoot, chainId: string, reason: RegExp): Promise<BoundedResult[]> {
    const out: BoundedResult[] = [];
    for (const args of [
      ['verify', '--json'],
      ['scan', '--deep', '--json'],
    ]) {
      const r = await cli(s, args);
      behaved(r);
      expect(r.code).toBe(1);
      const f = findingsOf(r, 'tar-split-corrupt');
      expect(f.map((x) => x.layer)).toEqual([chainId]);
      expect(f[0].reason).toMatch(reason);
      out.push(r);
    }
    return out;
  }

  it.concurrent('a FIFO: verify and scan --deep report tar-split-corrupt, never block', async () => {
    const s = root();
    const l = s.images[0].layers[0];
    fifo(path.join(l.dir, 'tar-split.json.gz'));
    await deepAndVerify(s, l.chainId, /tar-split is a FIFO, not a regular file/);
  });

  it.concurrent('a symlink (to a real tar-split elsewhere): not followed', async () => {
    const s = root();
    const l = s.images[0].layers[0];
    const elsewhere = path.join(s.outside, 'ts.json.gz');
    fs.renameSync(path.join(l.dir, 'tar-split.json.gz'), elsewhere);
    fs.symlinkSync(elsewhere, path.join(l.dir, 'tar-split.json.gz'));
    await deepAndVerify(s, l.chainId, /is a symlink/);
  });

  /** gzip members concatenated: gunzip inflates them as one stream, and writing 1 GiB takes no time. */
  function bomb(s: SyntheticRoot, piece: Buffer, times: number): string {
    const l = s.images[0].layers[0];
    const member = gzipSync(piece, { level: 9 });
    const p = path.join(l.dir, 'tar-split.json.gz');
    const fd = fs.openSync(p, 'w');
    for (let i = 0; i < times; i++) fs.writeSync(fd, member);
    fs.closeSync(fd);
    return l.chainId;
  }

  it.concurrent('1 GiB of zeros: a line too long, caught in bounded memory', async () => {
    const s = root();
    const chain = bomb(s, Buffer.alloc(1 << 20), 1024);
    const [verify] = await deepAndVerify(s, chain, /line is longer than 16777216 bytes/);
    expect(verify.peakMiB).toBeLessThan(200);
  });

  it.concurrent('1 GiB of newlines: more blank lines than tar-split writes, caught at once', async () => {
    const s = root();
    const chain = bomb(s, Buffer.alloc(1 << 20, 0x0a), 1024);
    const [verify] = await deepAndVerify(s, chain, /more than 64 lines without a file entry/);
    expect(verify.ms).toBeLessThan(20_000); // a bound for a hang, not a timing test: it takes well under a second
  });

  it.concurrent('10 million tiny lines: segments with no file entry between them, caught at once', async () => {
    const s = root();
    const chain = bomb(s, Buffer.from('{"type":2,"payload":""}\n'.repeat(1_000_000)), 10);
    await deepAndVerify(s, chain, /more than 64 lines without a file entry/);
  });

  it.concurrent('10 million tiny file entries: a file entry without its tar header before it', async () => {
    const s = root();
    const chain = bomb(s, Buffer.from('{"type":1,"name":"a","size":0}\n'.repeat(1_000_000)), 10);
    await deepAndVerify(s, chain, /file entry without the 512-byte tar header/);
  });

  it.concurrent('more JSON than its entries can hold: the inflated size is bounded by the entries', async () => {
    const s = root();
    // one real-looking entry, then 63 segments of 1.5 MiB each, over and over: within the line
    // and blank-line limits, but far more JSON per file entry than tar-split writes
    const seg = `${JSON.stringify({ type: 2, payload: Buffer.alloc(1536 << 10).toString('base64') })}\n`;
    const piece = Buffer.from(`${JSON.stringify({ type: 2, payload: Buffer.alloc(512).toString('base64') })}\n{"type":1,"name":"a","size":0}\n${seg.repeat(60)}`);
    const chain = bomb(s, piece, 20);
    const [verify] = await deepAndVerify(s, chain, /inflates to more than \d+ bytes of JSON for \d+ file entries/);
    expect(verify.peakMiB).toBeLessThan(300);
  });
});

describe('filesystem errors are expected, never "internal error"', () => {
  it.concurrent('ENAMETOOLONG: a cache-id of 300 characters is a layer whose driver data is missing', async () => {
    const s = root();
    const l = s.addDanglingLayer();
    s.writeLayerFile(l.chainId, 'cache-id', 'c'.repeat(300));
    const r = await cli(s, ['scan', '--deep', '--json']);
    behaved(r);
    expect(r.code).toBe(1);
    expect(findingsOf(r, 'missing-driver-data').map((f) => f.layer)).toEqual([l.chainId]);
    const v = await cli(s, ['verify', '--json']);
    behaved(v);
    expect(v.code).toBe(0);
    expect(v.json.skipped).toEqual([{ chainId: l.chainId, reason: expect.stringContaining('is gone') }]);
    behaved(await cli(s, ['explain', l.chainId]));
  });

  it.concurrent('ENAMETOOLONG: an over-long lower entry', async () => {
    const s = root();
    const top = s.images[1].layers[2];
    s.writeDriverFile(top.cacheId, 'lower', `l/${'A'.repeat(300)}:${fs.readFileSync(path.join(top.driverDir, 'lower'), 'utf8')}`);
    const r = await cli(s, ['scan', '--deep', '--json']);
    behaved(r);
    expect(r.code).toBe(1);
    expect(
      findingsOf(r, 'driver-data-damaged')
        .map((f) => f.reason)
        .join(' '),
    ).toContain('not l/<link ID>');
    const v = await cli(s, ['verify', '--json']);
    behaved(v);
    expect(v.code).toBe(0); // the entry leads nowhere; the rest of the chain verifies
    behaved(await cli(s, ['explain', top.driverDir]));
  });

  it.concurrent('ELOOP: a driver dir that is a symlink to itself is unsafe-path; the layer is skipped', async () => {
    const s = root();
    const l = s.addDanglingLayer();
    fs.rmSync(l.driverDir, { recursive: true });
    fs.symlinkSync(path.basename(l.driverDir), l.driverDir);
    for (const args of [
      ['scan', '--deep', '--json'],
      ['verify', '--json'],
    ]) {
      const r = await cli(s, args);
      behaved(r);
      expect(r.code).toBe(1);
      expect(findingsOf(r, 'unsafe-path').map((f) => f.paths[0])).toEqual([l.driverDir]);
    }
    const v = await cli(s, ['verify', '--json']);
    expect(v.json.skipped).toEqual([{ chainId: l.chainId, reason: expect.stringMatching(/^unsafe-path: .* is a symlink/) }]);
    behaved(await cli(s, ['explain', l.driverDir]));
  });

  it.concurrent('ELOOP: overlay2/l a symlink to itself', async () => {
    const s = root();
    fs.rmSync(s.links, { recursive: true });
    fs.symlinkSync('l', s.links);
    const r = await cli(s, ['scan', '--deep', '--json']);
    behaved(r);
    expect(r.code).toBe(1);
    expect(findingsOf(r, 'unsafe-path').map((f) => f.paths[0])).toContain(s.links);
    const v = await cli(s, ['verify', '--json']);
    behaved(v);
    expect(v.code).toBe(0); // content is read from <id>/diff and lower's l/ links are not needed for it
    behaved(await cli(s, ['explain', s.images[0].layers[0].driverDir]));
  });

  it.concurrent('ENOTDIR: a driver dir that is a file, a layerdb entry that is a file', async () => {
    const s = root();
    const l = s.addDanglingLayer();
    fs.rmSync(l.driverDir, { recursive: true });
    fs.writeFileSync(l.driverDir, 'not a dir');
    fs.writeFileSync(path.join(s.layerdb, 'sha256', 'e'.repeat(64)), 'not a dir');
    const r = await cli(s, ['scan', '--deep', '--json']);
    behaved(r);
    expect(r.code).toBe(1);
    // its l/ link now leads through a file (ENOTDIR): dangling
    expect(findingsOf(r, 'dangling-link').map((f) => f.paths[0])).toEqual([l.linkPath]);
    behaved(await cli(s, ['verify', '--json']));
    behaved(await cli(s, ['explain', l.driverDir]));
  });

  it.concurrent('EIO and EACCES reading a layer file: invalid-layer-metadata with the reason', async () => {
    const s = root();
    const l = s.addDanglingLayer();
    for (const code of ['EIO', 'EACCES']) {
      const r = await cli(s, ['scan', '--json'], { LAYERGC_TEST_READ_ERROR: `${code}:read:${l.chainId.slice(7)}/cache-id` });
      behaved(r);
      expect(r.code).toBe(1);
      expect(findingsOf(r, 'invalid-layer-metadata').map((f) => [f.layer, f.reason])).toEqual([[l.chainId, expect.stringContaining(`cache-id cannot be read (${code}`)]]);
    }
  });

  it.concurrent('EIO and EACCES on a directory layergc must list: a one-line error, exit 2', async () => {
    const s = root();
    for (const [code, op, suffix, also] of [
      ['EIO', 'readdir', '/layerdb/sha256', ''],
      // a listing whose dirents do not type an entry (DT_UNKNOWN: Node lstats it, and that fails) is
      // redone with an lstat of each name: the entry's lstat error is the one line
      ['EACCES', 'lstat', `/overlay2/${s.images[0].layers[0].cacheId}`, ';EIO:readdir-types:/overlay2'],
    ]) {
      for (const cmd of ['scan', 'verify']) {
        const r = await cli(s, [cmd], { LAYERGC_TEST_READ_ERROR: `${code}:${op}:${suffix}${also}` });
        behaved(r);
        expect(r.code).toBe(2);
        expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(new RegExp(`cannot read .*${suffix}: .*${code}`))]);
      }
    }
  });

  it.concurrent("EIO opening a layer's content dir during verify: that layer fails with the reason", async () => {
    const s = root();
    const l = s.images[0].layers[0];
    const r = await cli(s, ['verify', '--json'], { LAYERGC_TEST_READ_ERROR: `EIO:open:${l.driverDir}/diff` });
    behaved(r);
    expect(r.code).toBe(1);
    // the base layer, and the app layers that read it as a lower
    const got = findingsOf(r, 'content-mismatch');
    expect(got.map((f) => f.layer).sort()).toEqual([l.chainId, s.images[1].layers[1].chainId, s.images[1].layers[2].chainId].sort());
    for (const f of got) expect(f.reason).toContain(`${l.driverDir}/diff EIO`);
  });
});

/** The base layer's driver dir moved out of the data root, a symlink to it left in its place. */
function driverDirOutside(s: SyntheticRoot) {
  const l = s.images[0].layers[0];
  const copy = path.join(s.outside, 'copy');
  fs.cpSync(l.driverDir, copy, { recursive: true });
  fs.rmSync(l.driverDir, { recursive: true });
  fs.symlinkSync(copy, l.driverDir);
  return l;
}

describe('verify reads a layer only through directories opened from the data root, never a symlink', () => {
  it.concurrent('a driver dir that is a symlink out of the data root (to a copy of the real content): unsafe-path, skipped, in verify and scan --deep', async () => {
    const s = root();
    const l = driverDirOutside(s);
    const verify = await cli(s, ['verify', '--json']);
    behaved(verify);
    expect(verify.code).toBe(1);
    // app's upper layers read it as a lower: skipped too, and the path is reported once
    const child = s.images[1].layers[1];
    expect(findingsOf(verify, 'unsafe-path')).toEqual([expect.objectContaining({ paths: [l.driverDir], reason: expect.stringContaining('is a symlink') })]);
    expect(verify.json.skipped.map((x: any) => x.chainId).sort()).toEqual([l.chainId, child.chainId, s.images[1].layers[2].chainId].sort());
    expect(verify.json.summary.layersVerified).toBe(s.layers.size - 3);
    const deep = await cli(s, ['scan', '--deep', '--json']);
    behaved(deep);
    // once, in verify's words
    expect(findingsOf(deep, 'unsafe-path')).toEqual([expect.objectContaining({ paths: [l.driverDir], reason: expect.stringContaining('is not verified') })]);
  });
});

describe('an image whose config cannot be read: invalid-image, and its layers are unknown', () => {
  type Damage = (s: SyntheticRoot, configPath: string) => void;
  const cases: [string, Damage, RegExp][] = [
    ['deleted', (_s, p) => fs.rmSync(p), /config is missing/],
    [
      'a directory',
      (_s, p) => {
        fs.rmSync(p);
        fs.mkdirSync(p);
      },
      /config is a directory, not a regular file/,
    ],
    ['a FIFO', (_s, p) => fifo(p), /config is a FIFO, not a regular file/],
    ['a socket', (_s, p) => socketFile(p), /config is a socket, not a regular file/],
    ['not JSON', (_s, p) => fs.writeFileSync(p, 'garbage'), /does not match its digest/],
  ];
  for (const [what, damage, reason] of cases) {
    it.concurrent(`a tagged image's config ${what}: no layer is unreferenced, and purge --include unreferenced-layer removes none`, async () => {
      const s = root();
      const solo = s.addImage(['solo:1'], [{ files: { only: randomText() } }]);
      const dangling = s.addDanglingLayer();
      damage(s, solo.configPath);
      const r = await cli(s, ['scan', '--json']);
      behaved(r);
      expect(r.code).toBe(1);
      expect(findingsOf(r, 'invalid-image')).toEqual([expect.objectContaining({ paths: [solo.configPath], reason: expect.stringMatching(reason), affects: { images: ['solo:1'], containers: [] } })]);
      expect(kinds(r)).not.toContain('unreferenced-layer');
      expect(r.json.notes.join(' ')).toMatch(/solo:1 could not be read or trusted/);
      const purge = await cli(s, ['purge', '--yes', '--json', '--include', 'unreferenced-layer']);
      behaved(purge);
      expect(fs.existsSync(solo.layers[0].dir)).toBe(true);
      expect(fs.existsSync(dangling.dir)).toBe(true);
      expect(fs.existsSync(dangling.driverDir)).toBe(true);
    });
  }

  it.concurrent('EIO reading a config: invalid-image, no unreferenced-layer', async () => {
    const s = root();
    const solo = s.addImage(['solo:1'], [{ files: { only: randomText() } }]);
    s.addDanglingLayer();
    const r = await cli(s, ['scan', '--json'], { LAYERGC_TEST_READ_ERROR: `EIO:read:${solo.configPath}` });
    behaved(r);
    expect(findingsOf(r, 'invalid-image')).toEqual([expect.objectContaining({ reason: expect.stringContaining('config cannot be read (EIO') })]);
    expect(kinds(r)).not.toContain('unreferenced-layer');
  });

  it.concurrent('without such an image, a dangling layer is still unreferenced (the rule is not a blanket off switch)', async () => {
    const s = root();
    const dangling = s.addDanglingLayer();
    s.writeImageConfig('{"architecture":"amd64","os":"linux"}'); // no rootfs: invalid, but no layers to be unknown
    const r = await cli(s, ['scan', '--json']);
    behaved(r);
    expect(findingsOf(r, 'unreferenced-layer').map((f) => f.layer)).toEqual([dangling.chainId]);
  });
});

function randomText(): string {
  return Math.random().toString(36).slice(2);
}

describe('verifyLayer with an anchor: a root that turns into a symlink after the check is still never read', () => {
  it('is reported as unsafe-path, and not one byte is read through it', async () => {
    const { verifyLayer } = await import('../../src/verify/index.js');
    const s = root();
    const l = driverDirOutside(s);
    const target = { chainId: l.chainId, diffId: l.diffId, tarSplitPath: path.join(l.dir, 'tar-split.json.gz'), contentRoots: [path.join(l.driverDir, 'diff')] };
    // without an anchor the content is found through the link (the old behaviour, kept for callers that checked)
    expect((await verifyLayer(target)).ok).toBe(true);
    const r = await verifyLayer({ ...target, anchor: s.root });
    expect(r).toMatchObject({ ok: false, kind: 'unsafe-path', bytes: 0, reason: expect.stringContaining(`${l.driverDir} is a symlink`) });
  });
});
