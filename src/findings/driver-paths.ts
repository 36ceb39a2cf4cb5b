// Every path of a driver ID: what the adapter names, plus a dir an interrupted purge left staged.
import type { ScanContext } from './types.js';

export async function driverPaths(ctx: Pick<ScanContext, 'store'>, id: string): Promise<string[]> {
  const paths = await ctx.store.driver.pathsOf(id);
  for (const e of ctx.store.driverEntries) if (e.staged && e.id === id && !paths.includes(e.path)) paths.push(e.path);
  return paths;
}
