// Scan of a containerd image store: compares meta.db, the snapshotter's metadata.db and the
// directories, replays containerd's GC mark, and reports each failure class of
// /work/shared/docs/containerd-store-format.md §7-§9. Only moby's namespaces are ever called
// garbage; every namespace is read, because each one's records keep blobs and snapshots alive.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { SizeAccounting } from '../../fsx/size.js';
import { MountTable } from '../../fsx/mounts.js';
import { short } from '../../store/digest.js';
import { HEX64 } from '../../layout.js';
import { GcGraph, contentNode, expired, imageNode, ingestNode, leaseKey, parseNode, snapshotNode, type GcNode } from '../../store/containerd/gc.js';
import type { ContainerdStore, MetaLease, MetaSnapshot } from '../../store/containerd/model.js';
import { FINDING_KINDS, noAffects, type Affects, type Finding } from '../types.js';
import { shellQuote } from '../../escape.js';

const TEMPORARY = 'buildkit/lease.temporary';

export interface ContainerdScan {
  findings: Finding[];
  graph: GcGraph;
  /** containerd's mark as the store stands (every unexpired lease a root) */
  marked: Set<GcNode>;
  /** what stays marked once the dead and orphan leases are gone */
  markedWithoutDead: Set<GcNode>;
  deadLeases: Map<string, { lease: MetaLease; why: string }>;
  /** snapshot backend keys and blob digests the sanity checks refuse to call garbage */
  snapshotsUntrusted: boolean;
  contentUntrusted: boolean;
}

