/**
 * The containerd image store on synthetic stores (meta.db and metadata.db written by bbolt-synth in
 * containerd's schema): the GC mark, every finding kind of the scan, verify of blobs, explain, and
 * the refusals — through the real CLI, exact JSON (validated against docs/scan.schema.json).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import { chainIds } from '../../src/store/digest.js';
import { afterAll, describe, expect, it } from 'vitest';
import { runCliAsync } from '../helpers/synthetic.js';
import { containerdRoot, digestOf, hex64, type ContainerdSpec } from '../helpers/containerd-synth.js';
import { GcGraph, contentNode, snapshotNode, ingestNode } from '../../src/store/containerd/gc.js';
import type { MetaDb, MetaNamespace } from '../../src/store/containerd/model.js';

const bases: string[] = [];
afterAll(() => {
  for (const b of bases) fs.rmSync(b, { recursive: true, force: true });
});
function base(): string {
  const b = fs.mkdtempSync(path.join(os.tmpdir(), 'lgc-ctrd-'));
  bases.push(b);
  return b;
}

/** Every path below `dir`, relative, sorted. */
function listTree(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[]).sort();
}

const scanJson = async (dataRoot: string, extra: string[] = []) => {
  const r = await runCliAsync(['scan', '--data-root', dataRoot, '--json', ...extra]);
  return { ...r, out: r.stdout ? (JSON.parse(r.stdout) as { findings: Record<string, any>[]; [k: string]: unknown }) : undefined };
};

// ---- the mark, replayed on in-memory databases -------------------------------------------------

function ns(name: string, part: Partial<MetaNamespace>): MetaNamespace {
  return { name, images: [], containers: [], snapshots: [], blobs: [], ingests: [], leases: [], sandboxes: [], ...part };
}
const L = (o: Record<string, string>) => new Map(Object.entries(o));
const NOW = Date.parse('2026-11-30T08:00:00Z');

describe('the GC mark', () => {
  const snap = (key: string, parent?: string, labels: Record<string, string> = {}) => ({ namespace: 'moby', snapshotter: 'overlayfs', key, name: `moby/1/${key}`, parent, labels: L(labels) });
  const blob = (digest: string, labels: Record<string, string> = {}) => ({ namespace: 'moby', digest, labels: L(labels) });
  const lease = (id: string, labels: Record<string, string>, r: { snapshots?: string[]; content?: string[]; ingests?: string[]; images?: string[] }) => ({
    namespace: 'moby',
    id,
    labels: L(labels),
    snapshots: (r.snapshots ?? []).map((key) => ({ snapshotter: 'overlayfs', key })),
    content: r.content ?? [],
    ingests: r.ingests ?? [],
    images: r.images ?? [],
  });

  it('follows image target, gc.ref labels (content.<x>, content/<x>, snapshot.<ss>) and parents; flat leases follow parents only; expired leases are no roots', () => {
    const db: MetaDb = {
      version: 3,
      namespaces: [
        ns('moby', {
          images: [{ namespace: 'moby', name: 'app:1', target: 'sha256:m', labels: L({}) }],
          blobs: [
            blob('sha256:m', { 'containerd.io/gc.ref.content.config': 'sha256:c', 'containerd.io/gc.ref.content/l/0': 'sha256:l', 'containerd.io/gc.ref.contentX': 'sha256:nope' }),
            blob('sha256:c', { 'containerd.io/gc.ref.snapshot.overlayfs': 'top' }),
            blob('sha256:l'),
            blob('sha256:flatref', { 'containerd.io/gc.ref.content': 'sha256:viaflat' }),
            blob('sha256:viaflat'),
            blob('sha256:nope'),
            blob('sha256:expiredonly'),
          ],
          snapshots: [snap('base'), snap('top', 'base'), snap('fl', 'base', { 'containerd.io/gc.ref.content.x': 'sha256:viaflat' })],
          leases: [
            lease('flat', { 'containerd.io/gc.flat': 'x' }, { snapshots: ['fl'], content: ['sha256:flatref'] }),
            lease('old', { 'containerd.io/gc.expire': '2026-11-30T07:00:00Z' }, { content: ['sha256:expiredonly'] }),
          ],
        }),
      ],
    };
    const g = new GcGraph(db, NOW);
    const m = g.mark();
    const has = (n: string) => m.has(n);
    expect(['sha256:m', 'sha256:c', 'sha256:l', 'sha256:flatref'].every((d) => has(contentNode('moby', d)))).toBe(true);
    expect(has(contentNode('moby', 'sha256:nope'))).toBe(false); // "gc.ref.contentX" is not a reference
    expect(has(contentNode('moby', 'sha256:viaflat'))).toBe(false); // a flat lease does not follow labels
    expect(has(contentNode('moby', 'sha256:expiredonly'))).toBe(false);
    expect(['base', 'top', 'fl'].every((k) => has(snapshotNode('moby', 'overlayfs', k)))).toBe(true);
    // leaving the flat lease out frees what only it held, not the shared parent
    const without = g.mark(new Set(['moby/flat']));
    expect(without.has(snapshotNode('moby', 'overlayfs', 'fl'))).toBe(false);
    expect(without.has(snapshotNode('moby', 'overlayfs', 'base'))).toBe(true);
    expect(without.has(contentNode('moby', 'sha256:flatref'))).toBe(false);
  });

  it('roots unexpired ingests (and their expected blob), gc.root resources, containers; an unparsable expiry never expires', () => {
    const db: MetaDb = {
      version: 3,
      namespaces: [
        ns('moby', {
          ingests: [
            { namespace: 'moby', ref: 'live', backendRef: 'moby/1/live', expireAt: NOW + 1000, expected: 'sha256:e' },
            { namespace: 'moby', ref: 'stale', backendRef: 'moby/1/stale', expireAt: NOW - 1000 },
          ],
          blobs: [blob('sha256:e'), blob('sha256:r', { 'containerd.io/gc.root': 'x' })],
          snapshots: [snap('ctr'), snap('z', undefined, { 'containerd.io/gc.root': '' })],
          containers: [{ namespace: 'moby', id: 'k', image: '', snapshotter: 'overlayfs', snapshotKey: 'ctr', labels: L({}) }],
          leases: [lease('weird', { 'containerd.io/gc.expire': 'not a time' }, { content: ['sha256:w'] })],
        }),
      ],
    };
    const m = new GcGraph(db, NOW).mark();
    expect(m.has(ingestNode('moby', 'live'))).toBe(true);
    expect(m.has(contentNode('moby', 'sha256:e'))).toBe(true);
    expect(m.has(ingestNode('moby', 'stale'))).toBe(false);
    expect(m.has(contentNode('moby', 'sha256:r'))).toBe(true);
    expect(m.has(snapshotNode('moby', 'overlayfs', 'ctr'))).toBe(true);
    expect(m.has(snapshotNode('moby', 'overlayfs', 'z'))).toBe(true);
    expect(m.has(contentNode('moby', 'sha256:w'))).toBe(true);
  });

  it('schema 4 (containerd 2.x): leased images, image expiry, gc.bref back-references', () => {
    const mk = (version: number): MetaDb => ({
      version,
      namespaces: [
        ns('moby', {
          images: [
            { namespace: 'moby', name: 'gone', target: 'sha256:g', labels: L({ 'containerd.io/gc.expire': '2026-11-30T07:00:00Z' }) },
            { namespace: 'moby', name: 'leased', target: 'sha256:q', labels: L({ 'containerd.io/gc.expire': '2026-11-30T07:00:00Z' }) },
          ],
          blobs: [blob('sha256:g'), blob('sha256:q'), blob('sha256:back', { 'containerd.io/gc.bref.content': 'sha256:q' })],
          leases: [lease('l', {}, { images: ['leased'] })],
        }),
      ],
    });
    const m4 = new GcGraph(mk(4), NOW).mark();
    expect(m4.has(contentNode('moby', 'sha256:g'))).toBe(false);
    expect(m4.has(contentNode('moby', 'sha256:q'))).toBe(true);
    expect(m4.has(contentNode('moby', 'sha256:back'))).toBe(true);
    // schema 3 has no image expiry and no back-references
    const m3 = new GcGraph(mk(3), NOW).mark();
    expect(m3.has(contentNode('moby', 'sha256:g'))).toBe(true);
    expect(m3.has(contentNode('moby', 'sha256:back'))).toBe(false);
  });
});

