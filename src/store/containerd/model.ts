// The read-only model of a containerd image store (Docker's `features.containerd-snapshotter`):
// containerd's meta.db, the overlayfs snapshotter's metadata.db, and the directories beside them.
// Layout: /work/shared/docs/containerd-store-format.md (§2-§5).

export type Labels = Map<string, string>;

export interface MetaImage {
  namespace: string;
  name: string;
  target?: string;
  labels: Labels;
}
export interface MetaContainer {
  namespace: string;
  id: string;
  image: string;
  snapshotter: string;
  snapshotKey: string;
  labels: Labels;
}
export interface MetaSnapshot {
  namespace: string;
  snapshotter: string;
  key: string;
  /** The key in the snapshotter's own database: "<namespace>/<seq>/<key>". */
  name: string;
  parent?: string;
  labels: Labels;
}
export interface MetaBlob {
  namespace: string;
  digest: string;
  size?: number;
  labels: Labels;
}
export interface MetaIngest {
  namespace: string;
  ref: string;
  /** The content store's ref, "<namespace>/<seq>/<ref>"; its ingest dir is named sha256(this). */
  backendRef: string;
  /** Unix ms; absent when a lease holds the ingest. */
  expireAt?: number;
  expected?: string;
}
export interface MetaLease {
  namespace: string;
  id: string;
  labels: Labels;
  snapshots: { snapshotter: string; key: string }[];
  content: string[];
  ingests: string[];
  /** schema 4 (containerd 2.x) only */
  images: string[];
}
/** containerd 2.x sandboxes: roots, with their label references. */
export interface MetaSandbox {
  namespace: string;
  id: string;
  labels: Labels;
}

export interface MetaNamespace {
  name: string;
  images: MetaImage[];
  containers: MetaContainer[];
  snapshots: MetaSnapshot[];
  blobs: MetaBlob[];
  ingests: MetaIngest[];
  leases: MetaLease[];
  sandboxes: MetaSandbox[];
}

export interface MetaDb {
  version: number;
  namespaces: MetaNamespace[];
}

/** snapshots.Kind as the snapshotter stores it. */
export const SNAPSHOT_KIND: Record<number, string> = { 1: 'view', 2: 'active', 3: 'committed' };

export interface BackendSnapshot {
  key: string;
  id: number;
  kind: number;
  parent?: string;
}

/** The overlayfs snapshotter's metadata.db: backend key -> record. */
export interface SnapshotterDb {
  records: Map<string, BackendSnapshot>;
  byId: Map<number, BackendSnapshot>;
}

export interface IngestDir {
  name: string;
  path: string;
  ref: { state: 'ok'; text: string } | { state: 'missing' | 'empty' | 'unreadable'; why: string };
}
export interface ContainerDir {
  id: string;
  path: string;
  hasConfig: boolean /** docker's name, without the leading / */;
  name?: string;
}

export interface ContainerdDisk {
  /** snapshots/<entry>: numeric ids, new-* temp dirs, anything else */
  snapshotDirs: { name: string; path: string; isDir: boolean }[];
  /** blobs/sha256/<hex> with their sizes */
  blobs: Map<string, { path: string; size: number }>;
  /** names in blobs/ (or blobs/sha256/) that are not digests: they stop containerd's content GC */
  strayBlobNames: string[];
  ingests: IngestDir[];
  /** <data-root>/containers/<id> */
  containerDirs: ContainerDir[];
  /** symlinks where containerd keeps dirs or files: reported, never followed */
  unsafe: { path: string; reason: string }[];
}

export interface ContainerdLocation {
  dataRoot: string;
  /** containerd's root (…/containerd/daemon for a managed one, /var/lib/containerd for the system one) */
  root: string;
  managed: boolean;
  metaDb: string;
  snapshotter: 'overlayfs';
  snapshotterRoot: string;
  contentRoot: string;
  /** The namespaces that belong to this dockerd: the only ones ever acted on. */
  mobyNamespaces: string[];
  /** <exec-root>/containerd/containerd.pid when known */
  pidFiles: string[];
  configFile?: string;
  notes: string[];
}

export interface Holder {
  what: string;
  pid?: number;
}

export interface ContainerdStore {
  loc: ContainerdLocation;
  meta: MetaDb;
  backend: SnapshotterDb;
  disk: ContainerdDisk;
  /** containerd, dockerd, bbolt locks and mounts that hold the store now */
  holders: Holder[];
  /** When the store was read (ms): the clock lease expiry is judged by. */
  now: number;
}
