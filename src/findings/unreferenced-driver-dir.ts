// unreferenced-driver-dir: a dir in the driver home that no layer's cache-id, no mount's
// mount-id or init-id and no BuildKit snapshot owns (moby#45939: prune never sees these).
import { BUILDKIT_ID, INIT_ID, MOUNT_ID, STAGED_SUFFIX } from '../layout.js';
import { measure } from './measure.js';
import { noAffects, type Finding, type FindingModule } from './types.js';

function origin(id: string): string {
  if (INIT_ID.test(id)) return 'the init layer of a container that no longer exists (a failed create or removal)';
  if (MOUNT_ID.test(id)) return 'most likely a layer whose registration was interrupted (killed pull or load, crash) or a failed container create';
  if (BUILDKIT_ID.test(id)) return 'a BuildKit snapshot that BuildKit no longer records';
  return 'not a name moby or BuildKit gives a layer';
}

export const unreferencedDriverDirs: FindingModule = async (ctx) => {
  const out: Finding[] = [];
  const { driver } = ctx.store;
  for (const e of ctx.store.driverEntries) {
    if (e.stat.isSymbolicLink()) continue; // unsafe-path reports it
    const held = e.staged ? undefined : ctx.held.get(e.id);
    if (ctx.refs.claims.has(e.id) || (ctx.kept.has(e.id) && !held)) continue; // owned, kept, or part of another finding
    if (ctx.refs.claims.has(`${e.id}${STAGED_SUFFIX}`)) continue; // a claimed dir of our staging name is never our leftover
    const paths = e.staged ? [e.path] : await driver.pathsOf(e.id);
    if (paths.length === 0) continue; // gone since the listing: a running daemon removed it
    const m = measure(ctx, paths);
    const reason = e.staged
      ? 'an earlier layergc purge that did not finish (interrupted, or stopped by a file it could not remove) renamed this dir for removal; the next purge finishes it'
      : held
        ? `no layer, mount or BuildKit snapshot that layergc can read uses driver dir ${e.id}, but it is kept: ${held.why}`
        : `no layer, mount or BuildKit snapshot uses driver dir ${e.id}: ${origin(e.id)}`;
    out.push({
      kind: 'unreferenced-driver-dir',
      severity: 'warning',
      cacheId: e.id,
      paths,
      bytes: m.bytes,
      reclaimable: driver.removal !== 'report-only' && !held,
      reason: driver.removal === 'report-only' ? `${reason} (${driver.removalNote ?? 'report-only driver'})` : reason,
      affects: noAffects(),
      removal: { type: 'driver-dir', driverId: e.id },
      staged: e.staged,
      ...(held ? { kept: held } : {}),
      newestMs: m.newestMs,
      mountsInside: m.mountsInside,
    });
  }
  return out;
};