// ---- a damaged store with every failure class, through the CLI ---------------------------------

const C1 = hex64('c1'); // a healthy created container
const C2 = hex64('c2'); // a lease with no container (F6)
const C3 = hex64('c3'); // containers/<id> without config.v2.json (F6)
const CHAIN = 'sha256:' + hex64('chain');
const CHAIN2 = 'sha256:' + hex64('chain2');

function damagedStore() {
  const b = base();
  const layer = 'layer bytes of app:1';
  const config = 'config of app:1';
  const manifest = 'manifest of app:1';
  const loaded = 'a blob of a killed docker load';
  const shared = 'a blob the k8s.io namespace also records';
  const dLayer = digestOf(layer);
  const dConfig = digestOf(config);
  const dManifest = digestOf(manifest);
  const dLoaded = digestOf(loaded);
  const dShared = digestOf(shared);
  const loadRef = `tar-blobs/sha256/${hex64('load')}`;
  const spec: ContainerdSpec = {
    namespaces: {
      moby: {
        images: { 'docker.io/library/app:1': { target: dManifest }, 'docker.io/library/app:2': { target: dManifest, labels: { 'containerd.io/gc.ref.snapshot.overlayfs': 'gone' } } },
        blobs: {
          [dManifest]: { size: manifest.length, labels: { 'containerd.io/gc.ref.content.config': dConfig, 'containerd.io/gc.ref.content.l.0': dLayer } },
          [dConfig]: { size: config.length, labels: { 'containerd.io/gc.ref.snapshot.overlayfs': CHAIN } },
          [dLayer]: { size: layer.length + 1 }, // a record whose size disagrees with the file (verify)
          [dLoaded]: { size: loaded.length },
          [dShared]: { size: shared.length },
        },
        snapshots: {
          [CHAIN]: { name: `moby/1/${CHAIN}` },
          [`${C1}-init`]: { name: `moby/2/${C1}-init`, parent: CHAIN },
          [C1]: { name: `moby/3/${C1}`, parent: `${C1}-init` },
          [`extract-1-abcd ${CHAIN2}`]: { name: `moby/4/extract-1-abcd ${CHAIN2}`, parent: CHAIN },
          [`${C2}-init-key`]: { name: `moby/5/${C2}-init-key`, parent: CHAIN },
          gone: { name: 'moby/8/gone', parent: CHAIN },
        },
        ingests: { [loadRef]: { ref: `moby/1/${loadRef}` } },
        leases: {
          [C1]: { snapshots: [C1, `${C1}-init`] },
          [C2]: { snapshots: [`${C2}-init-key`] },
          '113169686--U5d': { labels: { 'containerd.io/gc.expire': '2030-01-01T00:00:00Z' }, content: [dLoaded, dShared], ingests: [loadRef], snapshots: [`extract-1-abcd ${CHAIN2}`] },
          gonelease: { snapshots: ['gone'] },
        },
      },
      'k8s.io': {
        blobs: { [dShared]: { size: shared.length } },
        leases: {
          // another client's expiring lease: read, never called dead
          '999-zzzz': { labels: { 'containerd.io/gc.expire': '2020-01-01T00:00:00Z' }, content: [dShared] },
          keep: { content: [dShared] },
        },
      },
    },
    backend: {
      [`moby/1/${CHAIN}`]: { id: 1 },
      [`moby/2/${C1}-init`]: { id: 2, parent: `moby/1/${CHAIN}` },
      [`moby/3/${C1}`]: { id: 3, kind: 2, parent: `moby/2/${C1}-init` },
      [`moby/4/extract-1-abcd ${CHAIN2}`]: { id: 4, kind: 2, parent: `moby/1/${CHAIN}` },
      [`moby/5/${C2}-init-key`]: { id: 5, kind: 2, parent: `moby/1/${CHAIN}` },
      'moby/6/unnamed': { id: 6 },
      'moby/8/gone': { id: 8, parent: `moby/1/${CHAIN}` },
    },
  };
  const s = containerdRoot(b, spec);
  for (const id of [1, 2, 3, 4, 5, 6]) s.snapshotDir(id);
  s.snapshotDir(7, 20000); // F1/F3: a dir the snapshotter has no record of
  s.snapshotDir('new-123', 100);
  s.blob(manifest);
  s.blob(config);
  s.blob(layer);
  s.blob(loaded);
  s.blob(shared);
  const orphanBlob = s.blob('a blob no namespace records');
  s.blob('stray', '0123-not-a-digest'); // F9
  const liveIngest = s.ingestDir(`moby/1/${loadRef}`);
  const emptyRef = s.ingestDir('moby/1/lost', { refText: '' }); // F8
  const unknownRef = s.ingestDir('moby/1/nobody');
  s.containerDir(C1, { name: 'web' });
  s.containerDir(C3, { config: false });
  return { s, dLayer, dLoaded, dShared, orphanBlob, liveIngest, emptyRef, unknownRef };
}

describe('scan of a damaged containerd store', () => {
  it('reports every failure class with bytes, leases and affected images, only in moby namespaces', async () => {
    const { s, dLoaded, dShared, orphanBlob, liveIngest, emptyRef, unknownRef } = damagedStore();
    const r = await scanJson(s.dataRoot);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(1);
    const out = r.out!;
    expect(out.driver).toBe('overlayfs');
    expect(out.containerdRoot).toBe(s.root);
    const brief = out.findings.map((f) => [f.kind, f.paths.map((p: string) => path.relative(s.root, p)), f.reclaimable, f.affects, f.containerd ?? null]);
    const snap = (n: number | string) => `io.containerd.snapshotter.v1.overlayfs/snapshots/${n}`;
    const rel = (p: string) => path.relative(s.root, p);
    const bySorted = (l: unknown[]) => l.map((x) => JSON.stringify(x)).sort();
    expect(bySorted(brief)).toEqual(
      bySorted([
        ['containerd-orphan-snapshot', [snap(7)], true, { images: [], containers: [] }, null],
        ['containerd-orphan-snapshot', [snap('new-123')], true, { images: [], containers: [] }, null],
        ['containerd-orphan-blob', [rel(path.join(s.blobs, orphanBlob.slice(7)))], true, { images: [], containers: [] }, { digest: orphanBlob }],
        ['containerd-orphan-ingest', [rel(emptyRef)], true, { images: [], containers: [] }, null],
        ['containerd-orphan-ingest', [rel(unknownRef)], true, { images: [], containers: [] }, null],
        ['containerd-configless-container', [`../../containers/${C3}`], true, { images: [], containers: [] }, null],
        ['containerd-dead-lease', [rel(path.join(s.blobs, dLoaded.slice(7))), rel(liveIngest), snap(4)].sort(), false, { images: [], containers: [] }, { namespace: 'moby', lease: '113169686--U5d' }],
        ['containerd-orphan-lease', [snap(5)], false, { images: [], containers: [] }, { namespace: 'moby', lease: C2 }],
        ['containerd-orphan-record', [snap(6)], false, { images: [], containers: [] }, { snapshot: 'moby/6/unnamed' }],
        ['containerd-stray-blob-name', [rel(path.join(s.blobs, '0123-not-a-digest'))], true, { images: [], containers: [] }, null],
        ['containerd-missing-snapshot', [snap(8)], false, { images: ['app:2'], containers: [] }, { snapshot: 'moby/8/gone' }],
      ]),
    );
    // kind order, then path
    expect(out.findings.map((f) => f.kind)).toEqual([
      'containerd-orphan-snapshot',
      'containerd-orphan-snapshot',
      'containerd-orphan-blob',
      'containerd-orphan-ingest',
      'containerd-orphan-ingest',
      'containerd-configless-container',
      'containerd-stray-blob-name',
      'containerd-dead-lease',
      'containerd-orphan-lease',
      'containerd-orphan-record',
      'containerd-missing-snapshot',
    ]);
    // the shared blob stays: k8s.io's lease still holds it, so the dead moby lease does not free it
    expect(JSON.stringify(out.findings)).not.toContain(dShared.slice(7));
    // the orphan dir's bytes are its blocks (20000 B file + dirs)
    const orphan = out.findings[0];
    expect(orphan.bytes).toBeGreaterThanOrEqual(20000);
    expect(out.summary).toEqual({ findings: 11, reclaimableBytes: out.findings.filter((f) => f.reclaimable).reduce((n, f) => n + f.bytes, 0) });
  });
});

