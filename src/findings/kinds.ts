// One sentence per finding kind: shown in the human report, --help and the README.
import type { FindingKind } from './types.js';
import { CONTAINERD_KIND_INFO } from './containerd-kinds.js';

export const KIND_INFO: Record<FindingKind, string> = {
  'removing-orphan': 'a layer moby renamed to <chain>-<random>-removing whose removal failed; the daemon retries only at a clean shutdown',
  'stale-write-set': 'layerdb/tmp/write-set-*: a layer registration that never committed',
  'unreferenced-driver-dir': 'a driver dir that no layer, mount or BuildKit snapshot owns',
  'dangling-link': 'an overlay2 l/<id> link whose layer dir is gone',
  'unreferenced-layer': 'a layer no image, container or BuildKit snapshot uses (not purged by default)',
  'missing-driver-data': "a layer whose cache-id dir is gone: its images' containers fail to start",
  'invalid-layer-metadata': 'a layerdb entry the daemon cannot load (missing or bad diff, size, cache-id, parent; an empty dir)',
  'missing-parent': 'a layer whose parent is not in the layer store',
  'chain-id-mismatch': 'a layerdb dir whose name is not the chain ID of its parent and diff',
  'driver-data-damaged': 'a layer or container dir in the driver home that is incomplete or inconsistent',
  'broken-mount': "a container's layer mount the daemon cannot load",
  'image-missing-layers': 'an image whose layers do not all load: the daemon skips it at start',
  'invalid-image': 'an image config or repositories.json the daemon rejects',
  'unsafe-path': 'a path that would lead out of the data root; reported, never followed',
  'content-mismatch': 'a layer whose files do not rebuild its DiffID (verify)',
  'tar-split-missing': 'a layer without tar-split.json.gz: push and save fail (verify)',
  'tar-split-corrupt': 'a layer whose tar-split.json.gz is truncated or unreadable (verify)',
  'sparse-unverifiable': 'a layer with sparse files that tar-split cannot rebuild; not damage (verify)',
  ...CONTAINERD_KIND_INFO,
};
