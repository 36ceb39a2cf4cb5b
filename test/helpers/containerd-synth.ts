/**
 * Test-only builder of a synthetic containerd image store (what Docker's managed containerd keeps
 * in <data-root>/containerd/daemon), with meta.db and the overlayfs snapshotter's metadata.db
 * written through bbolt-synth in the schema of /work/shared/docs/containerd-store-format.md §3-§5.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { bucket, synthBbolt, type Bucket, type Value } from './bbolt-synth.js';

export type LabelSet = Record<string, string>;

export interface NsSpec {
  images?: Record<string, { target: string; labels?: LabelSet }>;
  containers?: Record<string, { snapshotter?: string; snapshotKey?: string; labels?: LabelSet }>;
  /** key -> backend name and parent key */
  snapshots?: Record<string, { name: string; parent?: string; labels?: LabelSet; snapshotter?: string }>;
  blobs?: Record<string, { size?: number; labels?: LabelSet }>;
  ingests?: Record<string, { ref: string; expireAt?: number; expected?: string }>;
  leases?: Record<string, { labels?: LabelSet; snapshots?: string[]; content?: string[]; ingests?: string[]; images?: string[] }>;
}

export interface ContainerdSpec {
  version?: number;
  /** raw version bytes instead of the varint of `version` */
  versionRaw?: Buffer;
  namespaces: Record<string, NsSpec>;
  /** backend key -> id, kind (1 view, 2 active, 3 committed), parent backend key */
  backend?: Record<string, { id: number; kind?: number; parent?: string }>;
  /** metadata.db absent */
  noBackendDb?: boolean;
}

/** Go's binary.PutVarint (zig-zag). */
export const varint = (n: number): Buffer => uvarint(n >= 0 ? n * 2 : -n * 2 - 1);

export function uvarint(n: number): Buffer {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 128) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

/** Go time.MarshalBinary (version 1, UTC). */
export function goTime(ms: number): Buffer {
  const b = Buffer.alloc(15);
  b[0] = 1;
  b.writeBigInt64BE(BigInt(Math.floor(ms / 1000)) + 62135596800n, 1);
  b.writeInt32BE((ms % 1000) * 1e6, 9);
  b.writeInt16BE(-1, 13);
  return b;
}

const labels = (l?: LabelSet): Record<string, Value> => (l && Object.keys(l).length ? { labels: bucket(l) } : {});
const keys = (list: string[]): Bucket => bucket(Object.fromEntries(list.map((k) => [k, ''])));

function nsBucket(n: NsSpec): Bucket {
  const e: Record<string, Value> = {};
  if (n.images) {
    e.images = bucket(
      Object.fromEntries(
        Object.entries(n.images).map(([name, i]) => [name, bucket({ target: bucket({ digest: i.target, mediatype: 'application/vnd.oci.image.manifest.v1+json' }), ...labels(i.labels) })]),
      ),
    );
  }
  if (n.containers) {
    e.containers = bucket(
      Object.fromEntries(Object.entries(n.containers).map(([id, c]) => [id, bucket({ image: 'x', snapshotter: c.snapshotter ?? '', snapshotKey: c.snapshotKey ?? '', ...labels(c.labels) })])),
    );
  }
  if (n.snapshots) {
    const by: Record<string, Record<string, Value>> = {};
    for (const [key, s] of Object.entries(n.snapshots)) {
      (by[s.snapshotter ?? 'overlayfs'] ??= {})[key] = bucket({ name: s.name, ...(s.parent ? { parent: s.parent } : {}), ...labels(s.labels) });
    }
    e.snapshots = bucket(Object.fromEntries(Object.entries(by).map(([k, v]) => [k, bucket(v)])));
  }
  if (n.blobs || n.ingests) {
    e.content = bucket({
      ...(n.blobs
        ? { blob: bucket(Object.fromEntries(Object.entries(n.blobs).map(([d, b]) => [d, bucket({ ...(b.size !== undefined ? { size: varint(b.size) } : {}), ...labels(b.labels) })]))) }
        : {}),
      ...(n.ingests
        ? {
            ingests: bucket(
              Object.fromEntries(
                Object.entries(n.ingests).map(([r, i]) => [
                  r,
                  bucket({ ref: i.ref, ...(i.expireAt !== undefined ? { expireat: goTime(i.expireAt) } : {}), ...(i.expected ? { expected: i.expected } : {}) }),
                ]),
              ),
            ),
          }
        : {}),
    });
  }
  if (n.leases) {
    e.leases = bucket(
      Object.fromEntries(
        Object.entries(n.leases).map(([id, l]) => [
          id,
          bucket({
            ...labels(l.labels),
            ...(l.snapshots?.length ? { snapshots: bucket({ overlayfs: keys(l.snapshots) }) } : {}),
            ...(l.content?.length ? { content: keys(l.content) } : {}),
            ...(l.ingests?.length ? { ingests: keys(l.ingests) } : {}),
            ...(l.images?.length ? { images: keys(l.images) } : {}),
          }),
        ]),
      ),
    );
  }
  return bucket(e);
}

