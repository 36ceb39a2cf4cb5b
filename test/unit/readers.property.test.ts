// Property-based tests of every reader (fast-check, seeded): arbitrary bytes in, a typed result or a
// typed error out, and a bounded amount of output for a bounded input. A failing case prints its
// seed and the shrunk input; `FC_SEED=<n>` replays it.
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { BboltError, openBbolt, walkAll } from '../../src/store/bbolt.js';
import { readBuildkitOwnership } from '../../src/store/buildkit.js';
import { readTarSplit, TarSplitError } from '../../src/verify/tarsplit.js';
import { readLayerDb } from '../../src/store/layerdb.js';
import { readImages } from '../../src/store/images.js';
import { readContainers } from '../../src/store/containers.js';
import { parseMountinfo, MountTable } from '../../src/fsx/mounts.js';
import { readDaemonConfig } from '../../src/store/daemon-config.js';
import { LayergcError } from '../../src/errors.js';
import { BBOLT_FIXTURES, tarWithSplit } from '../helpers/synthetic.js';

const seed = process.env.FC_SEED ? Number(process.env.FC_SEED) : 15;
const RUNS = Number(process.env.FC_RUNS ?? 150);
const params = { seed, numRuns: RUNS };

const tmp = fs.mkdtempSync(path.join(tmpdir(), 'layergc-prop-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;
function fresh(): string {
  const d = path.join(tmp, `c${n++}`);
  fs.mkdirSync(d, { recursive: true });
  return d;
}
function fileWith(bytes: Uint8Array | string, name = 'f'): string {
  const p = path.join(fresh(), name);
  fs.writeFileSync(p, bytes);
  return p;
}

/** Bytes that stress parsers: random, and random slices of real files with random flips. */
function mutated(base: Buffer): fc.Arbitrary<Buffer> {
  return fc
    .record({
      flips: fc.array(fc.record({ at: fc.nat({ max: Math.max(0, base.length - 1) }), v: fc.integer({ min: 0, max: 255 }) }), { maxLength: 64 }),
      cut: fc.option(fc.nat({ max: base.length }), { nil: undefined }),
    })
    .map(({ flips, cut }) => {
      const b = Buffer.from(base.subarray(0, cut ?? base.length));
      for (const f of flips) if (f.at < b.length) b[f.at] = f.v;
      return b;
    });
}

describe('bbolt', () => {
  const real = fs.readFileSync(path.join(BBOLT_FIXTURES, 'docker-20.10-builds/buildkit/snapshots.db'));

  async function readAll(p: string): Promise<number> {
    const db = await openBbolt(p);
    try {
      let count = 0;
      await walkAll(db, () => void count++);
      return count;
    } finally {
      await db.close();
    }
  }

  it('arbitrary bytes and damaged real files: every entry, or a BboltError', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ maxLength: 20_000 }).map((u) => Buffer.from(u)),
          mutated(real),
        ),
        async (bytes) => {
          const p = fileWith(bytes);
          try {
            const count = await readAll(p);
            // a page holds at most pageSize/16 elements: the walk cannot yield more than the file could hold
            expect(count).toBeLessThanOrEqual(bytes.length / 16);
          } catch (err) {
            expect(err).toBeInstanceOf(BboltError);
          }
        },
      ),
      params,
    );
  });

  it("BuildKit's three databases, damaged: read or 'unreadable', never a throw", async () => {
    const files = ['snapshots.db', 'metadata_v2.db', 'containerdmeta.db'];
    const bases = files.map((f) => fs.readFileSync(path.join(BBOLT_FIXTURES, 'docker-20.10-builds/buildkit', f)));
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: 2 }),
        fc.nat({ max: 2 }).chain((i) => mutated(bases[i]).map((b) => [i, b] as const)),
        async (_k, [i, bytes]) => {
          const root = fresh();
          fs.mkdirSync(path.join(root, 'buildkit'));
          fs.writeFileSync(path.join(root, 'buildkit', files[i]), bytes);
          const own = await readBuildkitOwnership(root);
          expect(['read', 'unreadable', 'absent']).toContain(own.state);
        },
      ),
      { ...params, numRuns: Math.ceil(RUNS / 2) },
    );
  });
});

