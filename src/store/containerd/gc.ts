// containerd's garbage-collection mark, replayed offline over meta.db (metadata/gc.go of v1.6 for
// schema 3; core/metadata/gc.go of 2.x for schema 4). Roots: unexpired leases and what they list,
// images, unexpired ingests, gc.root-labelled blobs and snapshots, containers (and 2.x sandboxes).
// Edges: gc.ref.content / gc.ref.snapshot labels, a snapshot's parent, an ingest's expected digest;
// a gc.flat lease roots its resources without following their labels; 2.x adds leased images,
// image expiry and gc.bref back-references.
import type { Labels, MetaDb, MetaLease } from './model.js';

/** A node: "c|<ns>|<digest>", "s|<ns>|<snapshotter>/<key>", "i|<ns>|<ref>", "m|<ns>|<image>". */
export type GcNode = string;
export const contentNode = (ns: string, digest: string): GcNode => `c|${ns}|${digest}`;
export const snapshotNode = (ns: string, snapshotter: string, key: string): GcNode => `s|${ns}|${snapshotter}/${key}`;
export const ingestNode = (ns: string, ref: string): GcNode => `i|${ns}|${ref}`;
export const imageNode = (ns: string, name: string): GcNode => `m|${ns}|${name}`;
export const leaseKey = (l: Pick<MetaLease, 'namespace' | 'id'>): string => `${l.namespace}/${l.id}`;

export function parseNode(n: GcNode): { type: 'c' | 's' | 'i' | 'm'; ns: string; key: string } {
  const a = n.indexOf('|');
  const b = n.indexOf('|', a + 1);
  return { type: n.slice(0, a) as 'c' | 's' | 'i' | 'm', ns: n.slice(a + 1, b), key: n.slice(b + 1) };
}

const GC_ROOT = 'containerd.io/gc.root';
const GC_EXPIRE = 'containerd.io/gc.expire';
const GC_FLAT = 'containerd.io/gc.flat';
const REF_CONTENT = 'containerd.io/gc.ref.content';
const REF_SNAPSHOT = 'containerd.io/gc.ref.snapshot.';
const BREF_CONTENT = 'containerd.io/gc.bref.content';
const BREF_SNAPSHOT = 'containerd.io/gc.bref.snapshot.';
const BREF_IMAGE = 'containerd.io/gc.bref.image';
const BREF_CONTAINER = 'containerd.io/gc.bref.container';

/** gc.ref.content, gc.ref.content.<x> and gc.ref.content/<x> name a blob; anything else with that prefix does not. */
const namedLabel = (k: string, prefix: string) => k === prefix || k[prefix.length] === '.' || k[prefix.length] === '/';

/** `<prefix><snapshotter>[/<name>]` -> the snapshot node its value names. */
function snapshotLabel(ns: string, k: string, v: string, prefix: string): GcNode {
  const rest = k.slice(prefix.length);
  const slash = rest.indexOf('/');
  return snapshotNode(ns, slash >= 0 ? rest.slice(0, slash) : rest, v);
}

/** The nodes a resource's labels reference (forward refs). */
export function labelRefs(ns: string, labels: Labels): GcNode[] {
  const out: GcNode[] = [];
  for (const [k, v] of labels) {
    if (k.startsWith(REF_CONTENT) && namedLabel(k, REF_CONTENT)) out.push(contentNode(ns, v));
    else if (k.startsWith(REF_SNAPSHOT)) out.push(snapshotLabel(ns, k, v, REF_SNAPSHOT));
  }
  return out;
}

/** Schema 4: the nodes whose being live keeps this resource live (back-references). */
function backRefs(ns: string, labels: Labels): GcNode[] {
  const out: GcNode[] = [];
  for (const [k, v] of labels) {
    if (k.startsWith(BREF_CONTENT) && namedLabel(k, BREF_CONTENT)) out.push(contentNode(ns, v));
    else if (k.startsWith(BREF_SNAPSHOT)) out.push(snapshotLabel(ns, k, v, BREF_SNAPSHOT));
    else if (k.startsWith(BREF_IMAGE) && namedLabel(k, BREF_IMAGE)) out.push(imageNode(ns, v));
    else if (k.startsWith(BREF_CONTAINER) && namedLabel(k, BREF_CONTAINER)) out.push(`k|${ns}|${v}`);
  }
  return out;
}

/** Whether a label value that is an RFC 3339 time lies before `now` (an unparsable one never expires, as in containerd). */
export function expired(labels: Labels, now: number): boolean {
  const v = labels.get(GC_EXPIRE);
  if (v === undefined) return false;
  const t = Date.parse(v);
  return !Number.isNaN(t) && t < now;
}

export const isFlat = (l: MetaLease) => l.labels.has(GC_FLAT);

