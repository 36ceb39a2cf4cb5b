/**
 * The bbolt writer (src/store/bbolt-write.ts) against the reader and against bbolt-synth, an
 * independent builder of bbolt files: write → read gives the same tree (keys, values, nested
 * buckets, bucket sequences), for small and inline buckets, wide trees with branch pages, values that
 * overflow a page, binary keys and several page sizes; the file's meta pages, freelist and inline
 * rule are bbolt's; and what the writer refuses.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openBbolt, readTree, type BboltTree, type BboltTreeEntry } from '../../src/store/bbolt.js';
import { writeBbolt } from '../../src/store/bbolt-write.js';
import { bucket, synthBbolt } from '../helpers/bbolt-synth.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lgc-bbw-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
let n = 0;

async function read(file: Buffer): Promise<{ tree: BboltTree; meta: Awaited<ReturnType<typeof openBbolt>>['meta'] }> {
  const p = path.join(dir, `db${n++}`);
  fs.writeFileSync(p, file);
  const db = await openBbolt(p);
  try {
    return { tree: await readTree(db), meta: db.meta };
  } finally {
    await db.close();
  }
}

/** A comparable plain form of a tree: [sequence, [[key hex, value hex | subtree]]]. */
function plain(t: BboltTree): unknown {
  return [String(t.sequence), t.entries.map((e: BboltTreeEntry) => [e.key.toString('hex'), 'bucket' in e ? plain(e.bucket) : e.value.toString('hex')])];
}

const T = (sequence: number, entries: [string | Buffer, Buffer | string | BboltTree][]): BboltTree => ({
  sequence: BigInt(sequence),
  entries: entries
    .map(([k, v]): BboltTreeEntry => {
      const key = typeof k === 'string' ? Buffer.from(k) : k;
      return typeof v === 'string' || Buffer.isBuffer(v) ? { key, value: Buffer.from(v) } : { key, bucket: v };
    })
    .sort((a, b) => Buffer.compare(a.key, b.key)),
});

/** A pseudo-random tree: deterministic per seed. */
function randomTree(seed: number, depth: number, width: number): BboltTree {
  let s = seed;
  const rnd = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
  const make = (d: number): BboltTree => {
    const entries = new Map<string, Buffer | BboltTree>();
    const count = Math.floor(rnd() * width);
    for (let i = 0; i < count; i++) {
      const key = Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 40) }, () => Math.floor(rnd() * 256)));
      const r = rnd();
      if (d > 0 && r < 0.1) entries.set(key.toString('hex'), make(d - 1));
      else entries.set(key.toString('hex'), Buffer.alloc(Math.floor(rnd() < 0.05 ? rnd() * 20000 : rnd() * 200), Math.floor(rnd() * 256)));
    }
    return T(
      Math.floor(rnd() * 1000),
      [...entries].map(([k, v]) => [Buffer.from(k, 'hex'), v]),
    );
  };
  return { sequence: 7n, entries: make(depth).entries.map((e) => ('bucket' in e ? e : { key: e.key, bucket: T(1, [['v', e.value]]) })) };
}