describe('tar-split', () => {
  async function drain(p: string): Promise<number> {
    let count = 0;
    for await (const _e of readTarSplit(p)) count++;
    return count;
  }
  const valid = tarWithSplit({ 'a.txt': 'hello\n', 'dir/b.bin': Buffer.alloc(3000, 7), c: '' });
  const validJson = gunzipSync(valid.tarSplit);

  const inputs = fc.oneof(
    fc.uint8Array({ maxLength: 5000 }).map((u) => Buffer.from(u)), // not gzip at all
    fc.uint8Array({ maxLength: 5000 }).map((u) => gzipSync(u)), // gzip of anything
    mutated(validJson).map((b) => gzipSync(b)), // damaged JSON lines
    mutated(valid.tarSplit), // damaged gzip
    fc.array(fc.jsonValue(), { maxLength: 50 }).map((vs) => gzipSync(vs.map((v) => JSON.stringify(v)).join('\n'))), // arbitrary JSON lines
  );

  it('arbitrary input: entries, then at most a TarSplitError; never more entries than lines', async () => {
    await fc.assert(
      fc.asyncProperty(inputs, async (bytes) => {
        const p = fileWith(bytes, 'tar-split.json.gz');
        try {
          const count = await drain(p);
          // a line is at least `{"type":2}`; gzip inflates at most ~1032x
          expect(count).toBeLessThanOrEqual(110 * bytes.length + 1);
        } catch (err) {
          expect(err).toBeInstanceOf(TarSplitError);
          expect(['missing', 'truncated', 'corrupt']).toContain((err as TarSplitError).kind);
        }
      }),
      params,
    );
  });
});

describe('layerdb files', () => {
  const text = fc.oneof(
    fc.string({ maxLength: 300 }),
    fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u).toString('latin1')),
    fc.constantFrom('sha256:' + 'a'.repeat(64), '512', '', '\n', 'c'.repeat(300), '../..', 'a/b'),
  );
  it('arbitrary diff, size, cache-id, parent, descriptor.json, mount files: a record with its problems, never a throw', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({ diff: fc.option(text), size: fc.option(text), 'cache-id': fc.option(text), parent: fc.option(text), 'descriptor.json': fc.option(text) }),
        fc.record({ 'mount-id': fc.option(text), 'init-id': fc.option(text), parent: fc.option(text) }),
        async (files, mountFiles) => {
          const layerdb = fresh();
          const dir = path.join(layerdb, 'sha256', 'b'.repeat(64));
          const rm = path.join(layerdb, 'sha256', `${'c'.repeat(64)}-x-removing`);
          const mnt = path.join(layerdb, 'mounts', 'm1');
          const ws = path.join(layerdb, 'tmp', 'write-set-1');
          for (const d of [dir, rm, mnt, ws]) fs.mkdirSync(d, { recursive: true });
          for (const [k, v] of Object.entries(files)) if (v !== null) fs.writeFileSync(path.join(dir, k), v, 'latin1');
          for (const [k, v] of Object.entries(mountFiles)) if (v !== null) fs.writeFileSync(path.join(mnt, k), v, 'latin1');
          if (files['cache-id'] !== null) {
            fs.writeFileSync(path.join(rm, 'cache-id'), files['cache-id'], 'latin1');
            fs.writeFileSync(path.join(ws, 'cache-id'), files['cache-id'], 'latin1');
          }
          const db = await readLayerDb(layerdb);
          const rec = db.layers.get(`sha256:${'b'.repeat(64)}`)!;
          expect(rec).toBeDefined();
          // a layer loads exactly when it has no problems, and then has every field moby needs
          if (rec.problems.length === 0) {
            expect(rec.diffId).toMatch(/^sha256:[0-9a-f]{64}$/);
            expect(Number.isSafeInteger(rec.size)).toBe(true);
            expect(rec.cacheId).toBeTruthy();
          }
          if (rec.cacheId !== undefined) expect(rec.cacheId).not.toMatch(/\/|^\.\.?$/);
          expect(db.mounts).toHaveLength(1);
          expect(db.removing).toHaveLength(1);
        },
      ),
      params,
    );
  });
});

