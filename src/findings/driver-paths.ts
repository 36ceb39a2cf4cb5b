// Every path of a driver ID: what the adapter names, plus a dir an interrupted purge left staged.
import type { ScanContext } from './types.js';
import type { Store } from '../store/model.js';

/** Staged dirs by driver ID, indexed once per store: a lookup per ID was a walk of every entry. */
const stagedIndex = new WeakMap<Store, Map<string, string[]>>();

function stagedPathsOf(store: Store, id: string): string[] {
  let index = stagedIndex.get(store);
  if (!index) {
    index = new Map();
    for (const e of store.driverEntries) if (e.staged) index.set(e.id, [...(index.get(e.id) ?? []), e.path]);
    stagedIndex.set(store, index);
  }
  return index.get(id) ?? [];
}

export async function driverPaths(ctx: Pick<ScanContext, 'store'>, id: string): Promise<string[]> {
  const paths = await ctx.store.driver.pathsOf(id);
  for (const p of stagedPathsOf(ctx.store, id)) if (!paths.includes(p)) paths.push(p);
  return paths;
}
