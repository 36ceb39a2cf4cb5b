import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BboltError, openBbolt, walkAll, withDb } from '../../src/store/bbolt.js';
import { bucket, synthBbolt, writeMeta } from '../helpers/bbolt-synth.js';

const FIX = fileURLToPath(new URL('../../fixtures/bbolt/', import.meta.url));
const V20 = join(FIX, 'docker-20.10-builds/buildkit');
const V28 = join(FIX, 'docker-28.5-builds/buildkit');

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'layergc-bbolt-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

let n = 0;
async function writeTmp(buf: Buffer): Promise<string> {
  const p = join(tmp, `db-${n++}.db`);
  await writeFile(p, buf);
  return p;
}

async function collect(b: BboltBucket): Promise<Array<{ key: string; value: Buffer | null }>> {
  const out: Array<{ key: string; value: Buffer | null }> = [];
  for await (const e of b.entries()) out.push({ key: e.key.toString('latin1'), value: e.value });
  return out;
}

/** Walk every bucket and value; returns the number of entries seen. */
async function walkCount(path: string): Promise<number> {
  const db = await openBbolt(path);
  try {
    let count = 0;
    await walkAll(db, () => {
      count++;
    });
    return count;
  } finally {
    await db.close();
  }
}

function expectBboltError(p: Promise<unknown>, re?: RegExp): Promise<void> {
  return p.then(
    () => {
      throw new Error('expected a BboltError');
    },
    (err: unknown) => {
      expect(err).toBeInstanceOf(BboltError);
      if (re) expect((err as Error).message).toMatch(re);
    },
  );
}