describe('image configs and repositories.json', () => {
  it('arbitrary configs and tags: an image record (with a problem when it is not a valid image), never a throw', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.jsonValue().map((v) => JSON.stringify(v)),
          fc.string({ maxLength: 500 }),
          fc.record({ rootfs: fc.record({ diff_ids: fc.array(fc.oneof(fc.string(), fc.constant('sha256:' + 'd'.repeat(64)), fc.integer())) }) }).map((v) => JSON.stringify(v)),
        ),
        fc.oneof(
          fc.jsonValue().map((v) => JSON.stringify(v)),
          fc.string({ maxLength: 300 }),
          fc.constant(null),
        ),
        async (config, repositories) => {
          const imageDir = fresh();
          const content = path.join(imageDir, 'imagedb/content/sha256');
          fs.mkdirSync(content, { recursive: true });
          const hex = createHash('sha256').update(config).digest('hex');
          fs.writeFileSync(path.join(content, hex), config);
          if (repositories !== null) fs.writeFileSync(path.join(imageDir, 'repositories.json'), repositories);
          const db = await readImages(imageDir, []);
          const img = db.images.find((i) => i.id === `sha256:${hex}`)!;
          expect(img).toBeDefined();
          if (!img.problem) expect(img.chainIds.length).toBe(img.diffIds.length);
          for (const i of db.images) for (const t of i.tags) expect(typeof t).toBe('string');
        },
      ),
      params,
    );
  });

  it('arbitrary config.v2.json: a container record, never a throw', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.jsonValue().map((v) => JSON.stringify(v)),
          fc.string({ maxLength: 300 }),
          fc.record({ Name: fc.jsonValue(), Image: fc.jsonValue(), Driver: fc.jsonValue() }).map((v) => JSON.stringify(v)),
        ),
        async (cfg) => {
          const root = fresh();
          fs.mkdirSync(path.join(root, 'containers', 'c1'), { recursive: true });
          fs.writeFileSync(path.join(root, 'containers', 'c1', 'config.v2.json'), cfg);
          const [c] = await readContainers(root, []);
          expect(typeof c.name).toBe('string');
          expect(c.image === undefined || typeof c.image === 'string').toBe(true);
        },
      ),
      params,
    );
  });
});

describe('mountinfo', () => {
  it('arbitrary text: entries with string mount points, never a throw', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 2000 }),
          fc
            .array(
              fc.array(fc.oneof(fc.string({ maxLength: 20 }), fc.constant('-')), { maxLength: 12 }).map((f) => f.join(' ')),
              { maxLength: 30 },
            )
            .map((l) => l.join('\n')),
        ),
        (text) => {
          const entries = parseMountinfo(text);
          expect(entries.length).toBeLessThanOrEqual(text.split('\n').length);
          for (const e of entries) expect(typeof e.point).toBe('string');
          const p = fileWith(text);
          const t = MountTable.read(p);
          expect(t.known).toBe(true);
          t.under('/');
        },
      ),
      params,
    );
  });
});

describe('daemon config', () => {
  it('arbitrary bytes and JSON: a config whose fields have the types layergc uses, or a LayergcError', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u)),
          fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v))),
          fc
            .record({ 'data-root': fc.jsonValue(), 'storage-driver': fc.jsonValue(), 'userns-remap': fc.jsonValue(), graph: fc.jsonValue(), features: fc.jsonValue() }, { requiredKeys: [] })
            .map((v) => Buffer.from(JSON.stringify(v))),
        ),
        (bytes) => {
          const p = fileWith(bytes, 'daemon.json');
          try {
            const { config } = readDaemonConfig(p);
            for (const k of ['data-root', 'graph', 'storage-driver', 'userns-remap'] as const) {
              expect(config[k] === undefined || typeof config[k] === 'string').toBe(true);
            }
            expect(config.features === undefined || (typeof config.features === 'object' && config.features !== null)).toBe(true);
          } catch (err) {
            expect(err).toBeInstanceOf(LayergcError);
          }
        },
      ),
      params,
    );
  });

  it('a FIFO as the daemon config: a one-line error, not a hang', () => {
    const p = path.join(fresh(), 'daemon.json');
    execFileSync('mkfifo', [p]);
    expect(() => readDaemonConfig(p)).toThrow(/a FIFO, not a regular file/);
  });
});
