// Driver dirs kept although no claim names them: what a kept dir stacks on (overlay2 `lower`,
// aufs `layers/<id>`), dirs BuildKit might own while its databases cannot be read, and container
// dir pairs (<id>, <id>-init) while some mount's mount-id and init-id are both unreadable, or a
// container has no mount entry at all.
import { keepingClaims, type DriverClaim, type References } from '../store/references.js';
import { short } from '../store/digest.js';
import { HEX64, layerdbPaths, mightBeBuildkit, MOUNT_ID } from '../layout.js';
import { SOURCE_CLAIMS } from '../store/sources.js';
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
  // a container whose layerdb/mounts/<id> is gone has lost its mount-id and init-id just the same
  const mounted = new Set(store.layerdb.mounts.map((m) => m.name));
  const unmounted = store.unknownSources.some((u) => u.source === 'layerdb/mounts') ? undefined : store.containers.find((c) => !mounted.has(c.id));
  const lostIds = store.layerdb.mounts.some((m) => !m.mountId && !m.initId);
  if (lostIds || unmounted) {
    const why = lostIds
      ? "it looks like a container's dir, and a container mount's mount-id and init-id cannot be read"
      : `it looks like a container's dir, and container ${unmounted!.name} has no layerdb/mounts entry naming its dirs`;
    for (const id of entries) {
      const rw = id.endsWith('-init') ? id.slice(0, -5) : id;
      if (MOUNT_ID.test(id) && entries.has(rw) && entries.has(`${rw}-init`) && !refs.claims.has(rw) && !refs.claims.has(`${rw}-init`)) {
        kept.set(id, why);
      }
    }
  }
  if (!driver.parentsOf) return kept;
  // every dir a kept one stacks on is kept; lower files list all ancestors, so one level suffices
  const tops = [...refs.claims]
    .filter(([, c]) => keepingClaims(c).some((x) => !gone?.(x)))
    .map(([id]) => id)
    .concat([...kept.keys()]);
  for (const id of tops) {
    for (const p of await driver.parentsOf(id)) if (!kept.has(p)) kept.set(p, `driver dir ${id}, which is in use, stacks on it`);
  }
  await keepUnknownLowers(store, refs, kept, entries, gone);
  return kept;
}

/**
 * A dir in use whose own lower list cannot be read whole (truncated, garbage, missing), while the
 * layer store does not name each of its ancestors' dirs either, may stack on any unclaimed dir.
 */
async function keepUnknownLowers(store: Store, refs: References, kept: InferredKeep, entries: Set<string>, gone?: (c: DriverClaim) => boolean): Promise<void> {
  const { driver } = store;
  const { layers } = store.layerdb;
  const keeps = (id: string) => keepingClaims(refs.claims.get(id)).filter((c) => !gone?.(c));
  const free = [...entries].filter((id) => !keeps(id).length && !kept.has(id));
  if (!driver.lowersUnknown || !free.length) return;
  // every ancestor of `chainId` is in the layer store with a cache-id naming a dir; memoized, as
  // every layer of a chain asks it of the same ancestors (a cycle answers false)
  const namedMemo = new Map<string, boolean>();
  const named = (chainId: string | undefined): boolean => {
    const path: string[] = [];
    let answer = true;
    for (; chainId; chainId = layers.get(chainId)?.parent) {
      const known = namedMemo.get(chainId);
      if (known !== undefined) {
        answer = known;
        break;
      }
      const rec = layers.get(chainId);
      if (!rec?.cacheId || !entries.has(rec.cacheId) || rec.problems.some((p) => p.startsWith('parent'))) {
        answer = false;
        break;
      }
      path.push(chainId);
      namedMemo.set(chainId, false); // until answered: a walk that comes back here is a cycle
    }
    for (const id of path) namedMemo.set(id, answer);
    return answer;
  };
  for (const id of refs.claims.keys()) {
    for (const c of keeps(id)) {
      const parent = c.kind === 'layer' ? layers.get(c.chainId)?.parent : c.kind === 'mount' ? c.mount.parent : undefined;
      const hasParent = c.kind === 'mount' ? c.role === 'mount-id' || !!parent : !!parent;
      if (c.kind !== 'buildkit' && named(parent) && (c.kind !== 'mount' || c.role === 'init-id' || !!c.mount.initId)) continue;
      const why = await driver.lowersUnknown(id, hasParent);
      if (!why) continue;
      for (const f of free) if (!kept.has(f)) kept.set(f, `driver dir ${id}, which is in use, may stack on it: its ${why}, and the layer store does not name all its lowers`);
      return;
    }
  }
}

