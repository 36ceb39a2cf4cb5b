// What a Docker user has in hand, resolved to a thing in the store: an image tag or digest
// reference (`app:1`, `nginx`, `docker.io/library/nginx:1.27`, `repo@sha256:…`), an image ID,
// a container name or ID, a chain ID or driver (cache) ID, full or a unique prefix (the 12
// characters `docker ps`, `docker images` and `layergc scan` print).
import { LayergcError } from '../errors.js';
import { hexOf, short } from './digest.js';
import { MOUNT_ID } from '../layout.js';
import type { ContainerRecord, ImageRecord, Store } from './model.js';

export type Resolved = { kind: 'image'; image: ImageRecord } | { kind: 'container'; container: ContainerRecord } | { kind: 'layer'; chainId: string } | { kind: 'driver-dir'; id: string };

/** docker.io/library/nginx -> nginx, and a bare name means :latest, as repositories.json stores it. */
export function familiar(ref: string): string {
  let r = ref;
  const hub = /^(?:docker\.io|index\.docker\.io|registry-1\.docker\.io)\/(.*)$/.exec(r);
  if (hub) r = hub[1].replace(/^library\/(?=[^/@:]+(?:[:@]|$))/, '');
  const name = r.split('@')[0];
  if (!r.includes('@') && !/:[^/]+$/.test(name)) r += ':latest';
  return r;
}

function describe(r: Resolved): string {
  switch (r.kind) {
    case 'image':
      return `image ${short(r.image.id)}${r.image.tags.length ? ` (${r.image.tags.join(', ')})` : ''}`;
    case 'container':
      return `container ${short(r.container.id)} (${r.container.name})`;
    case 'layer':
      return `layer ${r.chainId}`;
    case 'driver-dir':
      return `driver dir ${r.id}`;
  }
}

/**
 * The thing `text` names, or null when it names nothing the store has. A hex prefix that fits
 * more than one thing is an error listing them (exit 2), as the docker CLI does.
 */
export function resolveReference(store: Store, text: string): Resolved | null {
  const t = text.trim();
  const { images } = store.images;
  const image = images.find((i) => i.tags.includes(t)) ?? images.find((i) => i.tags.includes(familiar(t)));
  if (image) return { kind: 'image', image };
  const name = t.replace(/^\//, '');
  const byName = store.containers.find((c) => c.name === name);
  if (byName) return { kind: 'container', container: byName };

  const m = /^(?:sha256:)?([a-f0-9]{1,64})$/.exec(t);
  if (!m) return null;
  const hex = m[1];
  const hits: Resolved[] = [];
  const seen = new Set<string>();
  const add = (id: string, r: Resolved) => {
    if (!hexOf(id).startsWith(hex) || seen.has(`${r.kind}:${id}`)) return;
    seen.add(`${r.kind}:${id}`);
    hits.push(r);
  };
  for (const chainId of store.layerdb.layers.keys()) add(chainId, { kind: 'layer', chainId });
  for (const i of images) add(i.id, { kind: 'image', image: i });
  for (const c of store.containers) add(c.id, { kind: 'container', container: c });
  for (const e of store.driverEntries) if (MOUNT_ID.test(e.id)) add(e.id, { kind: 'driver-dir', id: e.id });
  for (const l of store.layerdb.layers.values()) if (l.cacheId) add(l.cacheId, { kind: 'driver-dir', id: l.cacheId });
  // a base layer's chain ID is its diff ID, and so can be an image's single layer: one thing, not two
  if (hits.length <= 1) return hits[0] ?? null;
  const exact = hits.filter((h) => hexOf(h.kind === 'image' ? h.image.id : h.kind === 'container' ? h.container.id : h.kind === 'layer' ? h.chainId : h.id) === hex);
  if (exact.length === 1) return exact[0];
  throw new LayergcError(`${text} is ambiguous; it could be any of: ${hits.map(describe).join('; ')}. Give more of the ID, or a tag or name.`);
}