describe('bbolt reader on real BuildKit databases', () => {
  it('reads snapshots.db from Docker 20.10 (meta, buckets, inline nested buckets)', async () => {
    await withDb(join(V20, 'snapshots.db'), async (db) => {
      expect(db.meta.pageSize).toBe(4096);
      expect(db.meta.txid).toBe(41);
      expect(db.meta.metaPage).toBe(1);
      expect(db.meta.otherMetaInvalid).toBe(false);
      const root = await db.root();
      const top = await collect(root);
      expect(top).toHaveLength(21);
      expect(top.every((e) => e.value === null)).toBe(true);
      const keys = top.map((e) => e.key);
      expect([...keys].sort()).toEqual(keys); // bytewise order (all ASCII here)
      expect(keys).toContain('sha256:0caf08d67498e30fd3253ddd3007330bad508032e91ff25bb7f2007ad5804378');

      const committed = await root.bucket('8dbl82llo7bx5d7t0yg3qxo8q');
      expect(committed).not.toBeNull();
      expect(committed!.inline).toBe(true);
      expect(committed!.rootPage).toBeNull();
      expect((await committed!.get('parent'))?.toString()).toBe('xlbk7anm6jvq3z8oup8k3l2i3');
      expect((await committed!.get('iscommitted'))?.length).toBe(0);
      expect(await committed!.get('chainid')).toBeNull();

      const name = await root.bucket(Buffer.from('dd1e2das9q488ke81h5qyvkx5'));
      expect((await name!.get('committed'))?.toString()).toBe('cac2q8tzn4mij83svc2bhnc8z');
      expect((await name!.get('chainid'))?.toString()).toBe('sha256:345c696f54d6429067635e4562d20221fcb43557bd8cb8914f3f7fb7474990ed');
      // the chain-ID bucket is an empty inline bucket
      const chain = await root.bucket('sha256:0caf08d67498e30fd3253ddd3007330bad508032e91ff25bb7f2007ad5804378');
      expect(chain!.inline).toBe(true);
      expect(await collect(chain!)).toEqual([]);

      // get() of a bucket key is null, bucket() of a missing key is null
      expect(await root.get('8dbl82llo7bx5d7t0yg3qxo8q')).toBeNull();
      expect(await root.bucket('nope')).toBeNull();
      expect(await committed!.bucket('parent')).toBeNull();
    });
  });

  it('reads snapshots.db from Docker 28.5', async () => {
    await withDb(join(V28, 'snapshots.db'), async (db) => {
      const root = await db.root();
      const b = await root.bucket('1j0pe9yfnq70082bdec9dmmqq');
      expect((await b!.get('committed'))?.toString()).toBe('vdrvl48650ukmphymijhyygtp');
      expect((await b!.get('chainid'))?.toString()).toBe('sha256:c38f805b9ac01aed9071793a2e2f838f93adeeb32d19e46a43c8fb28074b5341');
      expect(await walkCount(join(V28, 'snapshots.db'))).toBe(21 + 39); // 21 buckets, 39 values in them
    });
  });

  it('walks branch pages and overflow values in metadata_v2.db', async () => {
    for (const dir of [V20, V28]) {
      const path = join(dir, 'metadata_v2.db');
      const raw = await readFile(path);
      await withDb(path, async (db) => {
        const root = await db.root();
        const main = await root.bucket('_main');
        expect(main!.inline).toBe(false);
        // the root page of _main is a branch page (flags 0x01) in both files
        expect(raw.readUInt16LE(main!.rootPage! * db.meta.pageSize + 8)).toBe(0x01);
        const records = await collect(main!);
        expect(records).toHaveLength(21);
        const keys = records.map((r) => r.key);
        expect([...keys].sort()).toEqual(keys);
        // every key found through the branch search is the one the walk gave
        for (const r of records) expect(await main!.bucket(r.key)).not.toBeNull();

        // buildkit.contenthash.v0 of the RUN snapshot is 7663 bytes: a leaf with an overflow page
        const ext = await root.bucket('_external');
        const id = dir === V20 ? 'xice17mc7ezz2h2d3aahaky5t' : 'se0imcjyfdua30x695lazko1b';
        const rec = await ext!.bucket(id);
        const v = await rec!.get('buildkit.contenthash.v0');
        expect(v!.length).toBe(7663);
        expect(v!.length).toBeGreaterThan(db.meta.pageSize);
        expect(v!.subarray(0, 4).toString('hex')).toBe('0a041202');
        // the page holding it says overflow 1
        const leafPage = rec!.rootPage!;
        expect(raw.readUInt32LE(leafPage * db.meta.pageSize + 12)).toBe(1);
      });
    }
  });

  it('reads every real fixture database completely', async () => {
    for (const scenario of ['docker-20.10-builds', 'docker-28.5-builds', 'docker-20.10-killed-mid-build']) {
      for (const f of ['snapshots.db', 'metadata_v2.db', 'containerdmeta.db']) {
        expect(await walkCount(join(FIX, scenario, 'buildkit', f))).toBeGreaterThan(5);
      }
    }
  });
});