export type HeldCause = 'unknown-source' | 'lost-cache-id';
/** Driver ID -> why it is reported but kept, and whether repairing lost cache-ids can resolve it. */
export type Held = Map<string, { why: string; cause: HeldCause }>;

/**
 * Unclaimed driver dirs that are reported but kept (not purged by default), with why: while a
 * reference source cannot be read, every dir it could claim; while a layer store entry has lost its
 * cache-id, every dir that may be its only copy (unless the dir's own `lower` chain rules it out).
 * Each is added to `kept` too, so no garbage that names it takes it along.
 */
export async function inferHeld(store: Store, refs: References, kept: InferredKeep): Promise<Held> {
  const held: Held = new Map();
  const free = store.driverEntries.filter((e) => !e.staged && !e.stat.isSymbolicLink() && !refs.claims.has(e.id) && !kept.has(e.id)).map((e) => e.id);
  const hold = (id: string, why: string, cause: HeldCause) => {
    if (!held.has(id)) held.set(id, { why, cause });
  };
  for (const u of store.unknownSources) {
    const why = `${u.path} ${u.why}, so layergc cannot tell ${SOURCE_CLAIMS[u.source]}; it removes none of them`;
    if (u.source === 'layerdb/sha256') for (const id of free) hold(id, why, 'unknown-source');
    if (u.source === 'layerdb/mounts') for (const id of free) if (MOUNT_ID.test(id)) hold(id, why, 'unknown-source');
  }
  // entries that lost their cache-id: symlinked entries too, whose files are never read
  const lost: { chainId: string; why: string }[] = [];
  for (const l of store.layerdb.layers.values()) {
    if (!l.cacheId) lost.push({ chainId: l.chainId, why: l.problems.find((p) => p.includes('cache-id')) ?? 'its cache-id cannot be read' });
  }
  const sha256 = `${layerdbPaths(store.loc.layerdb).sha256}/`;
  for (const u of store.unsafe) {
    const name = u.path.startsWith(sha256) ? u.path.slice(sha256.length) : '';
    if (HEX64.test(name)) lost.push({ chainId: `sha256:${name}`, why: 'its entry is a symlink, never read' });
  }
  if (lost.length) {
    const { driver } = store;
    const lowerOf = new Map<string, string[] | undefined>();
    for (const id of free) {
      if (id.endsWith('-init')) continue; // a container's init layer, never a layer's data
      // only a lower list read whole rules a dir out: a power loss empties cache-id and lower alike
      const whole = driver.parentsOf && !(await driver.lowersUnknown?.(id, false));
      lowerOf.set(id, whole ? await driver.parentsOf!(id) : undefined);
    }
    for (const e of lost) {
      // the parent is known only from an entry whose other files are readable (a wiped entry, moby#44909, says nothing)
      const rec = store.layerdb.layers.get(e.chainId);
      let parentCache: string | null | undefined; // null: a base layer; undefined: unknown
      if (rec?.diffId && !rec.problems.some((p) => p.startsWith('parent'))) parentCache = rec.parent ? store.layerdb.layers.get(rec.parent)?.cacheId : null;
      // a lower names the parent by its link: while the parent's dir, link file or l/ link is damaged, it may resolve elsewhere
      if (parentCache && (await driver.checkLayer(parentCache, { hasParent: !!store.layerdb.layers.get(rec!.parent!)?.parent })).length) parentCache = undefined;
      for (const [id, lower] of lowerOf) {
        // the dir's own lower chain rules it out when it does not stack on the entry's parent
        if (lower && parentCache !== undefined && (parentCache === null ? lower.length > 0 : lower[0] !== parentCache)) continue;
        hold(id, `layer ${short(e.chainId)} has lost its cache-id (${e.why}), and this dir may be its only copy, so it is kept; \`layergc purge --include broken\` resolves it`, 'lost-cache-id');
      }
    }
  }
  for (const [id, h] of held) kept.set(id, h.why);
  return held;
}
