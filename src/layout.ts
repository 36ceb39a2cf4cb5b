// The layout of a Docker data root, stated once: every id rule, name rule and path layergc knows.
// A leaf module: it imports nothing, and every other part (the store readers, the drivers, purge,
// findings) asks it instead of rebuilding a path or a regex; so it sits beside src/store, which
// imports the drivers, and not in it. Sources: moby's layer/filestore.go, image/fs.go,
// daemon/graphdriver; BuildKit's identity.NewID.

/** 64 lowercase hex digits: every ID rule below is built on this one. */
const HEX = '[a-f0-9]{64}';

/** A sha256 hex digest: a chain ID, image ID, container ID or moby layer ID without its algorithm. */
export const HEX64 = new RegExp(`^${HEX}$`);

/** A sha256 digest with its algorithm, as layerdb and imagedb files write it. */
export const SHA256_DIGEST = new RegExp(`^sha256:${HEX}$`);

/** moby's isValidID for mount-id and init-id: a layer ID, or a container's init layer ID. */
export const MOUNT_ID = new RegExp(`^${HEX}(-init)?$`);

/** A container's init layer: `<mount id>-init`. */
export const INIT_ID = new RegExp(`^${HEX}-init$`);

/** BuildKit snapshot ids are identity.NewID(): 25 chars of [0-9a-z]. */
export const BUILDKIT_ID = /^[0-9a-z]{25}$/;

/** An ID BuildKit might have created (a BuildKit id, or anything that is not moby's own). */
export const mightBeBuildkit = (id: string): boolean => !MOUNT_ID.test(id);

/** A name moby or BuildKit gives a driver layer (other names in a driver's namespace are not Docker's). */
export const isDockerLayerName = (name: string): boolean => MOUNT_ID.test(name) || BUILDKIT_ID.test(name);

/** moby's staging suffix: deleteLayer's layerdb `<chain hex>-<random>-removing`, aufs's and windowsfilter's `<id>-removing`. */
export const MOBY_REMOVING_SUFFIX = '-removing';

/** The name layergc renames a driver dir to before deleting it; the next run finishes it. */
export const STAGED_SUFFIX = '-layergc-removing';

/** `<dir>-<random hex>-removing`: moby's staging name for a layerdb entry, so its own shutdown GC knows it. */
export const mobyRemovingName = (dir: string, randomHex: string): string => `${dir}-${randomHex}${MOBY_REMOVING_SUFFIX}`;

export const isRemovingName = (name: string): boolean => name.endsWith(MOBY_REMOVING_SUFFIX);

/** The chain hex of a `-removing` name, as getOrphan reads it (the part before the first '-'), or undefined. */
export function removingChainHex(name: string): string | undefined {
  const hex = name.split('-')[0];
  return isRemovingName(name) && HEX64.test(hex) ? hex : undefined;
}

/** A driver entry name, with layergc's staging suffix taken off. */
export function unstagedId(name: string): { id: string; staged: boolean } {
  const staged = name.endsWith(STAGED_SUFFIX);
  return { id: staged ? name.slice(0, -STAGED_SUFFIX.length) : name, staged };
}

/** Names the drivers keep for their own bookkeeping in the dirs that hold layer dirs: never a layer's ID. */
const BOOKKEEPING = new Set([
  'l',
  'layers',
  'diff',
  'mnt',
  'quotas',
  'subvolumes',
  'metadata',
  'graph',
  'dir',
  'work',
  'merged',
  'lower',
  'link',
  'committed',
  'deviceset-metadata',
  'transaction-metadata',
]);

/**
 * A driver ID is used as one path component under the driver home: never empty (a name that is
 * only a staging suffix), a separator, a dot-dir, a driver's bookkeeping dir, a staging name, or
 * text that is not the name on disk (invalid UTF-8 reads as U+FFFD).
 */
export function unsafeDriverId(id: string): string | null {
  if (id === '') return 'is empty';
  if (id.includes('/') || id.includes('\0')) return 'contains a path separator or NUL';
  if (id === '.' || id === '..') return 'is a relative directory name';
  if (BOOKKEEPING.has(id)) return "names a storage driver's own bookkeeping directory";
  if (isRemovingName(id)) return 'is a staging name, not a layer ID';
  if (id.includes('\uFFFD')) return 'is not valid UTF-8';
  return null;
}

/** Whether an id refused by unsafeDriverId still names exactly one entry of the driver home (a staging or bookkeeping name). */
export const namesOneEntry = (id: string): boolean => !/^\.{0,2}$|[/\0\uFFFD]/.test(id);