describe('the bbolt writer', () => {
  it('round-trips what an independent builder wrote: every key, value, nested and inline bucket and sequence', async () => {
    const src = synthBbolt(
      bucket(
        {
          v1: bucket(
            {
              version: Buffer.from([6]),
              moby: bucket(
                {
                  leases: bucket({ a: bucket({ createdat: 'x', labels: bucket({ 'containerd.io/gc.expire': '2026-12-01T00:00:00Z' }, { inline: true }) }, { sequence: 3 }) }, { sequence: 9 }),
                  wide: bucket(Object.fromEntries(Array.from({ length: 700 }, (_, i) => [`k${String(i).padStart(4, '0')}`, `value-${i}`])), { perLeaf: 20, perBranch: 3, sequence: 700 }),
                  empty: bucket({}, { inline: true }),
                  big: bucket({ blob: Buffer.alloc(3 * 4096 + 17, 5), small: 's' }),
                },
                { sequence: 42 },
              ),
            },
            { sequence: 5 },
          ),
        },
        { sequence: 11 },
      ),
    );
    const a = await read(src.file);
    const out = writeBbolt(a.tree, { pageSize: 4096, txid: BigInt(a.meta.txid + 1) });
    const b = await read(out);
    expect(plain(b.tree)).toEqual(plain(a.tree));
    expect(b.tree.sequence).toBe(11n);
    // deterministic: writing what was read back gives the same bytes
    expect(writeBbolt(b.tree, { pageSize: 4096, txid: BigInt(a.meta.txid + 1) }).equals(out)).toBe(true);
  });

  it.each([1024, 4096, 16384])('round-trips pseudo-random trees (binary keys, overflowing values, deep nesting) with %i-byte pages', async (pageSize) => {
    const seen = { branch: 0, overflow: 0 };
    for (const seed of [1, 2, 3, 4, 5]) {
      const tree = randomTree(seed * 7919, 3, 60);
      const file = writeBbolt(tree, { pageSize, txid: 10n });
      const b = await read(file);
      expect(plain(b.tree)).toEqual(plain(tree));
      expect(b.meta.pageSize).toBe(pageSize);
      for (let id = 3; id < b.meta.pageCount; ) {
        if (file.readUInt16LE(id * pageSize + 8) === 0x01) seen.branch++;
        const over = file.readUInt32LE(id * pageSize + 12);
        if (over) seen.overflow++;
        id += over + 1;
      }
    }
    // the trees exercise branch pages and overflow pages
    expect(seen.branch).toBeGreaterThan(0);
    expect(seen.overflow).toBeGreaterThan(0);
  });

  it('writes two valid meta pages (txid parity = page), an empty freelist at page 2, a file of exactly the high water mark', async () => {
    const out = writeBbolt(T(0, [['b', T(0, [['k', 'v']])]]), { pageSize: 4096, txid: 41n });
    const { meta } = await read(out);
    expect(meta.txid).toBe(41);
    expect(meta.metaPage).toBe(1);
    expect(meta.otherMetaInvalid).toBe(false);
    expect(out.readBigUInt64LE(16 + 48)).toBe(40n); // meta 0's txid
    expect(out.readUInt16LE(2 * 4096 + 8)).toBe(0x10);
    expect(out.readUInt16LE(2 * 4096 + 10)).toBe(0);
    expect(out.readBigUInt64LE(16 + 32)).toBe(2n);
    expect(out.length).toBe(meta.pageCount * 4096);
    // meta 0 alone (meta 1 zeroed) still opens, at txid 40
    const m0 = Buffer.from(out);
    m0.fill(0, 4096, 8192);
    expect((await read(m0)).meta.txid).toBe(40);
  });

  it('inlines a bucket as bbolt does: no nested bucket and a leaf of at most a quarter page', async () => {
    const small = T(0, [['k', 'v']]);
    const quarter = T(0, [['k', Buffer.alloc(1024 - 16 - 16 - 1)]]); // exactly 1024 bytes as a leaf
    const over = T(0, [['k', Buffer.alloc(1024 - 16 - 16)]]);
    const nested = T(0, [['in', T(0, [])]]);
    const out = writeBbolt(
      T(0, [
        ['a', small],
        ['b', quarter],
        ['c', over],
        ['d', nested],
      ]),
      { pageSize: 4096, txid: 1n },
    );
    const p = path.join(dir, 'inline');
    fs.writeFileSync(p, out);
    const db = await openBbolt(p);
    try {
      const root = await db.root();
      const inline = await Promise.all(['a', 'b', 'c', 'd'].map(async (k) => (await root.bucket(k))!.inline));
      expect(inline).toEqual([true, true, false, false]);
      expect((await (await (await root.bucket('d'))!.bucket('in'))!).inline).toBe(true);
    } finally {
      await db.close();
    }
  });

  it('refuses what bbolt cannot hold: unsorted or duplicate keys, a value at the root, a bad page size', () => {
    const bad = {
      sequence: 0n,
      entries: [
        { key: Buffer.from('b'), value: Buffer.from('1') },
        { key: Buffer.from('a'), value: Buffer.from('2') },
      ],
    };
    expect(() => writeBbolt(T(0, [['x', bad]]), { pageSize: 4096, txid: 1n })).toThrow(/ascending/);
    const dup = {
      sequence: 0n,
      entries: [
        { key: Buffer.from('a'), value: Buffer.from('1') },
        { key: Buffer.from('a'), value: Buffer.from('2') },
      ],
    };
    expect(() => writeBbolt(T(0, [['x', dup]]), { pageSize: 4096, txid: 1n })).toThrow(/ascending/);
    expect(() => writeBbolt(T(0, [['x', 'plain']]), { pageSize: 4096, txid: 1n })).toThrow(/only buckets/);
    expect(() => writeBbolt(T(0, []), { pageSize: 3000, txid: 1n })).toThrow(/power of two/);
  });
});
