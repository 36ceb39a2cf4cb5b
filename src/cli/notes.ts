// Notes that qualify a report: what layergc could not read, and so treated as in use.
import type { Store } from '../store/model.js';

export function buildkitNote(store: Store): string | undefined {
  if (store.buildkit.state !== 'unreadable') return undefined;
  return `BuildKit's database ${store.buildkit.dbPath} could not be read (${store.buildkit.reason ?? 'unknown reason'}): every driver dir BuildKit might own is kept, and no layer is called unreferenced`;
}