describe('bbolt reader on synthetic page images', () => {
  it('reads an inline bucket and a value spanning overflow pages', async () => {
    const big = Buffer.alloc(10_000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
    const { file, pageSize } = synthBbolt(
      bucket({
        outer: bucket({
          small: bucket({ a: '1', b: '2' }, { inline: true }),
          big,
          plain: 'x',
        }),
      }),
    );
    const path = await writeTmp(file);
    await withDb(path, async (db) => {
      const outer = await (await db.root()).bucket('outer');
      expect(outer!.inline).toBe(false);
      const got = await outer!.get('big');
      expect(got!.equals(big)).toBe(true);
      // the leaf page holding `big` spans 3 pages: overflow 2
      expect(file.readUInt32LE(outer!.rootPage! * pageSize + 12)).toBe(2);
      const small = await outer!.bucket('small');
      expect(small!.inline).toBe(true);
      expect((await small!.get('b'))?.toString()).toBe('2');
      expect((await collect(small!)).map((e) => [e.key, e.value?.toString()])).toEqual([
        ['a', '1'],
        ['b', '2'],
      ]);
      expect((await collect(outer!)).map((e) => e.key)).toEqual(['big', 'plain', 'small']);
    });
  });

  it('walks a multi-level branch tree and finds every key with get()', async () => {
    const entries: Record<string, string> = {};
    for (let i = 0; i < 500; i++) entries[`key-${String(i).padStart(4, '0')}`] = `value ${i}`;
    const { file } = synthBbolt(bucket({ b: bucket(entries, { perLeaf: 3, perBranch: 3 }) }));
    const path = await writeTmp(file);
    await withDb(path, async (db) => {
      const b = await (await db.root()).bucket('b');
      expect(file.readUInt16LE(b!.rootPage! * db.meta.pageSize + 8)).toBe(0x01);
      const all = await collect(b!);
      expect(all.map((e) => e.key)).toEqual(Object.keys(entries).sort());
      for (const [k, v] of Object.entries(entries)) expect((await b!.get(k))?.toString()).toBe(v);
      expect(await b!.get('key-')).toBeNull();
      expect(await b!.get('key-9999')).toBeNull();
      expect(await b!.get('a')).toBeNull();
    });
  });

  it('supports other page sizes', async () => {
    const { file } = synthBbolt(bucket({ b: bucket({ k: 'v' }) }), { pageSize: 16384 });
    await withDb(await writeTmp(file), async (db) => {
      expect(db.meta.pageSize).toBe(16384);
      expect((await (await (await db.root()).bucket('b'))!.get('k'))?.toString()).toBe('v');
    });
  });

  it('uses the valid meta with the highest txid and falls back to the other', async () => {
    const older = bucket({ b: bucket({ version: 'old' }) });
    const newer = bucket({ b: bucket({ version: 'new' }) });
    const { file, pageSize } = synthBbolt(newer, { older, txids: [6, 7] });
    const version = async (buf: Buffer): Promise<[string | undefined, number, boolean]> =>
      withDb(await writeTmp(buf), async (db) => [(await (await (await db.root()).bucket('b'))!.get('version'))?.toString(), db.meta.txid, db.meta.otherMetaInvalid]);
    expect(await version(file)).toEqual(['new', 7, false]);

    const m1bad = Buffer.from(file);
    m1bad.fill(0, pageSize, 2 * pageSize);
    expect(await version(m1bad)).toEqual(['old', 6, true]);

    const m0bad = Buffer.from(file);
    m0bad.fill(0, 0, pageSize); // page size must now come from meta 1
    expect(await version(m0bad)).toEqual(['new', 7, true]);

    const checksumBad = Buffer.from(file);
    checksumBad[pageSize + 16 + 48] ^= 1; // flip a txid bit of meta 1: checksum mismatch
    expect(await version(checksumBad)).toEqual(['old', 6, true]);

    // txid order decides, not the page number
    const swapped = synthBbolt(older, { older: newer, txids: [9, 8] }).file;
    expect(await version(swapped)).toEqual(['new', 9, false]);
  });
});

describe('bbolt reader on corrupt files', () => {
  const realPath = join(V20, 'snapshots.db');

  it('rejects truncated files', async () => {
    const real = await readFile(realPath);
    await expectBboltError(openBbolt(await writeTmp(Buffer.alloc(0))), /too small/);
    await expectBboltError(openBbolt(await writeTmp(real.subarray(0, 100))));
    await expectBboltError(openBbolt(await writeTmp(real.subarray(0, 4096 + 50))));
    // meta pages intact but data pages cut off: the high water mark says 6 pages
    await expectBboltError(openBbolt(await writeTmp(real.subarray(0, 3 * 4096))), /truncated/);
    await expectBboltError(openBbolt(await writeTmp(real.subarray(0, 5 * 4096 + 10))), /truncated/);
  });

  it('falls back when one real meta page is zeroed, fails when both are', async () => {
    const real = await readFile(realPath);
    const z1 = Buffer.from(real);
    z1.fill(0, 4096, 8192); // meta 1 has the newest txid (41)
    await withDb(await writeTmp(z1), async (db) => {
      expect(db.meta.metaPage).toBe(0);
      expect(db.meta.txid).toBe(40);
      expect(db.meta.otherMetaInvalid).toBe(true);
    });
    expect(await walkCount(await writeTmp(z1))).toBeGreaterThan(20);

    const z0 = Buffer.from(real);
    z0.fill(0, 0, 4096);
    await withDb(await writeTmp(z0), async (db) => {
      expect(db.meta.metaPage).toBe(1);
      expect(db.meta.txid).toBe(41);
    });

    const both = Buffer.from(real);
    both.fill(0, 0, 8192);
    await expectBboltError(openBbolt(await writeTmp(both)), /no valid meta page/);

    await expectBboltError(openBbolt(await writeTmp(Buffer.alloc(65536, 0x41))), /no valid meta page/);
  });

  it('rejects a meta page whose root points outside the file', async () => {
    const s = synthBbolt(bucket({ b: bucket({ k: 'v' }) }));
    const f = Buffer.from(s.file);
    writeMeta(f, 0, { pageSize: s.pageSize, root: 999, freelist: 2, pageCount: s.pageCount, txid: 1 });
    writeMeta(f, 1, { pageSize: s.pageSize, root: s.roots[1], freelist: 2, pageCount: 1_000_000, txid: 2 });
    await expectBboltError(openBbolt(await writeTmp(f)), /truncated/);
    writeMeta(f, 1, { pageSize: s.pageSize, root: 999, freelist: 2, pageCount: s.pageCount, txid: 2 });
    await expectBboltError(openBbolt(await writeTmp(f)), /root page 999/);
  });

  it('rejects a branch pointer out of range', async () => {
    const entries: Record<string, string> = {};
    for (let i = 0; i < 20; i++) entries[`k${String(i).padStart(2, '0')}`] = 'v';
    const s = synthBbolt(bucket(entries, { perLeaf: 4, perBranch: 8 }));
    const f = Buffer.from(s.file);
    const rootOff = s.roots[1] * s.pageSize;
    expect(f.readUInt16LE(rootOff + 8)).toBe(0x01);
    f.writeBigUInt64LE(123456n, rootOff + 16 + 16 * 2 + 8); // third child
    const path = await writeTmp(f);
    await expectBboltError(walkCount(path), /page 123456/);
    // errors found while walking name the file
    const err = await walkCount(path).catch((e: unknown) => e);
    expect((err as Error).message.startsWith(`${path}: `)).toBe(true);
    await expectBboltError(
      withDb(path, async (db) => (await db.root()).get('k09')),
      /outside the data pages/,
    );
    // a nested bucket whose root is out of range
    const s2 = synthBbolt(bucket({ b: bucket({ k: 'v' }) }));
    const f2 = Buffer.from(s2.file);
    const rootLeaf = s2.roots[1] * s2.pageSize;
    const pos = f2.readUInt32LE(rootLeaf + 16 + 4);
    const ksize = f2.readUInt32LE(rootLeaf + 16 + 8);
    f2.writeBigUInt64LE(77777n, rootLeaf + 16 + pos + ksize); // InBucket.root
    await expectBboltError(walkCount(await writeTmp(f2)), /root page 77777/);
  });

  it('detects cycles in the page tree and in bucket nesting, without hanging', async () => {
    const entries: Record<string, string> = {};
    for (let i = 0; i < 20; i++) entries[`k${String(i).padStart(2, '0')}`] = 'v';
    const s = synthBbolt(bucket(entries, { perLeaf: 2, perBranch: 3 }));
    const rootPg = s.roots[1];
    // child of the root pointing back at the root
    const self = Buffer.from(s.file);
    self.writeBigUInt64LE(BigInt(rootPg), rootPg * s.pageSize + 16 + 8);
    await expectBboltError(walkCount(await writeTmp(self)), /cycle/);
    await expectBboltError(
      withDb(await writeTmp(self), async (db) => (await db.root()).get('k00')),
      /cycle/,
    );
    // a grandchild branch pointing back at its parent
    const deep = Buffer.from(s.file);
    const child = Number(deep.readBigUInt64LE(rootPg * s.pageSize + 16 + 8));
    expect(deep.readUInt16LE(child * s.pageSize + 8)).toBe(0x01);
    deep.writeBigUInt64LE(BigInt(child), child * s.pageSize + 16 + 16 + 8);
    await expectBboltError(walkCount(await writeTmp(deep)), /cycle/);

    // a nested bucket whose root is its parent's page: endless nesting, bounded
    const s2 = synthBbolt(bucket({ a: 'x', b: bucket({ k: 'v' }) }));
    const f2 = Buffer.from(s2.file);
    const leaf = s2.roots[1] * s2.pageSize;
    const el = leaf + 16 + 16; // element 1 = "b"
    const pos = f2.readUInt32LE(el + 4);
    f2.writeBigUInt64LE(BigInt(s2.roots[1]), el + pos + 1);
    const p2 = await writeTmp(f2);
    await expectBboltError(walkCount(p2), /root of more than one bucket/);
    // opening it level by level by hand stops at the nesting bound
    await expectBboltError(
      withDb(p2, async (db) => {
        let b: BboltBucket | null = await db.root();
        for (let i = 0; i < 10_000 && b; i++) b = await b.bucket('b');
      }),
      /nested deeper/,
    );
  });

  it('rejects bad element offsets, bad page ids and bad page types', async () => {
    const s = synthBbolt(bucket({ b: bucket({ key: 'value' }) }));
    const root = s.roots[1] * s.pageSize;
    const bad1 = Buffer.from(s.file);
    bad1.writeUInt32LE(0xffffff00, root + 16 + 12); // vsize of element 0
    await expectBboltError(walkCount(await writeTmp(bad1)), /outside the page/);
    const bad2 = Buffer.from(s.file);
    bad2.writeBigUInt64LE(99n, root); // page id
    await expectBboltError(walkCount(await writeTmp(bad2)), /identifies itself as page 99/);
    const bad3 = Buffer.from(s.file);
    bad3.writeUInt16LE(0x10, root + 8); // freelist flags where a leaf should be
    await expectBboltError(walkCount(await writeTmp(bad3)), /flags 0x10/);
    const bad4 = Buffer.from(s.file);
    bad4.writeUInt16LE(5000, root + 10); // count far too large
    await expectBboltError(walkCount(await writeTmp(bad4)), /do not fit/);
    const bad5 = Buffer.from(s.file);
    bad5.writeUInt32LE(0x7fffffff, root + 12); // overflow beyond the file
    await expectBboltError(walkCount(await writeTmp(bad5)), /overflow/);
  });

  it('never throws anything but BboltError on randomly damaged real files', async () => {
    let seed = 12345;
    const rnd = (): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x80000000;
    };
    let failures = 0;
    for (const f of ['snapshots.db', 'metadata_v2.db']) {
      const real = await readFile(join(V20, f));
      const meta = await withDb(join(V20, f), async (db) => db.meta);
      const used = meta.pageCount * meta.pageSize;
      for (let iter = 0; iter < 150; iter++) {
        const buf = Buffer.from(real);
        const flips = 1 + Math.floor(rnd() * 8);
        for (let k = 0; k < flips; k++) {
          // damage data pages (the meta pages are covered by their checksums)
          const at = 2 * meta.pageSize + Math.floor(rnd() * (used - 2 * meta.pageSize));
          buf[at] = Math.floor(rnd() * 256);
        }
        try {
          await walkCount(await writeTmp(buf));
        } catch (err) {
          if (!(err instanceof BboltError)) throw err;
          failures++;
        }
      }
    }
    expect(failures).toBeGreaterThan(0);
  });

  it('reports a missing file as BboltError with the errno code, and refuses use after close', async () => {
    const err = await openBbolt(join(tmp, 'missing.db')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BboltError);
    expect((err as BboltError).code).toBe('ENOENT');
    const db = await openBbolt(realPath);
    const root = await db.root();
    await db.close();
    await expectBboltError(collect(root), /closed/);
  });
});