describe('a database that looks empty while the disk is full: errors, and nothing called garbage', () => {
  it('F12: metadata.db re-created empty while meta.db names snapshots and their dirs exist', async () => {
    const b = base();
    const s = containerdRoot(b, { namespaces: { moby: { snapshots: { [CHAIN]: { name: `moby/1/${CHAIN}` } } } }, backend: {} });
    s.snapshotDir(1);
    s.snapshotDir(2);
    const r = await scanJson(s.dataRoot);
    expect(r.code).toBe(1);
    expect(r.out!.findings.map((f) => [f.kind, f.severity, f.reclaimable, f.paths])).toEqual([
      ['containerd-db-mismatch', 'error', false, [path.join(s.root, 'io.containerd.snapshotter.v1.overlayfs/metadata.db')]],
    ]);
    expect(r.out!.findings[0].reason).toContain('has no record while meta.db names 1 snapshots and snapshots/ has 2 dirs');
  });

  it('F13: meta.db emptied while the snapshotter and blobs/ are full', async () => {
    const b = base();
    const s = containerdRoot(b, { namespaces: {}, backend: { [`moby/1/${CHAIN}`]: { id: 1 } } });
    s.snapshotDir(1);
    s.snapshotDir(2);
    s.blob('a live blob whose record went with meta.db');
    const r = await scanJson(s.dataRoot);
    expect(r.code).toBe(1);
    expect(r.out!.findings.map((f) => [f.kind, f.severity, f.reclaimable])).toEqual([
      ['containerd-db-mismatch', 'error', false],
      ['containerd-db-mismatch', 'error', false],
    ]);
    expect(r.out!.summary).toEqual({ findings: 2, reclaimableBytes: 0 });
  });
});

describe('refusals', () => {
  const refused = async (r: Awaited<ReturnType<typeof scanJson>>, code: number, text: string) => {
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(text);
    expect(r.code).toBe(code);
  };

  it.each([[2], [5]])('meta.db schema version %i: exit 4', async (version) => {
    const s = containerdRoot(base(), { version, namespaces: { moby: {} } });
    await refused(await scanJson(s.dataRoot), 4, `has schema version ${version}; layergc knows 3 and 4`);
  });

  it('meta.db without a version: exit 4', async () => {
    const s = containerdRoot(base(), { versionRaw: Buffer.alloc(0), namespaces: {} });
    await refused(await scanJson(s.dataRoot), 4, 'has schema version none');
  });

  it("a snapshotter other than overlayfs in moby's namespace: exit 4; in another namespace it is only read", async () => {
    const s = containerdRoot(base(), { namespaces: { moby: { snapshots: { a: { name: 'moby/1/a', snapshotter: 'native' } } } } });
    await refused(await scanJson(s.dataRoot), 4, 'namespace moby has snapshots of snapshotter native');
    const t = containerdRoot(base(), { namespaces: { 'k8s.io': { snapshots: { a: { name: 'k8s.io/1/a', snapshotter: 'native' } } } } });
    const r = await scanJson(t.dataRoot);
    expect([r.code, r.out?.findings]).toEqual([0, []]);
  });

  it('storage-driver btrfs with the containerd store: exit 4', async () => {
    const s = containerdRoot(base(), { namespaces: {} });
    const cfg = path.join(s.dataRoot, '..', 'daemon.json');
    fs.writeFileSync(cfg, JSON.stringify({ 'storage-driver': 'btrfs', features: { 'containerd-snapshotter': true } }));
    await refused(await scanJson(s.dataRoot, ['--daemon-config', cfg]), 4, 'storage-driver btrfs with the containerd image store');
  });

  it('the features flag with --containerd-root of a dir that is no containerd root: exit 4', async () => {
    const s = containerdRoot(base(), { namespaces: {} });
    const other = path.join(s.dataRoot, '..', 'not-containerd');
    fs.mkdirSync(other);
    await refused(await scanJson(s.dataRoot, ['--containerd-root', other]), 4, `${other} has no io.containerd.metadata.v1.bolt/meta.db`);
  });
});

describe('purge', () => {
  it('--dry-run plans exactly the record-less items and changes nothing; --yes removes exactly them; the rest stays reported', async () => {
    const { s } = damagedStore();
    const before = listTree(s.dataRoot);
    const dry = await runCliAsync(['purge', '--dry-run', '--data-root', s.dataRoot, '--json']);
    expect(dry.code).toBe(0);
    const planned = (dry.json.actions as { kind: string; paths: string[]; status: string }[]).map((a) => [a.kind, a.status, a.paths.map((p) => path.relative(s.dataRoot, p))]);
    const purgeable = (await scanJson(s.dataRoot)).out!.findings.filter((f) => f.reclaimable).map((f) => [f.kind, 'planned', f.paths.map((p: string) => path.relative(s.dataRoot, p))]);
    expect(planned.map((x) => JSON.stringify(x)).sort()).toEqual(purgeable.map((x) => JSON.stringify(x)).sort());
    expect(planned.map((p) => p[0]).sort()).toEqual([
      'containerd-configless-container',
      'containerd-orphan-blob',
      'containerd-orphan-ingest',
      'containerd-orphan-ingest',
      'containerd-orphan-snapshot',
      'containerd-orphan-snapshot',
      'containerd-stray-blob-name',
    ]);
    expect(listTree(s.dataRoot)).toEqual(before);

    const r = await runCliAsync(['purge', '--yes', '--data-root', s.dataRoot, '--json']);
    expect(r.code).toBe(0);
    expect(r.json.summary).toMatchObject({ removed: 7, failed: 0, skipped: 0 });
    const gone = planned.flatMap((p) => p[2] as string[]);
    const after = listTree(s.dataRoot);
    // exactly the planned paths (and what was below them) went, plus layergc's own journal appeared
    expect(before.filter((p) => !after.includes(p))).toEqual(before.filter((p) => gone.some((g) => p === g || p.startsWith(`${g}/`))));
    expect(after.filter((p) => !before.includes(p)).every((p) => p.startsWith('layergc'))).toBe(true);
    const rescan = await scanJson(s.dataRoot);
    expect(rescan.out!.findings.map((f) => f.kind)).toEqual(['containerd-dead-lease', 'containerd-orphan-lease', 'containerd-orphan-record', 'containerd-missing-snapshot']);
  });

  it('SIGTERM during purge --yes: the item under way is finished, no other begun, exit 143; the next purge removes the rest', async () => {
    const { s } = damagedStore();
    const { signalledAt } = await import('../helpers/signal.js');
    const { code, stdout } = await signalledAt(['purge', '--yes', '--json', '--data-root', s.dataRoot], 'after-intent', 'SIGTERM', base());
    expect(code).toBe(143);
    const json = JSON.parse(stdout);
    expect(json.interrupted).toBe('SIGTERM');
    expect(json.summary).toMatchObject({ removed: 1, failed: 0, skipped: 6 });
    expect(json.containerdLeases).toBeUndefined(); // an interrupted purge never goes on to rewrite meta.db
    const next = await runCliAsync(['purge', '--yes', '--data-root', s.dataRoot, '--json']);
    expect(next.json.summary).toMatchObject({ removed: 6, failed: 0, skipped: 0 });
  });

  it('refuses (exit 3) while something holds the store: a flock on meta.db', async () => {
    const { s } = damagedStore();
    const { spawn } = await import('node:child_process');
    const holder = spawn('flock', [path.join(s.root, 'io.containerd.metadata.v1.bolt', 'meta.db'), 'sleep', '30'], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 100 && !fs.readFileSync('/proc/locks', 'utf8').includes(` ${holder.pid} `); i++) await new Promise((res) => setTimeout(res, 20));
      const before = listTree(s.dataRoot);
      const r = await runCliAsync(['purge', '--yes', '--data-root', s.dataRoot]);
      expect(r.code).toBe(3);
      expect(r.stderr).toContain(`a lock on ${path.join(s.root, 'io.containerd.metadata.v1.bolt', 'meta.db')}`);
      expect(listTree(s.dataRoot)).toEqual(before);
    } finally {
      holder.kill();
    }
  });
});

