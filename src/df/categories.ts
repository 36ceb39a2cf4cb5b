// The categories `layergc df` splits a data root into. Names are part of the interface (--json,
// metrics, docs/df.schema.json); the order is the tie-break when two hold the same bytes.
import { GARBAGE_KINDS } from '../findings/types.js';

export const DF_CATEGORIES = [
  'image-layers',
  'container-layers',
  'buildkit-snapshots',
  'buildkit',
  'container-logs',
  'container-files',
  'volumes',
  'image-metadata',
  'store-bookkeeping',
  'removing-orphan',
  'stale-write-set',
  'unreferenced-driver-dir',
  'dangling-link',
  'unreferenced-layer',
  'broken-layer',
  'kept-driver-dir',
  'layergc',
  'linked-outside',
  'other',
] as const;

export type DfCategory = (typeof DF_CATEGORIES)[number];

/** One line on what each category holds, for the human view. */
export const CATEGORY_LABEL: Record<DfCategory, string> = {
  'image-layers': 'image layers',
  'container-layers': 'container RW and init layers',
  'buildkit-snapshots': 'BuildKit cache snapshots',
  buildkit: "BuildKit's own dirs",
  'container-logs': 'container logs',
  'container-files': 'container files (config, hosts, ...)',
  volumes: 'volumes',
  'image-metadata': 'image configs and tags',
  'store-bookkeeping': 'layer store dirs and l/ links',
  'removing-orphan': 'garbage: removing-orphan',
  'stale-write-set': 'garbage: stale-write-set',
  'unreferenced-driver-dir': 'garbage: unreferenced-driver-dir',
  'dangling-link': 'garbage: dangling-link',
  'unreferenced-layer': 'unreferenced-layer (--include)',
  'broken-layer': 'broken layers',
  'kept-driver-dir': 'unclaimed dirs kept (in use below)',
  layergc: "layergc's own files",
  'linked-outside': 'hard links also outside the root',
  other: 'other',
};

/** Categories that are scan findings of the same name: their bytes are the findings' bytes. */
export const FINDING_CATEGORIES: readonly DfCategory[] = [...(GARBAGE_KINDS as readonly DfCategory[]), 'unreferenced-layer'];

/** What `purge --yes` removes by default. */
export const PURGED_CATEGORIES: readonly DfCategory[] = GARBAGE_KINDS as readonly DfCategory[];
