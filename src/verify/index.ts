// `layergc verify`: prove each layer's content against its DiffID offline, by rebuilding the tar stream from
// tar-split.json.gz plus the storage driver's files, and name the damaged files. By job: tar-names.ts
// (entry names), content-roots.ts (opening files inside the layer's roots), hasher.ts (sha256 on a worker),
// sparse.ts (GNU sparse entries), passes.ts (the hash and CRC passes), layer.ts (one layer's verdict),
// pool.ts (many layers on worker threads).

export type { FileProblem } from './tar-names.js';
export { Crc64, crc64 } from './crc64.js';
export { readTarSplit, TarSplitError, type TarSplitEntry, type TarSplitErrorKind } from './tarsplit.js';
export { verifyLayer, type VerifyKind, type VerifyLayerOptions, type VerifyResult, type VerifyTarget } from './layer.js';
export { prestartHasher } from './hasher.js';
export { verifyLayers, type VerifyLayersOptions, type VerifyProgress } from './pool.js';
