// The read-only model of one Docker data root: everything scan, explain, purge and verify need,
// read once. Types only: the readers (layerdb.ts, images.ts, containers.ts, buildkit.ts,
// daemon.ts, sources.ts) fill them in.
import type { DriverAdapter, DriverEntry } from '../drivers/types.js';

/** Something that would lead out of the data root: reported, never followed. */
export interface Unsafe {
  path: string;
  reason: string;
}

export interface StoreLocation {
  dataRoot: string; // real path, no trailing slash
  driver: string;
  imageDir: string; // <root>/image/<driver>
  layerdb: string; // <root>/image/<driver>/layerdb
  driverHome: string; // <root>/<driver>
  configFile?: string; // the daemon config that was read, if any
  notes: string[]; // how the location was decided, for --verbose and explain
}

export interface Store {
  loc: StoreLocation;
  layerdb: LayerDb;
  images: ImageDb;
  containers: ContainerRecord[];
  buildkit: BuildkitOwnership;
  driver: DriverAdapter;
  driverEntries: DriverEntry[];
  daemon: DaemonInfo;
  unsafe: Unsafe[];
  /** Reference sources that cannot be read: every driver dir they could claim is kept. */
  unknownSources: UnknownSource[];
}

// layerdb (layerdb.ts)

export interface LayerRecord {
  chainId: string; // "sha256:<hex>", from the directory name
  dir: string;
  diffId?: string;
  size?: number;
  cacheId?: string;
  /** A cache-id refused as a layer ID that still names one entry of the driver home: never garbage. */
  namesDir?: string;
  parent?: string; // chain ID of the parent, when the file exists and parses
  hasTarSplit: boolean;
  /** Why the daemon's loadLayer fails on this entry's own files; empty when it loads. */
  problems: string[];
}

export interface RemovingRecord {
  name: string;
  dir: string;
  chainId: string; // from the part before the first '-'
  cacheId?: string; // undefined: missing or empty, so moby skips it forever
  cacheIdProblem?: string;
}

export interface WriteSetRecord {
  name: string;
  dir: string;
  cacheId?: string;
}

export interface MountRecord {
  name: string;
  dir: string;
  mountId?: string;
  initId?: string;
  parent?: string;
  problems: string[];
}

export interface LayerDb {
  root: string;
  layers: Map<string, LayerRecord>;
  removing: RemovingRecord[];
  writeSets: WriteSetRecord[];
  mounts: MountRecord[];
  unsafe: Unsafe[];
}

// imagedb and repositories.json (images.ts)

export interface ImageRecord {
  id: string; // "sha256:<hex>"
  path: string;
  tags: string[]; // familiar references from repositories.json
  diffIds: string[];
  chainIds: string[]; // bottom to top
  /** Why the daemon skips this image at restore ("invalid image"), if it does. */
  problem?: string;
  /** imagedb/metadata/sha256/<hex>/parent: the image it was built on (the legacy builder's steps) */
  parent?: string;
  /**
   * The config could not be read, parsed or trusted (missing, not a file, unreadable, not JSON,
   * not its digest): which layers the image uses is unknown, so no layer may be called unused.
   */
  layersUnknown?: boolean;
}

export interface ImageDb {
  images: ImageRecord[];
  /** repositories.json could not be parsed: the daemon will not start. */
  repositoriesProblem?: string;
}

// containers/ (containers.ts)

export interface ContainerRecord {
  id: string;
  name: string; // without the leading "/"
  image?: string; // image ID, "sha256:<hex>"
  driver?: string;
  problem?: string;
}

// BuildKit (buildkit.ts)

export interface BuildkitSource {
  /** file name inside `<data-root>/buildkit/` */
  file: string;
  state: 'absent' | 'read' | 'unreadable';
  reason?: string;
}

export interface BuildkitOwnership {
  dbPath: string;
  state: 'absent' | 'read' | 'unreadable'; // absent: no buildkit/snapshots.db at all
  reason?: string; // for 'unreadable': why, one sentence
  /**
   * Every id BuildKit may own as a graph-driver dir: `snapshotDirIds` plus snapshot names, cache
   * record ids and lease resource ids from the other BuildKit databases. A dir with one of these
   * names belongs to BuildKit; most names are not dirs at all.
   */
  driverIds: Set<string>;
  /** 'sha256:<hex>' chain ids BuildKit references */
  chainIds: Set<string>;
  /** The exact set of dirs snapshots.db describes: prepared snapshot keys and committed targets. */
  snapshotDirIds: Set<string>;
  /** what each BuildKit database contributed */
  sources: BuildkitSource[];
}

// running dockerds (daemon.ts)

export interface DaemonProcess {
  pid: number;
  dataRoot: string;
  userns: boolean;
}

export interface DaemonInfo {
  running: boolean;
  processes: DaemonProcess[];
}

// reference sources that cannot be read (sources.ts)

export type SourceName = 'layerdb/sha256' | 'layerdb/mounts' | 'imagedb/content/sha256' | 'containers';

export interface UnknownSource {
  source: SourceName;
  path: string;
  why: string;
}