describe('immutable files, verify and explain', () => {
  it('an orphan dir with an immutable file names it and the chattr command', async () => {
    const s = containerdRoot(base(), { namespaces: { moby: {} } });
    const d = s.snapshotDir(31); // after `docker rmi` of every image, F2's dir is the only one left
    const locked = path.join(d, 'fs', 'data');
    const { spawnSync } = await import('node:child_process');
    const set = spawnSync('chattr', ['+i', locked]);
    try {
      if (set.status !== 0) return expect.soft(set.status, 'chattr +i not supported here').toBe(0);
      const r = await scanJson(s.dataRoot);
      expect(r.out!.findings).toHaveLength(1);
      expect(r.out!.findings[0].reason).toContain(`1 file with an attribute, ${locked} (immutable); clear with: chattr -i '${locked}'`);
    } finally {
      spawnSync('chattr', ['-i', locked]);
    }
  });

  it('verify: a truncated blob and a record whose size disagrees, with the images they break (exit 1)', async () => {
    const { s, dLayer } = damagedStore();
    const m = s.blob('a manifest of img:9');
    const bad = path.join(s.blobs, m.slice(7));
    fs.writeFileSync(bad, 'a manif'); // truncated (F10)
    const r = await runCliAsync(['verify', '--data-root', s.dataRoot, '--json']);
    expect(r.code).toBe(1);
    const j = r.json as { findings: Record<string, any>[]; summary: Record<string, number> };
    const byDigest = (l: unknown[][]) => [...l].sort((a, b) => String(a[1]).localeCompare(String(b[1])));
    // the container's rootfs is its snapshot, not the blob: only the images that list the blob are affected
    expect(byDigest(j.findings.map((f) => [f.kind, f.containerd.digest, f.affects]))).toEqual(
      byDigest([
        ['containerd-blob-mismatch', dLayer, { images: ['app:1', 'app:2'], containers: [] }],
        ['containerd-blob-mismatch', m, { images: [], containers: [] }],
      ]),
    );
    expect(j.findings.find((f) => f.containerd.digest === dLayer)!.reason).toContain(
      `it is ${'layer bytes of app:1'.length} bytes but its record in namespace moby says ${'layer bytes of app:1'.length + 1}`,
    );
    expect(j.findings.find((f) => f.containerd.digest === m)!.reason).toContain('its content hashes to sha256:');
    expect(j.summary.layersVerified).toBe(7);
    expect(j.summary.layersOk).toBe(5);
  });

  it('explain: a held snapshot dir (live, exit 0), a dead lease and an orphan dir (garbage, exit 1)', async () => {
    const { s } = damagedStore();
    const snap1 = path.join(s.snapshots, '1');
    const live = await runCliAsync(['explain', '--data-root', s.dataRoot, snap1]);
    expect(live.code).toBe(0);
    expect(live.stdout).toContain('held by image app:1 (namespace moby)');
    expect(live.stdout.replace(/\n {4}/g, ' ')).toContain(`held by lease moby/${C1} of container web`); // wrapped at 80 columns
    const lease = await runCliAsync(['explain', '--data-root', s.dataRoot, '113169686--U5d', '--json']);
    expect(lease.code).toBe(1);
    expect([lease.json.type, lease.json.status, lease.json.findings.map((f: { kind: string }) => f.kind)]).toEqual(['lease', 'garbage', ['containerd-dead-lease']]);
    const orphan = await runCliAsync(['explain', '--data-root', s.dataRoot, path.join(s.snapshots, '7')]);
    expect(orphan.code).toBe(1);
    expect(orphan.stdout).toContain('the overlayfs snapshotter has no record with id 7');
  });
});

describe("explain of BuildKit's -view snapshots", () => {
  it("names a view as BuildKit's read-only view of its cache ref, who holds the ref, and that containerd's GC removes a released one (garbage, exit 1); a view under a dead temporary lease is that lease's", async () => {
    const [ref, ref2] = ['82qo3r953azx6bmoqmgrx6scg', 'ovg1qdf1xu7zkj5v8vn1sbca6'];
    const flat = { 'containerd.io/gc.flat': '2026-11-30T12:27:15Z' };
    const s = containerdRoot(base(), {
      namespaces: {
        moby: {
          snapshots: {
            [ref]: { name: `moby/1/${ref}` },
            [`${ref}-view`]: { name: `moby/2/${ref}-view`, parent: ref },
            [ref2]: { name: `moby/3/${ref2}` },
            [`${ref2}-view`]: { name: `moby/4/${ref2}-view`, parent: ref2 },
          },
          leases: {
            [ref]: { labels: flat, snapshots: [ref] },
            [ref2]: { labels: flat, snapshots: [ref2] },
            [`${ref2}-view`]: { labels: { ...flat, 'buildkit/lease.temporary': '2026-11-30T12:27:15Z' }, snapshots: [`${ref2}-view`] },
          },
        },
      },
      backend: {
        [`moby/1/${ref}`]: { id: 1 },
        [`moby/2/${ref}-view`]: { id: 2, kind: 1, parent: `moby/1/${ref}` },
        [`moby/3/${ref2}`]: { id: 3 },
        [`moby/4/${ref2}-view`]: { id: 4, kind: 1, parent: `moby/3/${ref2}` },
      },
    });
    for (const id of [1, 2, 3, 4]) s.snapshotDir(id);
    for (const target of [path.join(s.snapshots, '2'), `${ref}-view`]) {
      const e = await runCliAsync(['explain', '--data-root', s.dataRoot, target, '--json']);
      expect([e.code, e.json.type, e.json.status, e.json.findings]).toEqual([1, 'snapshot', 'garbage', []]);
      expect(e.json.because).toEqual([
        `it is snapshot "moby/2/${ref}-view" (id 2) of the overlayfs snapshotter`,
        `it is BuildKit's read-only view of its cache snapshot ${ref}, made while a build reads it, under a temporary lease moby/${ref}-view`,
        `its parent ${ref} is held by lease moby/${ref}`,
        "nothing holds it: BuildKit released the view (its temporary lease is gone); containerd's next GC removes it, which layergc leaves to containerd",
      ]);
    }
    const held = await runCliAsync(['explain', '--data-root', s.dataRoot, path.join(s.snapshots, '4'), '--json']);
    expect([held.code, held.json.status, held.json.findings.map((f: { kind: string }) => f.kind)]).toEqual([1, 'garbage', ['containerd-dead-lease']]);
    expect(held.json.because).toContain(`held by lease moby/${ref2}-view (a BuildKit temporary lease (BuildKit drops these at its start; this one outlived its build))`);
    expect(held.json.because.find((b: string) => b.startsWith('its parent'))).toMatch(new RegExp(`^its parent ${ref2} is held by lease moby/${ref2}, lease moby/${ref2}-view `));
    const parent = await runCliAsync(['explain', '--data-root', s.dataRoot, path.join(s.snapshots, '1')]);
    expect([parent.code, parent.stdout.includes(`held by lease moby/${ref}`)]).toEqual([0, true]);
    // the scan leaves the released view to containerd: only the dead temporary lease is reported
    expect((await scanJson(s.dataRoot)).out!.findings.map((f) => f.kind)).toEqual(['containerd-dead-lease']);
  });
});

describe('the bundled sample (fixtures/sample-containerd-root.tar.gz, made by a real dockerd 28.5)', () => {
  it('scans to exactly its five leftovers; purge --dry-run plans the four removable ones', async () => {
    const b = base();
    const { execFileSync } = await import('node:child_process');
    execFileSync('tar', ['-xzf', path.join(__dirname, '../../fixtures/sample-containerd-root.tar.gz'), '-C', b]);
    const r = await scanJson(b);
    expect(r.code).toBe(1);
    expect(r.out!.findings.map((f) => f.kind)).toEqual([
      'containerd-orphan-snapshot',
      'containerd-orphan-ingest',
      'containerd-configless-container',
      'containerd-stray-blob-name',
      'containerd-dead-lease',
    ]);
    expect(r.out!.findings[4].reason).toContain('an expiring client lease (docker load, import, push)');
    const dry = await runCliAsync(['purge', '--dry-run', '--data-root', b, '--json']);
    expect([dry.code, dry.json.summary.planned, dry.json.containerdLeases.status]).toEqual([0, 4, 'planned']);
  });
});