/** The graph of one meta.db: forward edges per node, and each root source with its nodes. */
export class GcGraph {
  private readonly edges = new Map<GcNode, GcNode[]>();
  /** flat nodes ("f" + node) follow only a snapshot's parent */
  private readonly flatParent = new Map<GcNode, GcNode>();
  /** every root, with the lease that gives it (undefined: not a lease) */
  readonly roots: { node: GcNode; lease?: string }[] = [];
  readonly leases: MetaLease[] = [];

  constructor(
    readonly meta: MetaDb,
    readonly now: number,
  ) {
    const v4 = meta.version >= 4;
    const brefs: [GcNode, GcNode][] = []; // [target, resource]
    const edge = (from: GcNode, to: GcNode) => {
      const l = this.edges.get(from);
      if (l) l.push(to);
      else this.edges.set(from, [to]);
    };
    for (const ns of meta.namespaces) {
      const n = ns.name;
      for (const img of ns.images) {
        const node = imageNode(n, img.name);
        if (img.target) edge(node, contentNode(n, img.target));
        for (const r of labelRefs(n, img.labels)) edge(node, r);
        if (v4) for (const t of backRefs(n, img.labels)) brefs.push([t, node]);
        if (!(v4 && expired(img.labels, now))) this.roots.push({ node });
      }
      for (const c of ns.containers) {
        const node = `k|${n}|${c.id}`;
        if (c.snapshotter) edge(node, snapshotNode(n, c.snapshotter, c.snapshotKey));
        for (const r of labelRefs(n, c.labels)) edge(node, r);
        this.roots.push({ node });
      }
      for (const s of ns.sandboxes) {
        const node = `x|${n}|${s.id}`;
        for (const r of labelRefs(n, s.labels)) edge(node, r);
        this.roots.push({ node });
      }
      for (const s of ns.snapshots) {
        const node = snapshotNode(n, s.snapshotter, s.key);
        if (s.parent) {
          edge(node, snapshotNode(n, s.snapshotter, s.parent));
          this.flatParent.set(node, snapshotNode(n, s.snapshotter, s.parent));
        }
        for (const r of labelRefs(n, s.labels)) edge(node, r);
        if (v4) for (const t of backRefs(n, s.labels)) brefs.push([t, node]);
        if (s.labels.has(GC_ROOT)) this.roots.push({ node });
      }
      for (const b of ns.blobs) {
        const node = contentNode(n, b.digest);
        for (const r of labelRefs(n, b.labels)) edge(node, r);
        if (v4) for (const t of backRefs(n, b.labels)) brefs.push([t, node]);
        if (b.labels.has(GC_ROOT)) this.roots.push({ node });
      }
      for (const i of ns.ingests) {
        const node = ingestNode(n, i.ref);
        if (i.expected) edge(node, contentNode(n, i.expected));
        if (i.expireAt !== undefined && i.expireAt > now) this.roots.push({ node });
      }
      for (const l of ns.leases) {
        this.leases.push(l);
        if (expired(l.labels, now)) continue;
        for (const node of this.leaseResources(l)) this.roots.push({ node, lease: leaseKey(l) });
      }
    }
    // A back-reference is an edge from the resource it names to the resource that carries it.
    for (const [target, resource] of brefs) edge(target, resource);
  }

  /** The nodes a lease lists; flat ones ("f"-prefixed) do not follow labels. */
  leaseResources(l: MetaLease): GcNode[] {
    const f = isFlat(l) ? 'f' : '';
    const n = l.namespace;
    return [
      ...l.snapshots.map((s) => f + snapshotNode(n, s.snapshotter, s.key)),
      ...l.content.map((d) => f + contentNode(n, d)),
      ...l.ingests.map((r) => ingestNode(n, r)),
      ...l.images.map((m) => imageNode(n, m)),
    ];
  }

  /** Everything reachable from `roots` (flat nodes are reported without their "f"). */
  reach(roots: Iterable<GcNode>): Set<GcNode> {
    const seen = new Set<GcNode>();
    const stack = [...roots];
    while (stack.length) {
      const raw = stack.pop()!;
      if (seen.has(raw)) continue;
      seen.add(raw);
      if (raw.startsWith('f')) {
        const p = this.flatParent.get(raw.slice(1));
        if (p) stack.push(`f${p}`);
      } else for (const to of this.edges.get(raw) ?? []) stack.push(to);
    }
    const out = new Set<GcNode>();
    for (const n of seen) out.add(n.startsWith('f') ? n.slice(1) : n);
    return out;
  }

  /** containerd's mark, leaving out the leases in `without` (namespace/id). */
  mark(without: ReadonlySet<string> = new Set()): Set<GcNode> {
    return this.reach(this.roots.filter((r) => !r.lease || !without.has(r.lease)).map((r) => r.node));
  }
}