/** userns-remap keeps the store in `<root>/<uid>.<gid>` (daemon_unix.go). */
export const REMAP_SUBDIR = /^\d+\.\d+$/;

/** The `<uid>.<gid>` a userns-remapped data root ends in, and the root it sits in; undefined for any other path. */
export function remapOf(dataRoot: string): { parent: string; subdir: string } | undefined {
  const i = dataRoot.lastIndexOf('/');
  const subdir = dataRoot.slice(i + 1);
  return i > 0 && REMAP_SUBDIR.test(subdir) ? { parent: dataRoot.slice(0, i), subdir } : undefined;
}

// Paths. Every function takes the dir it is relative to; locate decides the data root and driver.

const hexPart = (digest: string): string => digest.slice(digest.indexOf(':') + 1);

/** `<root>/image`: one `<driver>/` per graph driver the root was used with. */
export const imageRoot = (dataRoot: string): string => `${dataRoot}/image`;

/** The dirs of one driver's store in a data root. */
export function storePaths(dataRoot: string, driver: string): { imageDir: string; layerdb: string; driverHome: string } {
  const imageDir = `${imageRoot(dataRoot)}/${driver}`;
  return { imageDir, layerdb: layerdbOf(imageDir), driverHome: `${dataRoot}/${driver}` };
}

/** `image/<driver>/layerdb`: its presence is what makes a dir a graph-driver data root. */
export const layerdbOf = (imageDir: string): string => `${imageDir}/layerdb`;

/** layerdb's three dirs: sha256/<chain hex> (layers, and `-removing` ones), mounts/<container id>, tmp/write-set-*. */
export const layerdbPaths = (layerdb: string) => ({
  sha256: `${layerdb}/sha256`,
  mounts: `${layerdb}/mounts`,
  tmp: `${layerdb}/tmp`,
});

export const mountDir = (layerdb: string, containerId: string): string => `${layerdbPaths(layerdb).mounts}/${containerId}`;

/** A layer registration in progress (or never committed): layerdb/tmp/write-set-<random>. */
export const WRITE_SET_PREFIX = 'write-set-';

/** Files of a layerdb/sha256 entry (or a `-removing` or write-set one) that others than the reader name. */
export const tarSplitPath = (entryDir: string): string => `${entryDir}/tar-split.json.gz`;
export const cacheIdPath = (entryDir: string): string => `${entryDir}/cache-id`;

/** The image store: configs by digest, and per-image metadata (the legacy builder's parent). */
export const imagedbPaths = (imageDir: string) => ({
  content: `${imageDir}/imagedb/content/sha256`,
  metadata: `${imageDir}/imagedb/metadata/sha256`,
});
export const imageMetadataDir = (imageDir: string, imageId: string): string => `${imagedbPaths(imageDir).metadata}/${hexPart(imageId)}`;

/** The pull and push caches (distribution/metadata): which registry blobs hold which diff IDs. */
export const distributionPaths = (imageDir: string) => ({
  diffidByDigest: `${imageDir}/distribution/diffid-by-digest/sha256`,
  v2metadataByDiffid: `${imageDir}/distribution/v2metadata-by-diffid/sha256`,
});

/** Tags and digests (reference/store.go); the daemon refuses to start when it does not parse. */
export const repositoriesJson = (imageDir: string): string => `${imageDir}/repositories.json`;

export const containersDir = (dataRoot: string): string => `${dataRoot}/containers`;
export const containerDir = (dataRoot: string, id: string): string => `${containersDir(dataRoot)}/${id}`;
export const CONTAINER_CONFIG = 'config.v2.json';

/** BuildKit's state (snapshots.db and the cache and history dbs beside it). */
export const buildkitDir = (dataRoot: string): string => `${dataRoot}/buildkit`;

/** Docker 29's containerd image store inside the data root (no layerdb then). */
export const containerdDaemonDir = (dataRoot: string): string => `${dataRoot}/containerd/daemon`;

/** dockerd's own top-level dirs of a data root (beside `<driver>/` and layergc's state). */
export const DOCKER_DIRS: readonly string[] = ['image', 'containers', 'buildkit', 'volumes', 'network', 'plugins', 'swarm', 'runtimes', 'tmp', 'containerd', 'trust'];

/** layergc's own state in a data root: its lock and journal. */
export const stateDir = (dataRoot: string): string => `${dataRoot}/layergc`;
export const lockPath = (dataRoot: string): string => `${stateDir(dataRoot)}/lock`;
export const journalPath = (dataRoot: string): string => `${stateDir(dataRoot)}/journal.jsonl`;