// ---- the offline meta.db rewrite that drops dead and orphan leases, and its restore ----------------

describe('stray names in blobs/ (F9)', () => {
  it('purge removes a stray file and a stray dir at either level and an orphan blob beside them, never a symlink (that one is unsafe-path)', async () => {
    // meta.db with moby's (empty) namespace: one with no namespace at all while blobs/ holds a blob is a
    // lost meta.db re-created empty (containerd-db-mismatch), which trusts no blob as garbage; that, not
    // the symlink, is why an orphan blob in a namespace-less fixture is not reported
    const s = containerdRoot(base(), { namespaces: { moby: {} } });
    const orphan = path.join(s.blobs, s.blob('a blob no namespace records').slice(7));
    const strayFile = path.join(s.blobs, '0123-not-a-digest');
    fs.writeFileSync(strayFile, 'stray');
    const strayDir = path.join(s.blobs, '..', 'tmp-dir');
    fs.mkdirSync(path.join(strayDir, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(strayDir, 'sub', 'f'), 'x');
    const shortHex = path.join(s.blobs, 'abc');
    fs.writeFileSync(shortHex, 'short');
    const link = path.join(s.blobs, hex64('link'));
    fs.symlinkSync('/etc/passwd', link);
    const r = await scanJson(s.dataRoot);
    const stray = r.out!.findings.filter((f) => f.kind === 'containerd-stray-blob-name');
    expect(stray.map((f) => [f.paths[0], f.reclaimable]).sort()).toEqual(
      [
        [strayFile, true],
        [shortHex, true],
        [path.resolve(strayDir), true],
      ].sort(),
    );
    expect(r.out!.findings.filter((f) => f.kind === 'unsafe-path').map((f) => f.paths)).toEqual([[link]]);
    expect(r.out!.findings.filter((f) => f.kind === 'containerd-orphan-blob').map((f) => [f.paths, f.reclaimable])).toEqual([[[orphan], true]]);
    const p = await runCliAsync(['purge', '--yes', '--data-root', s.dataRoot, '--json']);
    expect(p.code).toBe(0);
    for (const x of [strayFile, shortHex, strayDir, orphan]) expect(fs.existsSync(x)).toBe(false);
    expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
    expect(fs.readFileSync('/etc/passwd').length).toBeGreaterThan(0);
  });
});

describe('purge drops dead and orphan leases by rewriting meta.db; restore puts the old one back', () => {
  /** A healthy store (no error finding) with a dead load lease, an orphan container lease, a live container lease and another client's leases. */
  function leasedStore(dir?: string) {
    const b = dir ? path.join(base(), dir) : base();
    const layer = 'layer bytes';
    const loaded = 'a blob only the dead load lease holds';
    const dLayer = digestOf(layer);
    const dLoaded = digestOf(loaded);
    const loadRef = `tar-blobs/sha256/${hex64('load')}`;
    const spec: ContainerdSpec = {
      namespaces: {
        moby: {
          images: { 'docker.io/library/app:1': { target: dLayer } },
          blobs: { [dLayer]: { size: layer.length }, [dLoaded]: { size: loaded.length } },
          snapshots: { [CHAIN]: { name: `moby/1/${CHAIN}` }, [C1]: { name: `moby/2/${C1}`, parent: CHAIN }, [`${C2}-init-key`]: { name: `moby/3/${C2}-init-key`, parent: CHAIN } },
          ingests: { [loadRef]: { ref: `moby/1/${loadRef}` } },
          leases: {
            [C1]: { snapshots: [C1] },
            [C2]: { snapshots: [`${C2}-init-key`] },
            '113169686--U5d': { labels: { 'containerd.io/gc.expire': '2030-01-01T00:00:00Z' }, content: [dLoaded], ingests: [loadRef] },
          },
        },
        'k8s.io': { leases: { '999-zzzz': { labels: { 'containerd.io/gc.expire': '2020-01-01T00:00:00Z' } }, keep: {} } },
      },
      backend: { [`moby/1/${CHAIN}`]: { id: 1 }, [`moby/2/${C1}`]: { id: 2, kind: 2, parent: `moby/1/${CHAIN}` }, [`moby/3/${C2}-init-key`]: { id: 3, kind: 2, parent: `moby/1/${CHAIN}` } },
    };
    const s = containerdRoot(b, spec);
    for (const id of [1, 2, 3]) s.snapshotDir(id);
    s.blob(layer);
    s.blob(loaded);
    s.ingestDir(`moby/1/${loadRef}`);
    s.containerDir(C1, { name: 'web' });
    return { s, metaDb: path.join(s.root, 'io.containerd.metadata.v1.bolt', 'meta.db') };
  }
  const treeOf = async (p: string) => {
    const { withDb, readTree } = await import('../../src/store/bbolt.js');
    return withDb(p, readTree);
  };
  const sha = (p: string) => createHash('sha256').update(fs.readFileSync(p)).digest('hex');

  it('--dry-run plans it and changes nothing; --yes writes meta.db again without exactly those leases, keeps the old one, and a rescan finds none', async () => {
    const { s, metaDb } = leasedStore();
    const before = listTree(s.dataRoot);
    const oldBytes = fs.readFileSync(metaDb);
    const scan = (await scanJson(s.dataRoot)).out!.findings;
    const leaseBytes = scan.filter((f) => f.kind.endsWith('-lease')).reduce((n, f) => n + f.bytes, 0);
    expect(
      scan
        .filter((f) => f.kind.endsWith('-lease'))
        .map((f) => f.containerd.lease)
        .sort(),
    ).toEqual(['113169686--U5d', C2]);

    const dry = await runCliAsync(['purge', '--dry-run', '--data-root', s.dataRoot, '--json']);
    expect(dry.code).toBe(0);
    expect(dry.json.containerdLeases).toMatchObject({ status: 'planned', metaDb, bytesAtNextStart: leaseBytes });
    expect(dry.json.containerdLeases.leases.map((l: { namespace: string; id: string; kind: string }) => [l.namespace, l.id, l.kind])).toEqual([
      ['moby', '113169686--U5d', 'containerd-dead-lease'],
      ['moby', C2, 'containerd-orphan-lease'],
    ]);
    expect(listTree(s.dataRoot)).toEqual(before);
    expect(fs.readFileSync(metaDb).equals(oldBytes)).toBe(true);

    const r = await runCliAsync(['purge', '--yes', '--data-root', s.dataRoot, '--json']);
    expect([r.code, r.stderr]).toEqual([0, '']);
    const cl = r.json.containerdLeases;
    expect(cl).toMatchObject({ status: 'rewritten', metaDb, bytesAtNextStart: leaseBytes });
    expect(cl.backup).toMatch(/\/io\.containerd\.metadata\.v1\.bolt\/meta\.db\.layergc-[0-9a-f]{12}$/);
    expect(cl.restore).toBe(`layergc restore '${cl.backup}'`);
    // the backup is the old file, byte for byte; its record names both hashes
    expect(fs.readFileSync(cl.backup).equals(oldBytes)).toBe(true);
    const rec = JSON.parse(fs.readFileSync(`${cl.backup}.json`, 'utf8'));
    expect([rec.previousSha256, rec.writtenSha256, rec.removedLeases]).toEqual([sha(cl.backup), sha(metaDb), [`moby/113169686--U5d`, `moby/${C2}`]]);
    expect(fs.statSync(metaDb).mode & 0o777).toBe(fs.statSync(cl.backup).mode & 0o777);
    // key by key: everything but the two lease buckets is identical, sequences included
    const { diffTrees, leaseKeys } = await import('../../src/store/containerd/rewrite.js');
    const [a, bb] = [await treeOf(cl.backup), await treeOf(metaDb)];
    expect(leaseKeys(a)).toEqual(['k8s.io/999-zzzz', 'k8s.io/keep', `moby/${C1}`, 'moby/113169686--U5d', `moby/${C2}`].sort());
    expect(leaseKeys(bb)).toEqual(['k8s.io/999-zzzz', 'k8s.io/keep', `moby/${C1}`].sort());
    const dropped = (p: Buffer[], k: Buffer) => p.length === 3 && p[2].toString() === 'leases' && p[1].toString() === 'moby' && ['113169686--U5d', C2].includes(k.toString());
    expect(diffTrees(a, bb, dropped)).toEqual([]);
    expect(diffTrees(a, bb, () => false).length).toBeGreaterThan(0);
    // the files purge removes as files are untouched by the rewrite; nothing else in the tree changed
    const after = listTree(s.dataRoot);
    expect(
      after
        .filter((p) => !before.includes(p))
        .filter((p) => !p.startsWith('layergc'))
        .sort(),
    ).toEqual([path.relative(s.dataRoot, cl.backup), path.relative(s.dataRoot, `${cl.backup}.json`)].sort());
    expect(before.filter((p) => !after.includes(p))).toEqual([]);
    // a rescan: no lease left to drop; what they held is for containerd's GC at its next start
    const again = (await scanJson(s.dataRoot)).out!.findings;
    expect(again.filter((f) => f.kind.endsWith('-lease'))).toEqual([]);
    const human = await runCliAsync(['purge', '--yes', '--data-root', s.dataRoot]);
    expect(human.stdout).not.toContain('meta.db');
  });

  it('the human hints are the exact commands, shell-quoted: purge with the flags that located the store (--data-root, --containerd-root), restore of the backup on one unwrapped line', async () => {
    const { s } = leasedStore("a root's dir");
    const q = (p: string) => `'${p.replace(/'/g, `'\\''`)}'`;
    const flags = `--data-root ${q(s.dataRoot)} --containerd-root ${q(s.root)}`;
    const scan = await runCliAsync(['scan', '--data-root', s.dataRoot, '--containerd-root', s.root]);
    expect(scan.stdout).toContain(`See what a purge would do:\n  layergc purge --dry-run ${flags}\n`);
    const dry = await runCliAsync(['purge', '--dry-run', '--data-root', s.dataRoot, '--containerd-root', s.root]);
    expect(dry.stdout).toContain(`Nothing to remove.\nNothing was changed. To drop the leases: layergc purge --yes ${flags}`);
    s.snapshotDir(77); // and with a file to remove too
    expect((await runCliAsync(['purge', '--dry-run', '--data-root', s.dataRoot, '--containerd-root', s.root])).stdout).toContain(`To remove: layergc purge --yes ${flags}\n`);
    const r = await runCliAsync(['purge', '--yes', '--data-root', s.dataRoot, '--containerd-root', s.root]);
    expect(r.code).toBe(0);
    const backup = fs.readdirSync(path.dirname(path.join(s.root, 'io.containerd.metadata.v1.bolt', 'meta.db'))).find((n) => /^meta\.db\.layergc-[0-9a-f]{12}$/.test(n))!;
    const full = path.join(s.root, 'io.containerd.metadata.v1.bolt', backup);
    expect(r.stdout.split('\n')).toContain(`  Put it back (before containerd starts): layergc restore ${q(full)}`);
    expect(r.stdout).not.toContain('\\x0a');
    // the command as printed, run by a shell, puts the old file back
    const line = r.stdout.split('\n').find((l) => l.includes('layergc restore'))!;
    const cmd = line.slice(line.indexOf('layergc restore')).replace(/^layergc/, `node ${q(path.resolve('bin/layergc.js'))}`);
    const back = execFileSync('sh', ['-c', `${cmd} --json`], { encoding: 'utf8' });
    expect(JSON.parse(back).items[0].status).toBe('restored');
  });

  it('restore --dry-run changes nothing; restore puts the old file back (an edit in restore --json); a second one says it is back already', async () => {
    const { s, metaDb } = leasedStore();
    const oldBytes = fs.readFileSync(metaDb);
    const r = await runCliAsync(['purge', '--yes', '--data-root', s.dataRoot, '--json']);
    const backup = r.json.containerdLeases.backup as string;
    const written = fs.readFileSync(metaDb);
    const dry = await runCliAsync(['restore', backup, '--dry-run', '--json']);
    expect(dry.code).toBe(0);
    expect(dry.json).toMatchObject({ dataRoot: s.dataRoot, quarantine: backup, dryRun: true, items: [{ op: 'edit', path: metaDb, from: backup, status: 'planned' }] });
    expect(fs.readFileSync(metaDb).equals(written)).toBe(true);
    const back = await runCliAsync(['restore', backup, '--json']);
    expect([back.code, back.json.items[0].status, back.json.summary]).toEqual([0, 'restored', { restored: 1, planned: 0, already: 0 }]);
    expect(fs.readFileSync(metaDb).equals(oldBytes)).toBe(true);
    expect(fs.existsSync(backup)).toBe(false);
    const twice = await runCliAsync(['restore', backup]);
    expect([twice.code, twice.stdout]).toEqual([0, expect.stringContaining(`already back  ${metaDb}`)]);
    // a purge killed between keeping the backup and its rename left the old meta.db in place: back already
    fs.linkSync(metaDb, backup);
    const kept = await runCliAsync(['restore', backup, '--json']);
    expect([kept.code, kept.json.items[0].status]).toEqual([0, 'already']);
    fs.unlinkSync(backup);
    // and the leases are there to drop again
    expect((await scanJson(s.dataRoot)).out!.findings.filter((f) => f.kind.endsWith('-lease'))).toHaveLength(2);
  });

  it('restore refuses once meta.db changed since the rewrite (containerd used it), a backup that changed, and a file that is no backup', async () => {
    const { s, metaDb } = leasedStore();
    const r = await runCliAsync(['purge', '--yes', '--data-root', s.dataRoot, '--json']);
    const backup = r.json.containerdLeases.backup as string;
    const written = fs.readFileSync(metaDb);
    const used = Buffer.from(written);
    used.writeBigUInt64LE(used.readBigUInt64LE(16 + 48) + 2n, 16 + 48); // what a later transaction changes
    fs.writeFileSync(metaDb, used);
    const refused = await runCliAsync(['restore', backup]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('changed since layergc wrote it (containerd has used it)');
    expect(fs.existsSync(backup)).toBe(true);
    fs.writeFileSync(metaDb, written);
    fs.appendFileSync(backup, 'x');
    const tampered = await runCliAsync(['restore', backup]);
    expect([tampered.code, tampered.stderr]).toEqual([2, expect.stringContaining('the backup changed since layergc kept it')]);
    const other = path.join(path.dirname(metaDb), 'meta.db.layergc-zzzz');
    fs.writeFileSync(other, 'x');
    const notOurs = await runCliAsync(['restore', other]);
    expect(notOurs.code).toBe(2);
    expect(fs.readFileSync(metaDb).equals(written)).toBe(true);
  });

  it('restore and the rewrite refuse (exit 3) while something holds meta.db', async () => {
    const { s, metaDb } = leasedStore();
    const { spawn } = await import('node:child_process');
    const holder = spawn('flock', [metaDb, 'sleep', '30'], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 100 && !fs.readFileSync('/proc/locks', 'utf8').includes(` ${holder.pid} `); i++) await new Promise((res) => setTimeout(res, 20));
      const before = fs.readFileSync(metaDb);
      const r = await runCliAsync(['purge', '--yes', '--data-root', s.dataRoot]);
      expect(r.code).toBe(3);
      expect(fs.readFileSync(metaDb).equals(before)).toBe(true);
    } finally {
      holder.kill();
    }
  });

  it('a containerd that starts while meta.db is swapped (it opened the file and waits for the lock): the swap is undone, exit 3; the waiter then locks the file that is meta.db, purge and restore alike', async () => {
    const { spawn } = await import('node:child_process');
    const { pausedCli } = await import('../helpers/signal.js');
    /** a stand-in for containerd: opens meta.db, waits for bbolt's lock (flock LOCK_EX) on that fd, then hashes the file it got */
    const starter = (metaDb: string) => {
      const p = spawn('sh', ['-c', 'exec 9<"$1"; flock --exclusive 9; sha256sum <&9', 'sh', metaDb], { stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      const done = new Promise<string>((res) => p.on('close', () => res(out.split(' ')[0])));
      return { pid: p.pid!, done };
    };
    const waiting = async (pid: number, metaDb: string) => {
      const ino = fs.statSync(metaDb).ino;
      for (let i = 0; i < 200; i++) {
        if (fs.readdirSync(`/proc/${pid}/fd`).some((fd) => fs.statSync(`/proc/${pid}/fd/${fd}`, { throwIfNoEntry: false })?.ino === ino)) return;
        await new Promise((res) => setTimeout(res, 10));
      }
      throw new Error('the stand-in never opened meta.db');
    };
    const { s, metaDb } = leasedStore();
    const original = fs.readFileSync(metaDb);
    const pause = fs.mkdtempSync(path.join(base(), 'pause-'));
    const run = pausedCli(['purge', '--yes', '--data-root', s.dataRoot], 'atomic-after-rename-checked', pause);
    await run.paused;
    // meta.db is the new file now; the stand-in opened the old one before: simulate it by opening the backup's inode
    const backup = fs.readdirSync(path.dirname(metaDb)).find((n) => /^meta\.db\.layergc-[0-9a-f]+$/.test(n))!;
    const st = starter(path.join(path.dirname(metaDb), backup));
    await waiting(st.pid, path.join(path.dirname(metaDb), backup));
    run.resume();
    const r = await run.done;
    expect([r.code, r.stderr]).toEqual([3, expect.stringContaining('while layergc replaced it (a containerd starting?); the rewrite was undone: meta.db is the old file again')]);
    expect(fs.readFileSync(metaDb).equals(original)).toBe(true);
    expect(await st.done).toBe(createHash('sha256').update(original).digest('hex'));

    // restore: the same, the other way round
    const p = await runCliAsync(['purge', '--yes', '--data-root', s.dataRoot, '--json']);
    expect(p.code).toBe(0);
    const written = fs.readFileSync(metaDb);
    const pause2 = fs.mkdtempSync(path.join(base(), 'pause-'));
    const back = pausedCli(['restore', p.json.containerdLeases.backup], 'atomic-after-rename-checked', pause2);
    await back.paused;
    const kept = fs.readdirSync(path.dirname(metaDb)).find((n) => n.includes('layergc-replaced-'))!;
    const st2 = starter(path.join(path.dirname(metaDb), kept)); // the file that was meta.db when it opened it
    await waiting(st2.pid, path.join(path.dirname(metaDb), kept));
    back.resume();
    const b = await back.done;
    expect([b.code, b.stderr]).toEqual([3, expect.stringContaining('the restore was undone: meta.db is the file layergc wrote again, the backup is kept')]);
    expect(fs.readFileSync(metaDb).equals(written)).toBe(true);
    expect(fs.readFileSync(p.json.containerdLeases.backup).equals(original)).toBe(true);
    expect(await st2.done).toBe(createHash('sha256').update(written).digest('hex'));
    expect(fs.readdirSync(path.dirname(metaDb)).filter((n) => n.startsWith('.tmp-'))).toEqual([]);
    // nothing waiting: the restore goes through
    const ok = await runCliAsync(['restore', p.json.containerdLeases.backup, '--json']);
    expect([ok.code, ok.json.items[0].status]).toEqual([0, 'restored']);
    expect(fs.readFileSync(metaDb).equals(original)).toBe(true);
  });

  it('is skipped while the store has an error finding (its GC would act on a store that is not whole): meta.db unchanged', async () => {
    const { s } = damagedStore(); // has a containerd-missing-snapshot
    const metaDb = path.join(s.root, 'io.containerd.metadata.v1.bolt', 'meta.db');
    const before = fs.readFileSync(metaDb);
    const r = await runCliAsync(['purge', '--yes', '--data-root', s.dataRoot, '--json']);
    expect(r.code).toBe(0);
    expect(r.json.containerdLeases).toMatchObject({ status: 'skipped', reason: expect.stringContaining('containerd-missing-snapshot') });
    expect(fs.readFileSync(metaDb).equals(before)).toBe(true);
    expect(fs.readdirSync(path.dirname(metaDb))).toEqual(['meta.db']);
  });

  it('an already expired dead lease still lists what only it holds (no root of the mark any more, still its to free)', async () => {
    const s = containerdRoot(base(), {
      namespaces: {
        moby: {
          snapshots: { bkview: { name: 'moby/1/bkview' } },
          leases: { '555-abcd': { labels: { 'containerd.io/gc.expire': '2020-01-01T00:00:00Z', 'containerd.io/gc.flat': '' }, snapshots: ['bkview'] } },
        },
      },
      backend: { 'moby/1/bkview': { id: 1, kind: 1 } },
    });
    const dir = s.snapshotDir(1);
    const f = (await scanJson(s.dataRoot)).out!.findings;
    expect(f.map((x) => [x.kind, x.paths, x.containerd.lease])).toEqual([['containerd-dead-lease', [dir], '555-abcd']]);
    expect(f[0].reason).toContain('already expired');
    const e = await runCliAsync(['explain', '--data-root', s.dataRoot, dir, '--json']);
    expect([e.code, e.json.status]).toEqual([1, 'garbage']);
  });

  it("never touches a lease of another client's namespace; diffTrees names a changed value, sequence or key", async () => {
    const { s, metaDb } = leasedStore();
    const { removeLeases, diffTrees } = await import('../../src/store/containerd/rewrite.js');
    const { locateContainerd } = await import('../../src/store/containerd/locate.js');
    const loc = await locateContainerd({ dataRoot: s.dataRoot });
    const k8s = { namespace: 'k8s.io', id: 'keep', labels: new Map(), snapshots: [], content: [], ingests: [], images: [] };
    await expect(removeLeases(loc, [k8s], { run: 'abcdef', dryRun: false, stillStopped: () => undefined })).rejects.toThrow(/never changes another client's namespace/);
    const t = await treeOf(metaDb);
    const v = (x: string) => ({ sequence: 0n, entries: [{ key: Buffer.from('k'), value: Buffer.from(x) }] });
    expect(diffTrees(v('a'), v('b'), () => false)).toEqual(['"k": value differs']);
    expect(diffTrees({ ...v('a'), sequence: 1n }, v('a'), () => false)).toEqual(['(root): sequence 1 became 0']);
    expect(diffTrees(t, { ...t, entries: [] }, () => false)[0]).toMatch(/entries expected, 0 found/);
  });
});

// ---- verify of unpacked layers: each snapshot against its blob's tar and the config's diff ID --------

describe('verify of unpacked layers (overlayfs)', () => {
  /** An image of two layers (the first an uncompressed tar, the second gzip with a whiteout), unpacked into snapshots 1 and 2. */
  function imageStore(opts: { wrongDiffId?: boolean; zstd?: boolean; opaque?: boolean } = {}) {
    const b = base();
    const stage = (name: string, files: Record<string, string | { link: string } | { hard: string } | null>) => {
      const d = path.join(b, name);
      for (const [p, v] of Object.entries(files)) {
        const f = path.join(d, p);
        fs.mkdirSync(path.dirname(f), { recursive: true });
        if (v === null) fs.mkdirSync(f, { recursive: true });
        else if (typeof v === 'string') fs.writeFileSync(f, v);
        else if ('link' in v) fs.symlinkSync(v.link, f);
        else fs.linkSync(path.join(d, v.hard), f);
      }
      const tar = execFileSync('tar', ['--sort=name', '--format=posix', '--pax-option=delete=atime,delete=ctime', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '-C', d, '-cf', '-', '.']);
      return { dir: d, tar };
    };
    const l1 = stage('l1', {
      'etc/passwd': 'root:x:0:0::/root:/bin/sh\n',
      'bin/tool': 'x'.repeat(3000),
      'bin/alias': { link: 'tool' },
      'bin/hard': { hard: 'bin/tool' },
      tmp: null,
      'old.txt': 'to be deleted',
    });
    const l2 = stage('l2', { 'app/data.bin': 'y'.repeat(70000), '.wh.old.txt': '', ...(opts.opaque ? { 'tmp/.wh..wh..opq': '', 'tmp/new': 'n' } : {}) });
    const blob1 = l1.tar;
    const blob2 = opts.zstd ? execFileSync('zstd', ['-c', '-q'], { input: l2.tar }) : gzipSync(l2.tar);
    const diffIds = [digestOf(l1.tar), opts.wrongDiffId ? digestOf('not this layer') : digestOf(l2.tar)];
    const chains = chainIds(diffIds);
    const config = JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: diffIds } });
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { digest: digestOf(config), size: config.length },
      layers: [
        { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: digestOf(blob1), size: blob1.length },
        { mediaType: `application/vnd.oci.image.layer.v1.tar+${opts.zstd ? 'zstd' : 'gzip'}`, digest: digestOf(blob2), size: blob2.length },
      ],
    });
    const s = containerdRoot(b, {
      namespaces: {
        moby: {
          images: { 'docker.io/library/img:1': { target: digestOf(manifest) } },
          blobs: {
            ...Object.fromEntries([blob1, blob2].map((x) => [digestOf(x), { size: x.length }])),
            [digestOf(manifest)]: {
              size: manifest.length,
              labels: { 'containerd.io/gc.ref.content.config': digestOf(config), 'containerd.io/gc.ref.content.l.0': digestOf(blob1), 'containerd.io/gc.ref.content.l.1': digestOf(blob2) },
            },
            [digestOf(config)]: { size: config.length, labels: { 'containerd.io/gc.ref.snapshot.overlayfs': chains[1] } },
          },
          snapshots: { [chains[0]]: { name: `moby/1/${chains[0]}` }, [chains[1]]: { name: `moby/2/${chains[1]}`, parent: chains[0] } },
        },
      },
      backend: { [`moby/1/${chains[0]}`]: { id: 1 }, [`moby/2/${chains[1]}`]: { id: 2, parent: `moby/1/${chains[0]}` } },
    });
    for (const x of [manifest, config, blob1, blob2]) s.blob(x);
    // unpack as containerd's overlay apply does: the files, and a whiteout as a 0/0 character device
    const fs1 = path.join(s.snapshots, '1', 'fs');
    const fs2 = path.join(s.snapshots, '2', 'fs');
    for (const d of [fs1, fs2]) fs.mkdirSync(d, { recursive: true });
    execFileSync('tar', ['-xf', '-', '-C', fs1], { input: l1.tar });
    execFileSync('tar', ['-xf', '-', '-C', fs2, '--exclude=./.wh.old.txt', '--exclude=./tmp/.wh..wh..opq'], { input: l2.tar });
    execFileSync('mknod', [path.join(fs2, 'old.txt'), 'c', '0', '0']);
    // an opaque marker becomes overlay's opaque xattr on its dir
    if (opts.opaque) execFileSync('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', path.join(fs2, 'tmp')]);
    return { s, fs1, fs2, layer2: digestOf(blob2) };
  }
  const verify = (s: { dataRoot: string }) => runCliAsync(['verify', '--data-root', s.dataRoot, '--json']);

  it('a faithful unpack verifies clean (both layers, uncompressed and gzip, a whiteout, a hard link, a symlink)', async () => {
    const { s } = imageStore();
    const r = await verify(s);
    expect([r.code, r.json.findings]).toEqual([0, []]);
    const h = await runCliAsync(['verify', '--data-root', s.dataRoot]);
    expect(h.stdout.replace(/\s+/g, ' ')).toContain("2 unpacked layers against their blobs' tars and diff IDs: 2 match.");
  });

  it('names a changed file, a missing one, a whiteout gone and a symlink retargeted, with the images they break (exit 1)', async () => {
    const { s, fs1, fs2 } = imageStore();
    fs.writeFileSync(path.join(fs1, 'bin', 'tool'), 'z'.repeat(3000)); // same size, other bytes (and its hard link with it)
    fs.rmSync(path.join(fs1, 'etc', 'passwd'));
    fs.rmSync(path.join(fs2, 'old.txt'));
    fs.rmSync(path.join(fs1, 'bin', 'alias'));
    fs.symlinkSync('/etc/shadow', path.join(fs1, 'bin', 'alias'));
    const r = await verify(s);
    expect(r.code).toBe(1);
    const f = r.json.findings as Record<string, any>[];
    expect(f.map((x) => [x.kind, x.paths, x.affects])).toEqual([
      ['containerd-layer-mismatch', [path.join(s.snapshots, '1')], { images: ['img:1'], containers: [] }],
      ['containerd-layer-mismatch', [path.join(s.snapshots, '2')], { images: ['img:1'], containers: [] }],
    ]);
    expect(f[0].reason).toMatch(/; bin\/(tool|hard): its content differs from the layer's/); // tar stores one of the two links as the file
    expect(f[0].reason).toContain('etc/passwd is missing');
    expect(f[0].reason).toContain('bin/alias should be a symlink to tool');
    expect(f[1].reason).toContain('old.txt is missing');
  });

  it('an opaque dir and a zstd blob (decompressed by the zstd command) verify clean; a lost opaque xattr and a file the tar does not have are mismatches', async () => {
    const { s, fs2 } = imageStore({ opaque: true, zstd: true });
    const r = await verify(s);
    expect([r.code, r.json.findings]).toEqual([0, []]);
    expect(r.json.notes).toContain("2 unpacked layers against their blobs' tars and diff IDs: 2 match.");
    execFileSync('setfattr', ['-x', 'trusted.overlay.opaque', path.join(fs2, 'tmp')]);
    fs.writeFileSync(path.join(fs2, 'app', 'extra'), 'not in the tar');
    fs.mkdirSync(path.join(fs2, 'more', 'deep'), { recursive: true });
    const bad = await verify(s);
    expect(bad.code).toBe(1);
    const f = bad.json.findings as Record<string, any>[];
    expect(f.map((x) => [x.kind, x.paths])).toEqual([['containerd-layer-mismatch', [path.join(s.snapshots, '2')]]]);
    expect(f[0].reason).toContain('tmp should be opaque (the overlay opaque xattr "y"): the layers below show through it');
    expect(f[0].reason).toContain("3 entries the layer's tar does not have: app/extra, more, more/deep");
  });

  it('without a zstd command a zstd layer is "not verified (zstd)", never passed; without getfattr the opaque markers are said to be unchecked', async () => {
    const { s } = imageStore({ opaque: true, zstd: true });
    const bin = path.join(base(), 'bin'); // a PATH with what verify may run, but zstd and getfattr
    fs.mkdirSync(bin);
    for (const c of ['find', 'lsattr', 'chattr', 'stat']) fs.symlinkSync(execFileSync('sh', ['-c', `command -v ${c}`], { encoding: 'utf8' }).trim(), path.join(bin, c));
    const r = await runCliAsync(['verify', '--data-root', s.dataRoot, '--json'], { env: { PATH: bin } });
    expect([r.code, r.json.findings]).toEqual([0, []]);
    expect(r.json.notes).toContain("2 unpacked layers against their blobs' tars and diff IDs: 1 match, 1 not verified (1 zstd-compressed, no zstd command here: install zstd).");
    const g = imageStore({ opaque: true });
    const n = await runCliAsync(['verify', '--data-root', g.s.dataRoot, '--json'], { env: { PATH: bin } });
    expect(n.json.notes).toContain("2 unpacked layers against their blobs' tars and diff IDs: 2 match; 1 opaque-dir marker not checked (no getfattr: install attr).");
  });

  it("a blob whose uncompressed bytes are not the config's diff ID; a layer whose blob is damaged is left to blob verify", async () => {
    const wrong = imageStore({ wrongDiffId: true });
    const r = await verify(wrong.s);
    expect(r.code).toBe(1);
    expect((r.json.findings as Record<string, any>[]).map((x) => [x.kind, x.paths])).toEqual([['containerd-layer-mismatch', [path.join(wrong.s.snapshots, '2')]]]);
    expect(r.json.findings[0].reason).toContain(`not the diff ID ${digestOf('not this layer')} the image config names`);
    const { s, layer2 } = imageStore();
    const blob = path.join(s.blobs, layer2.slice(7));
    fs.truncateSync(blob, Math.floor(fs.statSync(blob).size / 2));
    const t = await verify(s);
    expect((t.json.findings as Record<string, any>[]).map((x) => x.kind)).toEqual(['containerd-blob-mismatch']);
    const h = await runCliAsync(['verify', '--data-root', s.dataRoot]);
    expect(h.stdout.replace(/\s+/g, ' ')).toContain("2 unpacked layers against their blobs' tars and diff IDs: 1 match, 1 not verified (1 whose blob is damaged, see its finding).");
  });
});
