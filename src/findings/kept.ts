// Driver dirs kept although no claim names them: what a kept dir stacks on (overlay2 `lower`,
// aufs `layers/<id>`), dirs BuildKit might own while its databases cannot be read, and container
// dir pairs (<id>, <id>-init) while some mount's mount-id and init-id are both unreadable.
import { keepingClaims, mightBeBuildkit, type DriverClaim, type References } from '../store/references.js';
import { MOUNT_ID } from '../store/layerdb.js';
import type { Store } from '../store/model.js';

/** Driver ID -> why it is kept. */
export type InferredKeep = Map<string, string>;

/** `gone`: claims of what is being removed with the dirs they name (a repair), which keep nothing. */
export async function inferKept(store: Store, refs: References, gone?: (c: DriverClaim) => boolean): Promise<InferredKeep> {
  const kept: InferredKeep = new Map();
  const { driver } = store;
  const entries = new Set(store.driverEntries.filter((e) => !e.staged).map((e) => e.id));
  if (refs.buildkitUnknown) {
    for (const id of entries) if (mightBeBuildkit(id)) kept.set(id, "BuildKit's databases cannot be read, and BuildKit may own it");
  }
  if (store.layerdb.mounts.some((m) => !m.mountId && !m.initId)) {
    for (const id of entries) {
      const rw = id.endsWith('-init') ? id.slice(0, -5) : id;
      if (MOUNT_ID.test(id) && entries.has(rw) && entries.has(`${rw}-init`) && !refs.claims.has(rw) && !refs.claims.has(`${rw}-init`)) {
        kept.set(id, "it looks like a container's dir, and a container mount's mount-id and init-id cannot be read");
      }
    }
  }
  if (!driver.parentsOf) return kept;
  // every dir a kept one stacks on is kept; lower files list all ancestors, so one level suffices
  const tops = [...refs.claims].filter(([, c]) => keepingClaims(c).some((x) => !gone?.(x))).map(([id]) => id).concat([...kept.keys()]);
  for (const id of tops) {
    for (const p of await driver.parentsOf(id)) if (!kept.has(p)) kept.set(p, `driver dir ${id}, which is in use, stacks on it`);
  }
  return kept;
}