/** Docker's short form of a containerd image name. */
export function imageDisplay(name: string): string {
  if (name.startsWith('moby-dangling@')) return short(name.slice('moby-dangling@'.length));
  return name.replace(/^docker\.io\/library\//, '').replace(/^docker\.io\//, '');
}

/** Files with the immutable or append-only attribute below `dir` (lsattr), as `chattr` would clear them. */
export function pinnedFiles(dir: string): { path: string; attr: 'i' | 'a' }[] {
  const r = spawnSync('find', [dir, '-xdev', '(', '-type', 'f', '-o', '-type', 'd', ')', '-exec', 'lsattr', '-d', '--', '{}', '+'], { encoding: 'utf8', maxBuffer: 256 << 20 });
  const out: { path: string; attr: 'i' | 'a' }[] = [];
  for (const line of (r.stdout ?? '').split('\n')) {
    const sp = line.indexOf(' ');
    if (sp < 0) continue;
    const attrs = line.slice(0, sp);
    const path = line.slice(sp + 1);
    if (attrs.includes('i')) out.push({ path, attr: 'i' });
    else if (attrs.includes('a')) out.push({ path, attr: 'a' });
  }
  return out;
}

const quote = (p: string) => shellQuote(p) ?? "'<a name that ends in a newline>'";

/** A lease that belongs to an operation of the daemon, which died with it; or undefined. */
function deadLeaseWhy(l: MetaLease, s: ContainerdStore): string | undefined {
  if (l.labels.has(TEMPORARY)) return 'a BuildKit temporary lease (BuildKit drops these at its start; this one outlived its build)';
  if (l.labels.has('containerd.io/gc.expire')) {
    const when = l.labels.get('containerd.io/gc.expire');
    const tag = l.labels.has('moby/prune.images') ? 'a moby pull/save/commit lease' : 'an expiring client lease (docker load, import, push)';
    return `${tag} that expires ${when}${expired(l.labels, s.now) ? ' (already expired: the next containerd GC drops it)' : ''}; dockerd keeps such lease ids only in memory, so no operation can be using it while the daemon is stopped`;
  }
  return undefined;
}

/** Which of moby's images and containers reach each node: what breaks when it is gone. */
export function usersOf(s: ContainerdStore, graph: GcGraph): (nodes: GcNode[]) => Affects {
  const moby = new Set(s.loc.mobyNamespaces);
  const containerByID = new Map(s.disk.containerDirs.map((c) => [c.id, c]));
  const users = new Map<GcNode, Affects>();
  const addUser = (nodes: Set<GcNode>, f: (a: Affects) => void) => {
    for (const n of nodes) {
      let a = users.get(n);
      if (!a) users.set(n, (a = noAffects()));
      f(a);
    }
  };
  for (const ns of s.meta.namespaces) {
    if (!moby.has(ns.name)) continue;
    for (const img of ns.images) addUser(graph.reach([imageNode(ns.name, img.name)]), (a) => a.images.push(imageDisplay(img.name)));
    for (const l of ns.leases) {
      const c = containerByID.get(l.id);
      if (HEX64.test(l.id) && c?.hasConfig) addUser(graph.reach(graph.leaseResources(l)), (a) => a.containers.push(c.name ?? short(l.id)));
    }
  }
  return (nodes) => {
    const a = noAffects();
    for (const n of nodes) {
      const u = users.get(n);
      if (u) {
        a.images.push(...u.images);
        a.containers.push(...u.containers);
      }
    }
    return { images: [...new Set(a.images)].sort(), containers: [...new Set(a.containers)].sort() };
  };
}

export async function scanContainerd(s: ContainerdStore, mounts = MountTable.read()): Promise<ContainerdScan> {
  const sizes = new SizeAccounting(mounts);
  const findings: Finding[] = [];
  const graph = new GcGraph(s.meta, s.now);
  const moby = new Set(s.loc.mobyNamespaces);
  const snapDir = (id: number | string) => `${s.loc.snapshotterRoot}/snapshots/${id}`;
  const containerByID = new Map(s.disk.containerDirs.map((c) => [c.id, c]));

  // Every meta.db snapshot record, by node, and by the backend key it names.
  const snapByNode = new Map<GcNode, MetaSnapshot>();
  const snapsByName = new Map<string, MetaSnapshot[]>();
  for (const ns of s.meta.namespaces) {
    for (const sn of ns.snapshots) {
      snapByNode.set(snapshotNode(ns.name, sn.snapshotter, sn.key), sn);
      if (sn.snapshotter === s.loc.snapshotter) snapsByName.set(sn.name, [...(snapsByName.get(sn.name) ?? []), sn]);
    }
  }
  const blobRecords = new Map<string, string[]>(); // digest -> namespaces
  for (const ns of s.meta.namespaces) for (const b of ns.blobs) blobRecords.set(b.digest, [...(blobRecords.get(b.digest) ?? []), ns.name]);
  const ingestRefs = new Set<string>();
  for (const ns of s.meta.namespaces) for (const i of ns.ingests) ingestRefs.add(i.backendRef);
  const ingestDirOf = (backendRef: string) => `${s.loc.contentRoot}/ingest/${createHash('sha256').update(backendRef).digest('hex')}`;

  // ---- sanity: a database that looks empty or short while the disk is full (F12, F13) ----
  const numericDirs = s.disk.snapshotDirs.filter((d) => /^\d+$/.test(d.name));
  const metaSnapCount = [...snapsByName.values()].reduce((n, l) => n + l.length, 0);
  const problems: { why: string; paths: string[]; snapshots?: boolean; content?: boolean }[] = [];
  const metaLost = metaSnapCount === 0 && s.backend.records.size > 0;
  if (metaLost) {
    problems.push({
      why: `meta.db has no snapshot record in any namespace, but the snapshotter has ${s.backend.records.size} records and snapshots/ has ${numericDirs.length} dirs (a truncated or replaced meta.db: containerd's next GC would remove them all)`,
      paths: [s.loc.metaDb],
      snapshots: true,
    });
  }
  // no blob record at all is only suspicious with the snapshot side's evidence: after `docker rmi` of everything it is normal
  if (metaLost && blobRecords.size === 0 && s.disk.blobs.size > 0) {
    problems.push({
      why: `meta.db has no blob record in any namespace, but blobs/sha256 holds ${s.disk.blobs.size} blobs (a truncated or replaced meta.db: containerd's next content GC would delete them all)`,
      paths: [s.loc.metaDb],
      content: true,
    });
  }
  // containerd re-creates a lost meta.db with no namespace at all: it names nothing, so nothing on disk is provably garbage
  if (!metaLost && s.meta.namespaces.length === 0 && (numericDirs.length > 0 || s.disk.blobs.size > 0)) {
    problems.push({
      why: `meta.db has no namespace at all, but snapshots/ has ${numericDirs.length} dirs and blobs/sha256 ${s.disk.blobs.size} blobs (a lost meta.db re-created empty)`,
      paths: [s.loc.metaDb],
      snapshots: true,
      content: true,
    });
  }
  const unnamed = [...snapsByName.keys()].filter((name) => !s.backend.records.has(name));
  if (unnamed.length) {
    const empty = s.backend.records.size === 0;
    problems.push({
      why: empty
        ? `the snapshotter's metadata.db has no record while meta.db names ${unnamed.length} snapshots and snapshots/ has ${numericDirs.length} dirs (a truncated or re-created metadata.db: containerd's next Cleanup would remove every dir, and new snapshots reuse live ids)`
        : `meta.db names ${unnamed.length} snapshot${unnamed.length === 1 ? '' : 's'} the snapshotter has no record of (${unnamed.slice(0, 3).join(', ')}${unnamed.length > 3 ? ', …' : ''}): images using them cannot run`,
      paths: [`${s.loc.snapshotterRoot}/metadata.db`],
      snapshots: true,
    });
  }
  const snapshotsUntrusted = problems.some((p) => p.snapshots);
  const contentUntrusted = problems.some((p) => p.content);
  for (const p of problems) {
    findings.push({
      kind: 'containerd-db-mismatch',
      severity: 'error',
      paths: p.paths,
      bytes: 0,
      reclaimable: false,
      reason: `${p.why}; layergc removes nothing of this store until it is repaired`,
      affects: noAffects(),
    });
  }

  const affectsOf = usersOf(s, graph);

  // ---- record-less snapshot dirs (F1, F2, F3; new-* temp dirs) ----
  if (!snapshotsUntrusted) {
    for (const d of s.disk.snapshotDirs) {
      const numeric = /^\d+$/.test(d.name);
      if (numeric && s.backend.byId.has(Number(d.name))) continue;
      if (!numeric && !d.name.startsWith('new-')) continue; // containerd's Cleanup would remove it; layergc leaves names it does not know
      if (!d.isDir) continue;
      const m = sizes.measure(d.path);
      let reason = numeric
        ? 'the overlayfs snapshotter has no record of this dir: a removal that failed or was interrupted (containerd retries only when a later GC deletes a snapshot record)'
        : 'a snapshot being created when containerd stopped (its temp dir was never renamed)';
      const pinned = pinnedFiles(d.path);
      if (pinned.length) {
        const first = pinned
          .slice(0, 3)
          .map((p) => `${p.path} (${p.attr === 'i' ? 'immutable' : 'append-only'})`)
          .join(', ');
        const cmd = pinned
          .slice(0, 3)
          .map((p) => `chattr -${p.attr} ${quote(p.path)}`)
          .join('; ');
        reason += `; containerd cannot remove it: ${pinned.length} file${pinned.length === 1 ? '' : 's'} with an attribute, ${first}${pinned.length > 3 ? ', …' : ''}; clear with: ${cmd}${pinned.length > 3 ? ' (and the rest)' : ''}`;
      }
      findings.push({
        kind: 'containerd-orphan-snapshot',
        severity: 'warning',
        paths: [d.path],
        bytes: m.bytes,
        reclaimable: true,
        reason,
        affects: noAffects(),
        newestMs: m.newestMs,
        mountsInside: m.mountsInside,
      });
    }
    // ---- backend records no meta.db snapshot names ----
    for (const rec of s.backend.records.values()) {
      if (snapsByName.has(rec.key)) continue;
      const m = sizes.measure(snapDir(rec.id));
      findings.push({
        kind: 'containerd-orphan-record',
        severity: 'warning',
        paths: [snapDir(rec.id)],
        bytes: m.bytes,
        reclaimable: false,
        reason: `the snapshotter record ${JSON.stringify(rec.key)} (id ${rec.id}) is named by no meta.db snapshot: a crash between containerd's two databases; containerd's next snapshot GC removes it (layergc does not write metadata.db)`,
        affects: noAffects(),
        containerd: { snapshot: rec.key },
      });
    }
  }

  // ---- snapshot records whose dir is gone (F11) ----
  for (const rec of s.backend.records.values()) {
    const dir = s.disk.snapshotDirs.find((d) => d.name === String(rec.id));
    if (dir?.isDir) continue;
    const nodes = (snapsByName.get(rec.key) ?? []).map((sn) => snapshotNode(sn.namespace, sn.snapshotter, sn.key));
    findings.push({
      kind: 'containerd-missing-snapshot',
      severity: 'error',
      paths: [snapDir(rec.id)],
      bytes: 0,
      reclaimable: false,
      reason: `snapshot ${JSON.stringify(rec.key)} (id ${rec.id}) has a record but no dir: containers on it fail with "no such file or directory"; containerd's GC must not run until it is repaired (remove and re-pull or re-load its images)`,
      affects: affectsOf(nodes),
      containerd: { snapshot: rec.key },
    });
  }

  // ---- blobs without a record in any namespace; stray names (F9) ----
  if (!contentUntrusted) {
    for (const [digest, b] of s.disk.blobs) {
      if (blobRecords.has(digest)) continue;
      const m = sizes.measure(b.path);
      findings.push({
        kind: 'containerd-orphan-blob',
        severity: 'warning',
        paths: [b.path],
        bytes: m.bytes,
        reclaimable: true,
        reason: `no namespace of meta.db has a record of blob ${short(digest)}: a crash between its commit and its record, or a removal containerd's content GC has not run${s.disk.strayBlobNames.length ? ' (it cannot while a stray name is in blobs/)' : ''}`,
        affects: noAffects(),
        containerd: { digest },
        newestMs: m.newestMs,
      });
    }
    // ---- ingest dirs with a missing, empty or unknown ref (F8) ----
    for (const i of s.disk.ingests) {
      let why: string | undefined;
      if (i.ref.state !== 'ok') why = `${i.ref.why}: containerd's GC cannot tell whose it is and never aborts it`;
      else if (!ingestRefs.has(i.ref.text)) why = `its ref ${JSON.stringify(i.ref.text)} names no ingest record in meta.db: a write that was abandoned`;
      else if (ingestDirOf(i.ref.text) !== i.path) why = `its ref ${JSON.stringify(i.ref.text)} does not hash to its dir name`;
      if (!why) continue;
      const m = sizes.measure(i.path);
      findings.push({
        kind: 'containerd-orphan-ingest',
        severity: 'warning',
        paths: [i.path],
        bytes: m.bytes,
        reclaimable: true,
        reason: `an interrupted content write whose ${why.replace(/^its /, '')}`,
        affects: noAffects(),
        newestMs: m.newestMs,
      });
    }
  }
  for (const p of s.disk.strayBlobNames) {
    const m = sizes.measure(p);
    findings.push({
      kind: 'containerd-stray-blob-name',
      severity: 'warning',
      paths: [p],
      bytes: m.bytes,
      reclaimable: true,
      reason:
        'not a digest: containerd\'s content GC stops at it ("invalid digest for blob path"), so no blob or ingest is collected while it is there; containerd never writes such a name (its writes land in ingest/ and are renamed to their digest)',
      affects: noAffects(),
      newestMs: m.newestMs,
    });
  }

  // ---- containers/<id> without config.v2.json (F6) ----
  for (const c of s.disk.containerDirs) {
    if (c.hasConfig || !HEX64.test(c.id)) continue; // moby names a container's dir by its ID: any other name is not its to remove
    const m = sizes.measure(c.path);
    findings.push({
      kind: 'containerd-configless-container',
      severity: 'warning',
      paths: [c.path],
      bytes: m.bytes,
      reclaimable: true,
      reason: 'a container dir without config.v2.json (a create killed half way): dockerd logs "failed to load container" for it at every start and no docker command removes it',
      affects: noAffects(),
    });
  }

  // ---- dead leases (F4, F5) and container leases with no loadable container (F6, F7) ----
  const deadLeases = new Map<string, { lease: MetaLease; why: string }>();
  // containers/ missing or without one container dir (a volume not mounted, a dir moved away) says nothing of whose a lease is
  const containersKnown = s.disk.containerDirs.some((c) => HEX64.test(c.id));
  for (const ns of s.meta.namespaces) {
    if (!moby.has(ns.name)) continue;
    for (const l of ns.leases) {
      const why = deadLeaseWhy(l, s);
      if (why) deadLeases.set(leaseKey(l), { lease: l, why });
      else if (HEX64.test(l.id) && containersKnown && !containerByID.get(l.id)?.hasConfig) {
        const c = containerByID.get(l.id);
        deadLeases.set(leaseKey(l), {
          lease: l,
          why: `a container lease that never expires, named by a container dockerd cannot load (${c ? 'its dir has no config.v2.json' : 'no containers/<id> dir'}): a create or run that died or failed half way; containerd never collects it`,
        });
      }
    }
  }
  const marked = graph.mark();
  const markedWithoutDead = graph.mark(new Set(deadLeases.keys()));
  const counted = new Set<GcNode>();
  const backendOf = (node: GcNode) => {
    const sn = snapByNode.get(node);
    return sn && sn.snapshotter === s.loc.snapshotter ? s.backend.records.get(sn.name) : undefined;
  };
  for (const [key, { lease, why }] of deadLeases) {
    // an expired lease is no root of the mark any more, yet what only it holds is still its to free
    const freed = [...graph.reach(graph.leaseResources(lease))].filter((n) => !markedWithoutDead.has(n) && !counted.has(n));
    const paths: string[] = [];
    for (const n of freed) {
      counted.add(n);
      const { type, key: k } = parseNode(n);
      if (type === 's') {
        const rec = backendOf(n);
        if (rec) paths.push(snapDir(rec.id));
      } else if (type === 'c') {
        const blob = s.disk.blobs.get(k);
        const keptElsewhere = (blobRecords.get(k) ?? []).some((ns2) => markedWithoutDead.has(contentNode(ns2, k)));
        if (blob && !keptElsewhere) paths.push(blob.path);
      } else if (type === 'i') {
        const rec = s.meta.namespaces.find((x) => x.name === lease.namespace)?.ingests.find((i) => ingestNode(lease.namespace, i.ref) === n);
        if (rec) paths.push(ingestDirOf(rec.backendRef));
      }
    }
    paths.sort();
    let bytes = 0;
    for (const p of paths) bytes += sizes.measure(p).bytes;
    const held = paths.length
      ? `; it alone holds the ${paths.length} dir${paths.length === 1 ? '' : 's'} and file${paths.length === 1 ? '' : 's'} listed, which containerd's GC collects once the lease is gone`
      : '; it holds nothing else';
    findings.push({
      kind: HEX64.test(lease.id) && !deadLeaseWhy(lease, s) ? 'containerd-orphan-lease' : 'containerd-dead-lease',
      severity: 'warning',
      paths: paths.length ? paths : [s.loc.metaDb],
      bytes,
      reclaimable: false,
      reason: `lease ${key}: ${why}${held}`,
      affects: noAffects(),
      containerd: { namespace: lease.namespace, lease: lease.id },
    });
  }

  const order = (k: Finding['kind']) => FINDING_KINDS.indexOf(k);
  for (const u of s.disk.unsafe)
    findings.push({ kind: 'unsafe-path', severity: 'error', paths: [u.path], bytes: 0, reclaimable: false, reason: `is ${u.reason}; it is never followed`, affects: noAffects() });
  findings.sort((a, b) => order(a.kind) - order(b.kind) || a.paths[0].localeCompare(b.paths[0]));
  return { findings, graph, marked, markedWithoutDead, deadLeases, snapshotsUntrusted, contentUntrusted };
}