export function metaDbFile(spec: ContainerdSpec): Buffer {
  const v1: Record<string, Value> = { version: spec.versionRaw ?? varint(spec.version ?? 3) };
  for (const [name, n] of Object.entries(spec.namespaces)) v1[name] = nsBucket(n);
  return synthBbolt(bucket({ v1: bucket(v1) })).file;
}

export function backendDbFile(backend: ContainerdSpec['backend'] = {}): Buffer {
  const snaps: Record<string, Value> = {};
  for (const [key, r] of Object.entries(backend)) {
    snaps[key] = bucket({ id: uvarint(r.id), kind: Buffer.from([r.kind ?? 3]), ...(r.parent ? { parent: r.parent } : {}) });
  }
  return synthBbolt(bucket({ v1: bucket({ snapshots: bucket(snaps), parents: bucket({}) }) })).file;
}

export interface ContainerdRoot {
  dataRoot: string;
  root: string;
  snapshots: string;
  blobs: string;
  ingest: string;
  /** write snapshots/<id>/fs/<file> with `bytes` bytes */
  snapshotDir(id: number | string, bytes?: number): string;
  /** write a blob with this content under its digest (or under `name`); returns the digest */
  blob(content: string | Buffer, name?: string): string;
  /** an ingest dir for backend ref `ref` (ref file content `refText`, default = ref) */
  ingestDir(ref: string, opts?: { refText?: string | null; bytes?: number }): string;
  containerDir(id: string, opts?: { name?: string; config?: boolean }): string;
}

export const digestOf = (content: string | Buffer) => `sha256:${createHash('sha256').update(content).digest('hex')}`;
export const hex64 = (seed: string) => createHash('sha256').update(seed).digest('hex');

/** Lay out a managed-containerd data root under `base` with the two databases of `spec`. */
export function containerdRoot(base: string, spec: ContainerdSpec): ContainerdRoot {
  const dataRoot = path.join(base, 'docker');
  const root = path.join(dataRoot, 'containerd', 'daemon');
  const snapshots = path.join(root, 'io.containerd.snapshotter.v1.overlayfs', 'snapshots');
  const content = path.join(root, 'io.containerd.content.v1.content');
  const blobs = path.join(content, 'blobs', 'sha256');
  const ingest = path.join(content, 'ingest');
  for (const d of [snapshots, blobs, ingest, path.join(root, 'io.containerd.metadata.v1.bolt'), path.join(dataRoot, 'containers')]) fs.mkdirSync(d, { recursive: true });
  fs.writeFileSync(path.join(root, 'io.containerd.metadata.v1.bolt', 'meta.db'), metaDbFile(spec));
  if (!spec.noBackendDb) fs.writeFileSync(path.join(root, 'io.containerd.snapshotter.v1.overlayfs', 'metadata.db'), backendDbFile(spec.backend));
  return {
    dataRoot,
    root,
    snapshots,
    blobs,
    ingest,
    snapshotDir(id, bytes = 5000) {
      const d = path.join(snapshots, String(id));
      fs.mkdirSync(path.join(d, 'fs'), { recursive: true });
      fs.writeFileSync(path.join(d, 'fs', 'data'), Buffer.alloc(bytes, 7));
      return d;
    },
    blob(c, name) {
      const d = digestOf(c);
      fs.writeFileSync(path.join(blobs, name ?? d.slice(7)), c);
      return d;
    },
    ingestDir(ref, opts = {}) {
      const d = path.join(ingest, hex64(ref));
      fs.mkdirSync(d, { recursive: true });
      if (opts.refText !== null) fs.writeFileSync(path.join(d, 'ref'), opts.refText ?? ref);
      fs.writeFileSync(path.join(d, 'data'), Buffer.alloc(opts.bytes ?? 9000, 1));
      fs.writeFileSync(path.join(d, 'startedat'), '2026-11-30T05:38:49.362959566Z');
      return d;
    },
    containerDir(id, opts = {}) {
      const d = path.join(dataRoot, 'containers', id);
      fs.mkdirSync(path.join(d, 'checkpoints'), { recursive: true });
      if (opts.config !== false) fs.writeFileSync(path.join(d, 'config.v2.json'), JSON.stringify({ ID: id, Name: `/${opts.name ?? id.slice(0, 6)}` }));
      return d;
    },
  };
}
