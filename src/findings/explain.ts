// The ownership story of one thing in the store, for `layergc explain`.
import { normalizeChainId, short } from '../store/digest.js';
import { isRemovingName, layerdbPaths, mountDir, unstagedId } from '../layout.js';
import { imageLabel } from '../store/images.js';
import type { ContainerRecord, ImageRecord, Store } from '../store/model.js';
import type { ScanResult } from './index.js';
import { describeClaim, describeOwner } from './describe.js';
import type { Finding } from './types.js';
import { resolveReference } from '../store/resolve.js';

export interface Explanation {
  target: string;
  type: 'image' | 'container' | 'layer' | 'driver-dir' | 'mount' | 'path' | 'snapshot' | 'blob' | 'lease';
  subject: string;
  status: 'live' | 'garbage' | 'broken' | 'unknown';
  /** The ownership chain, top (image tag, container) down to the thing, one line each. */
  because: string[];
  findings: Finding[];
}

const BROKEN_SEVERITY = 'error';

function statusOf(findings: Finding[], live: boolean): Explanation['status'] {
  if (findings.some((f) => f.severity === BROKEN_SEVERITY)) return 'broken';
  if (findings.length) return 'garbage';
  return live ? 'live' : 'unknown';
}

export async function explain(store: Store, scan: ScanResult, target: string): Promise<Explanation | null> {
  const { layers } = store.layerdb;
  const { refs } = scan;
  const touching = (pred: (f: Finding) => boolean) => scan.findings.filter(pred);

  const explainLayer = (chainId: string): Explanation => {
    const l = layers.get(chainId);
    const because: string[] = [];
    const owners = refs.live.get(chainId) ?? [];
    for (const o of owners) {
      if (o.kind === 'image') {
        const i = o.image.chainIds.indexOf(chainId);
        because.push(i >= 0 ? `${describeOwner(o)} uses it as layer ${i + 1} of ${o.image.chainIds.length}` : `${describeOwner(o)} uses a layer above it`);
      } else because.push(`${describeOwner(o)} ${o.kind === 'mount' ? 'runs on it (its mount parent chain)' : 'holds it'}`);
    }
    if (l?.cacheId) because.push(`its data is driver dir ${store.driver.dirOf(l.cacheId)} (cache-id)`);
    if (!l) because.push('it has no entry in the layer store');
    const fs = touching((f) => f.layer === chainId || (!!l && f.paths.includes(l.dir)));
    return { target, type: 'layer', subject: `layer ${chainId}`, status: statusOf(fs, owners.length > 0), because, findings: fs };
  };

  const explainDriverId = (id: string): Explanation => {
    const claims = refs.claims.get(id) ?? [];
    const because: string[] = [];
    for (const c of claims) {
      if (c.kind === 'layer') {
        because.push(`it is the cache-id of ${describeClaim({ refs }, c)}`);
        for (const o of refs.live.get(c.chainId) ?? []) because.push(`  which ${describeOwner(o)} keeps`);
      } else because.push(`it is named by ${describeClaim({ refs }, c)}`);
    }
    const fs = touching((f) => f.cacheId === id || f.paths.includes(store.driver.dirOf(id)));
    const inferred = scan.kept.get(id);
    if (inferred) because.push(`it is kept: ${inferred}`);
    const live = !!inferred || claims.some((c) => c.kind === 'mount' || c.kind === 'buildkit' || (c.kind === 'layer' && c.live));
    if (!claims.length && !fs.length && refs.buildkitUnknown) because.push("BuildKit's database could not be read, so it is kept");
    return { target, type: 'driver-dir', subject: `driver dir ${store.driver.dirOf(id)}`, status: statusOf(fs, live), because, findings: fs };
  };

  const layerLine = (chainId: string, i: number, n: number) => {
    const l = layers.get(chainId);
    return `layer ${i + 1} of ${n}: ${short(chainId)}${!l ? ' is not in the layer store' : l.cacheId ? `, driver dir ${store.driver.dirOf(l.cacheId)}` : ''}`;
  };

  // an image is live; what is wrong with its layers makes it broken
  const explainImage = (img: ImageRecord): Explanation => {
    const label = imageLabel(img);
    const because = img.chainIds.map((c, i) => layerLine(c, i, img.chainIds.length));
    for (const c of store.containers.filter((x) => x.image === img.id)) because.push(`container ${c.name} runs on it`);
    if (img.problem) because.push(`its config: ${img.problem}`);
    const fs = touching((f) => (!!f.layer && img.chainIds.includes(f.layer)) || f.affects.images.includes(label) || f.paths.includes(img.path));
    return { target, type: 'image', subject: `image ${label} (${short(img.id)})`, status: fs.some((f) => f.severity === BROKEN_SEVERITY) ? 'broken' : 'live', because, findings: fs };
  };

  const explainContainer = (c: ContainerRecord): Explanation => {
    const m = store.layerdb.mounts.find((x) => x.name === c.id);
    const img = store.images.images.find((i) => i.id === c.image);
    const because = [img ? `it runs image ${imageLabel(img)} (${short(img.id)})` : `its image ${c.image ? short(c.image) : '(none recorded)'} is not in the image store`];
    if (m) {
      if (m.mountId) because.push(`its writable layer is driver dir ${store.driver.dirOf(m.mountId)} (mount-id)`);
      if (m.initId) because.push(`its init layer is driver dir ${store.driver.dirOf(m.initId)} (init-id)`);
      if (m.parent) because.push(`they sit on layer ${short(m.parent)}`);
    } else because.push(`it has no layer mount (${mountDir(store.loc.layerdb, c.id)})`);
    const fs = touching((f) => f.affects.containers.includes(c.name) || (!!m && f.paths.includes(m.dir)));
    return { target, type: 'container', subject: `container ${c.name} (${short(c.id)})`, status: fs.some((f) => f.severity === BROKEN_SEVERITY) ? 'broken' : 'live', because, findings: fs };
  };

  const chain = normalizeChainId(target);
  if (chain && layers.has(chain)) return explainLayer(chain);
  if (refs.claims.has(target) || store.driverEntries.some((e) => e.id === target)) return explainDriverId(target);
  if (chain && refs.live.has(chain)) return explainLayer(chain);
  const r = resolveReference(store, target);
  if (r?.kind === 'image') return explainImage(r.image);
  if (r?.kind === 'container') return explainContainer(r.container);
  if (r?.kind === 'layer') return explainLayer(r.chainId);
  if (r?.kind === 'driver-dir') return explainDriverId(r.id);

  const path = target.startsWith('/') ? target.replace(/\/+$/, '') : `${process.cwd()}/${target}`.replace(/\/+$/, '');
  const root = store.loc.dataRoot;
  if (path !== root && !path.startsWith(`${root}/`)) return null;
  const sha = `${layerdbPaths(store.loc.layerdb).sha256}/`;
  if (path.startsWith(sha)) {
    const name = path.slice(sha.length).split('/')[0];
    const hex = name.split('-')[0];
    if (isRemovingName(name) || !layers.has(`sha256:${hex}`)) {
      const fs = touching((f) => f.paths.some((p) => p === `${sha}${name}`));
      return { target, type: 'path', subject: `${sha}${name}`, status: statusOf(fs, false), because: [`it is the layer store entry of ${short(hex)} being removed`], findings: fs };
    }
    return explainLayer(`sha256:${hex}`);
  }
  const mounts = `${layerdbPaths(store.loc.layerdb).mounts}/`;
  if (path.startsWith(mounts)) {
    const name = path.slice(mounts.length).split('/')[0];
    const m = store.layerdb.mounts.find((x) => x.name === name);
    const c = refs.containerByMount.get(name);
    const fs = touching((f) => f.paths.includes(`${mounts}${name}`));
    const because = [c ? `it is the layer mount of container ${c.name}` : `no container ${name} exists`];
    if (m?.parent) because.push(`it sits on layer ${short(m.parent)}`);
    return { target, type: 'mount', subject: `mount ${name}`, status: statusOf(fs, !!c), because, findings: fs };
  }
  const home = `${store.loc.driverHome}/`;
  if (path.startsWith(home)) {
    const first = path.slice(home.length).split('/')[0];
    const { id } = unstagedId(first);
    if (id === 'l') {
      const fs = touching((f) => f.paths.includes(path));
      return { target, type: 'path', subject: path, status: statusOf(fs, !fs.length), because: ['it is an overlay2 short link'], findings: fs };
    }
    return explainDriverId(id);
  }
  const fs = touching((f) => f.paths.some((p) => p === path || path.startsWith(`${p}/`)));
  const img = store.images.images.find((i) => i.path === path);
  const because = img ? [`it is the config of image ${imageLabel(img)}`] : [];
  return { target, type: 'path', subject: path, status: statusOf(fs, !!img), because, findings: fs };
}
