// containerd's meta.db (io.containerd.metadata.v1.bolt), read-only with layergc's bbolt reader.
// Schema: containerd metadata/buckets.go (v1.6 = core/metadata/buckets.go in 2.x); schema
// version 3 (containerd 1.x) and 4 (2.x, sandboxes) are known, anything else is refused.
import { withDb, type BboltBucket } from '../bbolt.js';
import { ExitCode, LayergcError } from '../../errors.js';
import type { Labels, MetaDb, MetaLease, MetaNamespace } from './model.js';

export const KNOWN_SCHEMA_VERSIONS = [3, 4];

/** Go's binary.Varint (zig-zag). */
export function readVarint(buf: Buffer): number | undefined {
  const u = readUvarint(buf);
  if (u === undefined) return undefined;
  return u % 2 === 0 ? u / 2 : -(u + 1) / 2;
}

/** Go's binary.Uvarint, within the safe integer range. */
export function readUvarint(buf: Buffer): number | undefined {
  let x = 0;
  let mul = 1;
  for (let i = 0; i < buf.length && i < 8; i++) {
    const b = buf[i];
    x += (b & 0x7f) * mul;
    if (b < 0x80) return Number.isSafeInteger(x) ? x : undefined;
    mul *= 128;
  }
  return undefined;
}

/** Go time.MarshalBinary (versions 1 and 2): unix ms, or undefined when unparsable. */
export function readGoTime(buf: Buffer): number | undefined {
  if (buf.length < 15 || (buf[0] !== 1 && buf[0] !== 2)) return undefined;
  const sec = buf.readBigInt64BE(1) - 62135596800n; // seconds since year 1 -> since 1970
  const ns = buf.readInt32BE(9);
  return Number(sec) * 1000 + Math.floor(ns / 1e6);
}

async function entries(b: BboltBucket | null): Promise<{ key: string; value: Buffer | null }[]> {
  const out: { key: string; value: Buffer | null }[] = [];
  if (!b) return out;
  for await (const e of b.entries()) out.push({ key: e.key.toString('utf8'), value: e.value });
  return out;
}

async function subBuckets(b: BboltBucket | null): Promise<[string, BboltBucket][]> {
  const out: [string, BboltBucket][] = [];
  if (!b) return out;
  for (const e of await entries(b)) {
    if (e.value !== null) continue;
    const child = await b.bucket(e.key);
    if (child) out.push([e.key, child]);
  }
  return out;
}

async function str(b: BboltBucket | null, key: string): Promise<string | undefined> {
  const v = b ? await b.get(key) : null;
  return v === null ? undefined : v.toString('utf8');
}

async function labelsOf(b: BboltBucket): Promise<Labels> {
  const m: Labels = new Map();
  for (const e of await entries(await b.bucket('labels'))) if (e.value !== null) m.set(e.key, e.value.toString('utf8'));
  return m;
}

async function valueKeys(b: BboltBucket | null): Promise<string[]> {
  return (await entries(b)).filter((e) => e.value !== null).map((e) => e.key);
}

async function readLease(ns: string, id: string, b: BboltBucket): Promise<MetaLease> {
  const snapshots: MetaLease['snapshots'] = [];
  for (const [snapshotter, sb] of await subBuckets(await b.bucket('snapshots'))) {
    for (const key of await valueKeys(sb)) snapshots.push({ snapshotter, key });
  }
  return {
    namespace: ns,
    id,
    labels: await labelsOf(b),
    snapshots,
    content: await valueKeys(await b.bucket('content')),
    ingests: await valueKeys(await b.bucket('ingests')),
    images: await valueKeys(await b.bucket('images')),
  };
}

async function readNamespace(name: string, nb: BboltBucket): Promise<MetaNamespace> {
  const ns: MetaNamespace = { name, images: [], containers: [], snapshots: [], blobs: [], ingests: [], leases: [], sandboxes: [] };
  for (const [img, b] of await subBuckets(await nb.bucket('images'))) {
    ns.images.push({ namespace: name, name: img, target: await str(await b.bucket('target'), 'digest'), labels: await labelsOf(b) });
  }
  for (const [id, b] of await subBuckets(await nb.bucket('containers'))) {
    ns.containers.push({
      namespace: name,
      id,
      image: (await str(b, 'image')) ?? '',
      snapshotter: (await str(b, 'snapshotter')) ?? '',
      snapshotKey: (await str(b, 'snapshotKey')) ?? '',
      labels: await labelsOf(b),
    });
  }
  for (const [snapshotter, sb] of await subBuckets(await nb.bucket('snapshots'))) {
    for (const [key, b] of await subBuckets(sb)) {
      ns.snapshots.push({ namespace: name, snapshotter, key, name: (await str(b, 'name')) ?? '', parent: await str(b, 'parent'), labels: await labelsOf(b) });
    }
  }
  const content = await nb.bucket('content');
  for (const [digest, b] of await subBuckets(content ? await content.bucket('blob') : null)) {
    const size = await b.get('size');
    ns.blobs.push({ namespace: name, digest, size: size ? readVarint(size) : undefined, labels: await labelsOf(b) });
  }
  for (const [ref, b] of await subBuckets(content ? await content.bucket('ingests') : null)) {
    const exp = await b.get('expireat');
    ns.ingests.push({ namespace: name, ref, backendRef: (await str(b, 'ref')) ?? '', expireAt: exp ? readGoTime(exp) : undefined, expected: await str(b, 'expected') });
  }
  for (const [id, b] of await subBuckets(await nb.bucket('leases'))) ns.leases.push(await readLease(name, id, b));
  for (const [id, b] of await subBuckets(await nb.bucket('sandboxes'))) ns.sandboxes.push({ namespace: name, id, labels: await labelsOf(b) });
  return ns;
}

/** Read the whole of meta.db; refuse (exit 4) a schema layergc does not know. */
export async function readMetaDb(path: string): Promise<MetaDb> {
  return withDb(path, async (db) => {
    const v1 = await (await db.root()).bucket('v1');
    if (!v1) throw new LayergcError(`${path} has no v1 bucket: not a containerd metadata database layergc knows`, ExitCode.UNSUPPORTED);
    const raw = await v1.get('version');
    const version = raw ? readVarint(raw) : undefined;
    if (version === undefined || !KNOWN_SCHEMA_VERSIONS.includes(version)) {
      throw new LayergcError(`${path} has schema version ${version ?? 'none'}; layergc knows ${KNOWN_SCHEMA_VERSIONS.join(' and ')} (containerd 1.x and 2.x)`, ExitCode.UNSUPPORTED);
    }
    const namespaces: MetaNamespace[] = [];
    for (const [name, nb] of await subBuckets(v1)) namespaces.push(await readNamespace(name, nb));
    return { version, namespaces };
  });
}
