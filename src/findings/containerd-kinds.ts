// Finding kinds of the containerd image store (Docker's features.containerd-snapshotter), in
// report order: garbage first, then what only a meta.db rewrite frees, then what is broken.
export const CONTAINERD_KINDS = [
  'containerd-orphan-snapshot',
  'containerd-orphan-blob',
  'containerd-orphan-ingest',
  'containerd-configless-container',
  'containerd-stray-blob-name',
  'containerd-dead-lease',
  'containerd-orphan-lease',
  'containerd-orphan-record',
  'containerd-missing-snapshot',
  'containerd-db-mismatch',
  'containerd-blob-mismatch',
  'containerd-layer-mismatch',
] as const;

export type ContainerdKind = (typeof CONTAINERD_KINDS)[number];

/** What `layergc purge` removes from a stopped containerd store, by plain file operations. */
export const CONTAINERD_GARBAGE: readonly ContainerdKind[] = [
  'containerd-orphan-snapshot',
  'containerd-orphan-blob',
  'containerd-orphan-ingest',
  'containerd-configless-container',
  'containerd-stray-blob-name',
];

/** What `layergc purge` drops from meta.db by its offline rewrite (containerd's GC frees what they held). */
export const CONTAINERD_LEASE_KINDS: readonly ContainerdKind[] = ['containerd-dead-lease', 'containerd-orphan-lease'];

export const CONTAINERD_KIND_INFO: Record<ContainerdKind, string> = {
  'containerd-orphan-snapshot': 'a snapshots/<id> dir (or new-* temp dir) the overlayfs snapshotter has no record of: a failed or interrupted removal',
  'containerd-orphan-blob': 'a blobs/sha256 file no namespace of meta.db has a record of',
  'containerd-orphan-ingest': 'an ingest dir whose ref is missing, empty or names no ingest record: containerd never aborts it',
  'containerd-configless-container': 'a containers/<id> dir without config.v2.json: dockerd skips it at every start',
  'containerd-dead-lease': 'a lease of an operation that died with the daemon (an expiring client or BuildKit temporary lease), with what only it holds',
  'containerd-orphan-lease': 'a never-expiring lease named by a container ID that dockerd cannot load: containerd never collects it',
  'containerd-orphan-record': "a snapshotter record no meta.db snapshot names; containerd's next snapshot GC removes it",
  'containerd-stray-blob-name': "a name in blobs/ that is not a digest: it stops containerd's content GC (no blob or ingest is collected while it is there)",
  'containerd-missing-snapshot': 'a snapshot record whose dir is gone: its images and containers fail to run',
  'containerd-db-mismatch': "a database that looks empty or incomplete while the disk is full: containerd's own GC would delete live data",
  'containerd-blob-mismatch': 'a blob whose sha256 or size does not match its name or record (verify): docker save writes a broken tar',
  'containerd-layer-mismatch':
    "an unpacked layer (snapshot dir) that does not hold what its blob's tar holds, or a blob whose uncompressed bytes are not the image's diff ID (verify): containers see damaged files",
};
