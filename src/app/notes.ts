// Notes that qualify a report: what layergc could not read, and so treated as in use.
import type { Store } from '../store/model.js';
import { SOURCE_CLAIMS } from '../store/sources.js';

/** One note per reference source that cannot be read: what purge keeps because of it. */
export function sourceNotes(store: Store): string[] {
  return store.unknownSources.map((u) => `${u.path} ${u.why}: layergc cannot tell ${SOURCE_CLAIMS[u.source]}, so purge removes none of the driver dirs it could claim and calls no layer unreferenced`);
}

/** Images whose layers are unknown (config missing, unreadable or untrusted): nothing is unreferenced. */
export function imagesNote(store: Store): string | undefined {
  const unknown = store.images.images.filter((i) => i.layersUnknown);
  if (!unknown.length) return undefined;
  const names =
    unknown
      .slice(0, 3)
      .map((i) => i.tags[0] ?? i.id)
      .join(', ') + (unknown.length > 3 ? `, and ${unknown.length - 3} more` : '');
  return `the config of ${unknown.length === 1 ? 'image' : `${unknown.length} images`} ${names} could not be read or trusted, so which layers ${unknown.length === 1 ? 'it uses' : 'they use'} is unknown: no layer is called unreferenced`;
}

export function buildkitNote(store: Store): string | undefined {
  if (store.buildkit.state !== 'unreadable') return undefined;
  return `BuildKit's database ${store.buildkit.dbPath} could not be read (${store.buildkit.reason ?? 'unknown reason'}): every driver dir BuildKit might own is kept, and no layer is called unreferenced`;
}
