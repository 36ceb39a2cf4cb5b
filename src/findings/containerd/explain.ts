// `layergc explain` on the containerd image store: who holds a snapshot dir, blob, ingest or lease
// (an image, a container, a lease, nothing), from containerd's GC roots down to the thing.
import { createHash } from 'node:crypto';
import { short } from '../../store/digest.js';
import { HEX64, SHA256_DIGEST } from '../../layout.js';
import { contentNode, ingestNode, leaseKey, parseNode, snapshotNode, type GcNode } from '../../store/containerd/gc.js';
import type { ContainerdStore, MetaLease } from '../../store/containerd/model.js';
import { imageDisplay, type ContainerdScan } from './scan.js';
import type { Explanation } from '../explain.js';
import type { Finding } from '../types.js';

function statusOf(findings: Finding[], held: boolean): Explanation['status'] {
  if (findings.some((f) => f.severity === 'error')) return 'broken';
  if (findings.length) return 'garbage';
  return held ? 'live' : 'unknown';
}

export function explainContainerd(s: ContainerdStore, scan: ContainerdScan, target: string): Explanation | null {
  const { graph } = scan;
  const containerName = (id: string) => s.disk.containerDirs.find((c) => c.id === id && c.hasConfig)?.name;
  const describeRoot = (r: { node: GcNode; lease?: string }): string => {
    if (r.lease) {
      const id = r.lease.slice(r.lease.indexOf('/') + 1);
      const dead = scan.deadLeases.get(r.lease);
      const name = HEX64.test(id) ? containerName(id) : undefined;
      return `lease ${r.lease}${name ? ` of container ${name}` : ''}${dead ? ` (${dead.why.split(':')[0]})` : ''}`;
    }
    const { type, ns, key } = parseNode(r.node);
    if (type === 'm') return `image ${imageDisplay(key)} (namespace ${ns})`;
    if (r.node.startsWith('k|')) return `containerd container ${key} (namespace ${ns})`;
    if (type === 'i') return `ingest ${key} (namespace ${ns}, not expired)`;
    return `${type === 'c' ? 'blob' : 'snapshot'} ${key} labelled containerd.io/gc.root (namespace ${ns})`;
  };
  /** every GC root whose reach includes one of `nodes`, described once */
  const holders = (nodes: GcNode[]): string[] => {
    const want = new Set(nodes);
    const out = new Set<string>();
    for (const r of graph.roots) {
      for (const n of graph.reach([r.node])) {
        if (want.has(n)) {
          out.add(describeRoot(r));
          break;
        }
      }
    }
    return [...out].sort();
  };
  const touching = (pred: (f: Finding) => boolean) => scan.findings.filter(pred);
  const snapRoot = `${s.loc.snapshotterRoot}/snapshots/`;
  const blobRoot = `${s.loc.contentRoot}/blobs/sha256/`;
  const ingestRoot = `${s.loc.contentRoot}/ingest/`;

  const explainSnapshotDir = (name: string): Explanation => {
    const dir = `${snapRoot}${name}`;
    const rec = /^\d+$/.test(name) ? s.backend.byId.get(Number(name)) : undefined;
    const fs = touching((f) => f.paths.includes(dir));
    const because: string[] = [];
    let nodes: GcNode[] = [];
    let views: string[] = [];
    if (!rec) because.push(`the overlayfs snapshotter has no record with id ${name}`);
    else {
      const metas = s.meta.namespaces.flatMap((ns) => ns.snapshots.filter((sn) => sn.name === rec.key));
      because.push(`it is snapshot ${JSON.stringify(rec.key)} (id ${rec.id}) of the overlayfs snapshotter`);
      if (!metas.length) because.push('no meta.db snapshot names it');
      nodes = metas.map((sn) => snapshotNode(sn.namespace, sn.snapshotter, sn.key));
      for (const h of holders(nodes)) because.push(`held by ${h}`);
      // BuildKit reads a cache ref through a view "<ref>-view" of it, under a temporary lease of that name
      views = metas.filter((sn) => sn.parent !== undefined && sn.key === `${sn.parent}-view`).map((sn) => sn.key);
      for (const sn of metas.filter((x) => views.includes(x.key))) {
        because.push(`it is BuildKit's read-only view of its cache snapshot ${sn.parent}, made while a build reads it, under a temporary lease ${sn.namespace}/${sn.key}`);
        const parents = holders([snapshotNode(sn.namespace, sn.snapshotter, sn.parent!)]);
        because.push(`its parent ${sn.parent} is ${parents.length ? `held by ${parents.join(', ')}` : 'held by nothing'}`);
      }
    }
    const held = nodes.some((n) => scan.marked.has(n));
    // a record nothing marks is containerd's own garbage: its next GC removes it (layergc leaves that to containerd)
    if (rec && !held && nodes.length) {
      because.push(
        views.length
          ? "nothing holds it: BuildKit released the view (its temporary lease is gone); containerd's next GC removes it, which layergc leaves to containerd"
          : "nothing holds it: containerd's next GC removes it, which layergc leaves to containerd",
      );
      return { target, type: 'snapshot', subject: `snapshot dir ${dir}`, status: fs.some((f) => f.severity === 'error') ? 'broken' : 'garbage', because, findings: fs };
    }
    if (rec && !held) because.push("nothing holds it: containerd's next GC removes it");
    return { target, type: 'snapshot', subject: `snapshot dir ${dir}`, status: statusOf(fs, held), because, findings: fs };
  };

  const explainBlob = (digest: string): Explanation => {
    const path = `${blobRoot}${digest.slice('sha256:'.length)}`;
    const nss = s.meta.namespaces.filter((ns) => ns.blobs.some((b) => b.digest === digest)).map((ns) => ns.name);
    const because = nss.length ? [`recorded in namespace${nss.length === 1 ? '' : 's'} ${nss.join(', ')}`] : ['no namespace of meta.db records it'];
    if (!s.disk.blobs.has(digest)) because.push('its file is not in blobs/sha256');
    const nodes = nss.map((ns) => contentNode(ns, digest));
    for (const h of holders(nodes)) because.push(`held by ${h}`);
    const held = nodes.some((n) => scan.marked.has(n));
    if (nss.length && !held) because.push("nothing holds it: containerd's next GC removes it");
    const fs = touching((f) => f.paths.includes(path) || f.containerd?.digest === digest);
    return { target, type: 'blob', subject: `blob ${digest}`, status: statusOf(fs, held), because, findings: fs };
  };

  const explainLease = (l: MetaLease): Explanation => {
    const key = leaseKey(l);
    const because: string[] = [];
    const dead = scan.deadLeases.get(key);
    because.push(dead ? dead.why : s.loc.mobyNamespaces.includes(l.namespace) ? 'a lease of a live operation or container' : `a lease of another client (namespace ${l.namespace}); only read`);
    const res = [...l.snapshots.map((x) => `snapshot ${x.key}`), ...l.content.map((d) => `blob ${short(d)}`), ...l.ingests.map((r) => `ingest ${r}`), ...l.images.map((m) => `image ${m}`)];
    because.push(res.length ? `it lists ${res.join(', ')}` : 'it lists nothing');
    const only = [...graph.reach(graph.leaseResources(l))].filter((n) => !graph.mark(new Set([key])).has(n));
    if (only.length)
      because.push(
        `only it holds ${only.length} record${only.length === 1 ? '' : 's'}: ${only
          .map((n) => parseNode(n).key)
          .slice(0, 5)
          .join(', ')}${only.length > 5 ? ', …' : ''}`,
      );
    const fs = touching((f) => f.containerd?.lease === l.id && f.containerd?.namespace === l.namespace);
    return { target, type: 'lease', subject: `lease ${key}`, status: statusOf(fs, !dead), because, findings: fs };
  };

  const explainIngest = (name: string): Explanation => {
    const dir = `${ingestRoot}${name}`;
    const rec = s.meta.namespaces.flatMap((ns) => ns.ingests).find((i) => createHash('sha256').update(i.backendRef).digest('hex') === name);
    const because = rec ? [`it is ingest ${rec.ref} of namespace ${rec.namespace}`] : ['no ingest record of meta.db hashes to its name'];
    const nodes = rec ? [ingestNode(rec.namespace, rec.ref)] : [];
    for (const h of holders(nodes)) because.push(`held by ${h}`);
    const fs = touching((f) => f.paths.includes(dir));
    return {
      target,
      type: 'path',
      subject: `ingest dir ${dir}`,
      status: statusOf(
        fs,
        nodes.some((n) => scan.marked.has(n)),
      ),
      because,
      findings: fs,
    };
  };

  const abs = target.startsWith('/') ? target.replace(/\/+$/, '') : undefined;
  if (abs?.startsWith(snapRoot)) return explainSnapshotDir(abs.slice(snapRoot.length).split('/')[0]);
  if (abs?.startsWith(blobRoot)) return explainBlob(`sha256:${abs.slice(blobRoot.length).split('/')[0]}`);
  if (abs?.startsWith(ingestRoot)) return explainIngest(abs.slice(ingestRoot.length).split('/')[0]);
  if (abs) {
    const fs = touching((f) => f.paths.some((p) => p === abs || abs.startsWith(`${p}/`)));
    return fs.length ? { target, type: 'path', subject: abs, status: statusOf(fs, false), because: [], findings: fs } : null;
  }
  const leases = s.meta.namespaces.flatMap((ns) => ns.leases).filter((l) => l.id === target || leaseKey(l) === target);
  if (leases.length) return explainLease(leases[0]);
  const digest = SHA256_DIGEST.test(target) ? target : HEX64.test(target) ? `sha256:${target}` : undefined;
  if (digest && (s.disk.blobs.has(digest) || s.meta.namespaces.some((ns) => ns.blobs.some((b) => b.digest === digest)))) return explainBlob(digest);
  for (const ns of s.meta.namespaces) {
    const sn = ns.snapshots.find((x) => x.key === target || x.key === digest);
    const rec = sn && s.backend.records.get(sn.name);
    if (rec) return explainSnapshotDir(String(rec.id));
  }
  return null;
}
