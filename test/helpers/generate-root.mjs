// Large synthetic Docker data roots (overlay2), for the tests and for `npm run bench`: plain JS so
// that bench/*.mjs imports it without a build. Deterministic: the same options (seed included) give
// the same tree, byte for byte except mtimes. Every layer is real: its tar stream is built in memory,
// its DiffID is that stream's sha256, its chain ID follows identity.ChainID, and its
// tar-split.json.gz rebuilds the stream from the files written to `<cache-id>/diff` (so
// `layergc verify` proves it). The overlay2 layout is moby's: `link`, `lower`, `work/`, `committed`,
// `l/<LID>` -> `../<id>/diff`. Each kind of damage is made on a victim of its own, so the findings a
// scan must report are known exactly (`expected` in the manifest).
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';

// ------------------------------------------------------------------------------------------------
// seeded randomness

/** mulberry32: a small, fast, seeded PRNG; `next()` is uniform in [0, 1). */
export function rng(seed) {
  let a = seed >>> 0;
  const u32 = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
  const HEX = '0123456789abcdef';
  const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  return {
    u32,
    next: () => u32() / 2 ** 32,
    int: (n) => Math.floor((u32() / 2 ** 32) * n),
    /** stringid.GenerateRandomID: 64 hex, never 12 leading digits */
    id() {
      for (;;) {
        let s = '';
        for (let i = 0; i < 8; i++) {
          const w = u32();
          for (let k = 0; k < 8; k++) s += HEX[(w >>> (k * 4)) & 15];
        }
        if (!/^\d{12}/.test(s)) return s;
      }
    },
    /** overlayutils.GenerateID(26): 26 chars of base32 */
    lid() {
      let s = '';
      for (let i = 0; i < 26; i++) s += B32[u32() & 31];
      return s;
    },
    bytes(n) {
      const b = Buffer.allocUnsafe(n);
      for (let i = 0; i < n; i += 4) {
        const w = u32();
        for (let k = 0; k < 4 && i + k < n; k++) b[i + k] = (w >>> (k * 8)) & 0xff;
      }
      return b;
    },
  };
}

// ------------------------------------------------------------------------------------------------
// digests

export const sha256Hex = (b) => createHash('sha256').update(b).digest('hex');

/** identity.ChainID step: sha256(parent + " " + diff) */
export const chainIdOf = (parent, diffId) => (parent ? `sha256:${sha256Hex(`${parent} ${diffId}`)}` : diffId);

// CRC-64/GO-ISO (reflected poly 0xD800000000000000, init and xorout ~0), kept apart from
// src/verify/crc64.ts on purpose: a second implementation checks the first through verify.
const CRC_HI = new Uint32Array(256);
const CRC_LO = new Uint32Array(256);
for (let i = 0; i < 256; i++) {
  let hi = 0;
  let lo = i;
  for (let k = 0; k < 8; k++) {
    const c = lo & 1;
    lo = ((lo >>> 1) | ((hi & 1) << 31)) >>> 0;
    hi >>>= 1;
    if (c) hi = (hi ^ 0xd8000000) >>> 0;
  }
  CRC_HI[i] = hi;
  CRC_LO[i] = lo;
}

/** The 8-byte big-endian CRC-64/GO-ISO that tar-split stores as a file entry's payload. */
export function crc64(data) {
  let hi = 0xffffffff;
  let lo = 0xffffffff;
  for (let i = 0; i < data.length; i++) {
    const t = (lo ^ data[i]) & 0xff;
    lo = ((lo >>> 8) | (hi << 24)) ^ CRC_LO[t];
    hi = (hi >>> 8) ^ CRC_HI[t];
  }
  const out = Buffer.allocUnsafe(8);
  out.writeUInt32BE(~hi >>> 0, 0);
  out.writeUInt32BE(~lo >>> 0, 4);
  return out;
}

// ------------------------------------------------------------------------------------------------
// tar and tar-split

function octal(n, width) {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

export function ustarHeader(name, size) {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(0o644, 8), 100, 'latin1');
  h.write(octal(0, 8), 108, 'latin1');
  h.write(octal(0, 8), 116, 'latin1');
  h.write(octal(size, 12), 124, 'latin1');
  h.write(octal(1_700_000_000, 12), 136, 'latin1');
  h.write('        ', 148, 'latin1');
  h.write('0', 156, 'latin1');
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += h[i];
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return h;
}

/**
 * A ustar stream of regular files (sorted by name) and the tar-split entries that rebuild it
 * (vbatts/tar-split: type 2 segments for headers and padding, type 1 entries with each file's CRC).
 * The stream is hashed as it is made; `keepTar` also returns its bytes.
 */
export function tarWithSplit(files, { keepTar = true } = {}) {
  const hash = createHash('sha256');
  const parts = [];
  const lines = [];
  let pos = 0;
  let length = 0;
  let pad = Buffer.alloc(0);
  const emit = (b) => {
    hash.update(b);
    length += b.length;
    if (keepTar) parts.push(b);
  };
  const names = Object.keys(files).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (const name of names) {
    const content = files[name];
    const data = Buffer.isBuffer(content) ? content : Buffer.from(content);
    const hdr = ustarHeader(name, data.length);
    const seg = pad.length ? Buffer.concat([pad, hdr]) : hdr;
    lines.push(JSON.stringify({ type: 2, payload: seg.toString('base64'), position: pos++ }));
    lines.push(JSON.stringify({ type: 1, name, size: data.length, ...(data.length ? { payload: crc64(data).toString('base64') } : {}), position: pos++ }));
    emit(hdr);
    emit(data);
    pad = Buffer.alloc((512 - (data.length % 512)) % 512);
    if (pad.length) emit(pad);
  }
  const end = Buffer.alloc(1024);
  emit(end);
  lines.push(JSON.stringify({ type: 2, payload: Buffer.concat([pad, end]).toString('base64'), position: pos++ }));
  return {
    tar: keepTar ? Buffer.concat(parts) : undefined,
    tarLength: length,
    diffId: `sha256:${hash.digest('hex')}`,
    tarSplit: gzipSync(`${lines.join('\n')}\n`, { level: 1 }),
  };
}

// ------------------------------------------------------------------------------------------------
// the root

/**
 * Every kind of damage the generator makes, by the finding kind a scan reports for it: each maker
 * gets the generation context and the victim's number; the finding is counted for it, and a
 * maker counts what else its damage makes a scan report.
 */
const DAMAGE = {
  'removing-orphan': (g, i) => {
    // `docker rmi` renamed the entry, then driver.Remove failed half way (link file and l/ gone)
    const t = tarWithSplit({ f: `orphan ${i}` }, { keepTar: false });
    const cacheId = g.r.id();
    const d = `${g.sha}/${t.diffId.slice(7)}-${g.r.id()}-removing`;
    fs.mkdirSync(d, { mode: 0o700 });
    fs.writeFileSync(`${d}/diff`, t.diffId);
    fs.writeFileSync(`${d}/size`, '512');
    fs.writeFileSync(`${d}/cache-id`, cacheId);
    fs.writeFileSync(`${d}/tar-split.json.gz`, t.tarSplit);
    fs.mkdirSync(`${g.home}/${cacheId}/diff/stuff/a`, { recursive: true });
    fs.writeFileSync(`${g.home}/${cacheId}/diff/stuff/a/1.txt`, 'left behind\n');
  },
  'stale-write-set': (g) => {
    // a killed `docker load`: only the start of a tar-split
    const d = `${g.layerdb}/tmp/write-set-${100000000 + g.r.int(899999999)}`;
    fs.mkdirSync(d, { mode: 0o700 });
    fs.writeFileSync(`${d}/tar-split.json.gz`, gzipSync(Buffer.alloc(0)).subarray(0, 10));
  },
  'unreferenced-driver-dir': (g) => {
    const drv = g.createDriverDir(g.r.id());
    fs.writeFileSync(`${drv.dir}/diff/leaked.bin`, g.fileContent(5000));
  },
  'dangling-link': (g) => {
    fs.symlinkSync(`../${g.r.id()}/diff`, `${g.links}/${g.r.lid()}`);
  },
  'unreferenced-layer': (g) => {
    // the top layer of an image deleted without its layers
    const parent = g.layers.length ? g.pickHealthy() : undefined;
    g.addLayer(g.layerFiles(), parent && parent.depth < g.o.maxDepth ? parent : undefined);
  },
  'missing-driver-data': (g, i) => {
    // overlay2/<cache-id> and its l/ link removed by hand
    const { layer } = g.soloImage(`missing-data${i}:latest`);
    fs.rmSync(`${g.home}/${layer.cacheId}`, { recursive: true });
    fs.rmSync(`${g.links}/${layer.lid}`);
  },
  'invalid-layer-metadata': (g) => {
    // `size` with a trailing newline: loadLayer's ParseInt fails; no image uses the entry
    const l = g.addLayer(g.layerFiles());
    fs.appendFileSync(`${l.dir}/size`, '\n');
  },
  'missing-parent': (g) => {
    // `parent` names a chain that is not there (its driver dir stacks on a healthy one); the
    // entry is still named by the right chain ID
    g.addLayer(g.layerFiles(), undefined, { parentChain: `sha256:${g.r.id()}`, lowerOf: g.pickHealthy() });
  },
  'chain-id-mismatch': (g) => {
    // a loadable entry under a name that is not its chain ID: no image reaches it either
    g.addLayer(g.layerFiles(), undefined, { dirName: g.r.id() });
    g.count('unreferenced-layer');
  },
  'driver-data-damaged': (g, i) => {
    // the layer's l/<LID> link is gone
    const { layer } = g.soloImage(`damaged${i}:latest`);
    fs.rmSync(`${g.links}/${layer.lid}`);
  },
  'broken-mount': (g, i) => {
    // a container whose RW dir (and its link) was removed by hand
    const { image } = g.soloImage(`mounted${i}:latest`);
    const c = g.addContainer(`broken${i}`, image);
    fs.rmSync(c.rwDir, { recursive: true });
    fs.rmSync(`${g.links}/${c.rwLid}`);
  },
  'image-missing-layers': (g, i) => {
    // an image one of whose layers is not in the layerdb
    const base = g.pickHealthy();
    g.addImage(`missing-layers${i}:latest`, [base], { diffIds: [...g.chainOf(base).map((l) => l.diffId), `sha256:${g.r.id()}`] });
  },
  'invalid-image': (g, i) => {
    // a config with no rootfs: the daemon skips it. (One whose bytes no longer match its name
    // leaves its layers unknown, and then no layer at all is called unreferenced.)
    g.addImage(`invalid${i}:latest`, g.chainOf(g.pickHealthy()), { history: `invalid ${i}`, noRootfs: true });
  },
  'unsafe-path': (g) => {
    // a symlink where a driver dir belongs, pointing out of the data root (to <dir>/outside)
    fs.symlinkSync('../../outside', `${g.home}/${g.r.id()}`);
  },
};

export const DAMAGE_KINDS = Object.keys(DAMAGE);

/** The defaults: a small healthy root. */
export const DEFAULTS = {
  seed: 1,
  /** healthy image layers (layerdb entries with driver dirs) */
  layers: 100,
  /** files per layer: 1 .. 2*filesPerLayer-1, mean filesPerLayer */
  filesPerLayer: 20,
  /** file sizes: 0 .. maxFileBytes */
  maxFileBytes: 2048,
  /** deepest image chain */
  maxDepth: 12,
  containers: 10,
  /** per finding kind: how many victims */
  damage: {},
  /** files in one extra leaked driver dir (an unreferenced-driver-dir), in dirs of 1,000 */
  leakedFiles: 0,
  /** one extra image of one layer this big (64 x 1 MiB, 512 x 64 KiB, the rest 16 KiB files) */
  bigLayerBytes: 0,
};

/**
 * Write a data root at `<dir>/root` (and `<dir>/outside`, a folder outside it that unsafe-path
 * victims point at). Returns the manifest, also written to `<dir>/manifest.json`:
 * `expected` maps each finding kind to the exact number of findings a scan must report.
 */
export function generateRoot(dir, options = {}) {
  const o = { ...DEFAULTS, ...options, damage: { ...(options.damage ?? {}) } };
  for (const k of Object.keys(o.damage)) if (!(k in DAMAGE)) throw new Error(`unknown damage kind ${k}`);
  const started = Date.now();
  const r = rng(o.seed);
  const root = path.join(dir, 'root');
  const outside = path.join(dir, 'outside');
  const imageDir = path.join(root, 'image/overlay2');
  const layerdb = path.join(imageDir, 'layerdb');
  const sha = path.join(layerdb, 'sha256');
  const home = path.join(root, 'overlay2');
  const links = path.join(home, 'l');
  const content = path.join(imageDir, 'imagedb/content/sha256');
  const meta = path.join(imageDir, 'imagedb/metadata/sha256');

  fs.mkdirSync(dir, { recursive: true });
  fs.mkdirSync(outside, { recursive: true });
  fs.writeFileSync(path.join(outside, 'precious.txt'), 'not docker data\n');
  fs.mkdirSync(root, { mode: 0o710 });
  for (const d of ['containers', 'tmp', 'volumes', 'network/files', 'plugins', 'runtimes', 'swarm']) fs.mkdirSync(path.join(root, d), { recursive: true, mode: 0o700 });
  fs.mkdirSync(sha, { recursive: true, mode: 0o700 });
  fs.mkdirSync(path.join(layerdb, 'mounts'), { mode: 0o700 });
  fs.mkdirSync(path.join(layerdb, 'tmp'), { mode: 0o755 });
  fs.mkdirSync(content, { recursive: true, mode: 0o700 });
  fs.mkdirSync(meta, { recursive: true, mode: 0o700 });
  fs.mkdirSync(path.join(imageDir, 'distribution'), { recursive: true, mode: 0o700 });
  fs.mkdirSync(links, { recursive: true, mode: 0o700 });
  fs.chmodSync(home, 0o710);

  // file contents are slices of one random pool, each with a unique first line: distinct diff IDs
  const pool = r.bytes(1 << 20);
  let serial = 0;
  const fileContent = (size) => {
    const head = Buffer.from(`${serial++}\n`);
    if (size <= head.length) return head.subarray(0, size);
    const off = r.int(pool.length - size);
    return Buffer.concat([head, pool.subarray(off, off + size - head.length)]);
  };
  const layerFiles = () => {
    const n = 1 + r.int(2 * o.filesPerLayer - 1);
    const files = {};
    for (let i = 0; i < n; i++) files[`d${i % 3}/f${i}`] = fileContent(r.int(o.maxFileBytes + 1));
    return files;
  };

  // overlay2 `create`: <id>/diff, link, l/<LID>; with a parent: work/, lower, parent's `committed`
  const driverDirs = new Map(); // id -> { lid, lower }
  const createDriverDir = (id, parentId) => {
    const d = path.join(home, id);
    fs.mkdirSync(d, { mode: 0o710 });
    fs.mkdirSync(`${d}/diff`, { mode: 0o755 });
    const lid = r.lid();
    fs.symlinkSync(`../${id}/diff`, `${links}/${lid}`);
    fs.writeFileSync(`${d}/link`, lid);
    let lower;
    if (parentId) {
      const p = driverDirs.get(parentId);
      fs.mkdirSync(`${d}/work`, { mode: 0o700 });
      fs.writeFileSync(`${home}/${parentId}/committed`, '', { mode: 0o600 });
      lower = p.lower ? `l/${p.lid}:${p.lower}` : `l/${p.lid}`;
      fs.writeFileSync(`${d}/lower`, lower);
    }
    driverDirs.set(id, { lid, lower });
    return { dir: d, lid };
  };
  const writeTree = (base, files) => {
    const made = new Set();
    for (const [name, data] of Object.entries(files)) {
      const p = `${base}/${name}`;
      const parent = p.slice(0, p.lastIndexOf('/'));
      if (!made.has(parent)) {
        fs.mkdirSync(parent, { recursive: true });
        made.add(parent);
      }
      fs.writeFileSync(p, data);
    }
  };

  // registerWithDescriptor: driver dir + ApplyDiff, then the layerdb entry
  const layers = [];
  const addLayer = (files, parent, opts = {}) => {
    const t = tarWithSplit(files, { keepTar: false });
    const chainId = chainIdOf(opts.parentChain ?? parent?.chainId, t.diffId);
    const cacheId = r.id();
    const drv = createDriverDir(cacheId, opts.lowerOf?.cacheId ?? parent?.cacheId);
    writeTree(`${drv.dir}/diff`, files);
    const dirName = opts.dirName ?? chainId.slice(7);
    const ldir = `${sha}/${dirName}`;
    fs.mkdirSync(ldir, { mode: 0o700 });
    fs.writeFileSync(`${ldir}/tar-split.json.gz`, t.tarSplit);
    fs.writeFileSync(`${ldir}/diff`, t.diffId);
    fs.writeFileSync(`${ldir}/size`, String(t.tarLength - 1024));
    fs.writeFileSync(`${ldir}/cache-id`, cacheId);
    const parentChain = opts.parentChain ?? parent?.chainId;
    if (parentChain) fs.writeFileSync(`${ldir}/parent`, parentChain);
    const info = { chainId, diffId: t.diffId, parent: parent?.chainId, cacheId, lid: drv.lid, dir: ldir, depth: parent ? parent.depth + 1 : 1, children: 0 };
    if (parent) parent.children++;
    return info;
  };

  const repositories = {};
  const images = [];
  const addImage = (tag, chain, opts = {}) => {
    const diffIds = opts.diffIds ?? chain.map((l) => l.diffId);
    const config = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: { Cmd: ['/bin/sh'], Env: ['PATH=/bin'] },
        created: '2024-01-01T00:00:00Z',
        history: diffIds.map((_, i) => ({ created: '2024-01-01T00:00:00Z', created_by: `${opts.history ?? tag} ${i}` })),
        ...(opts.noRootfs ? {} : { rootfs: { type: 'layers', diff_ids: diffIds } }),
      }),
    );
    const id = `sha256:${sha256Hex(config)}`;
    fs.writeFileSync(`${content}/${id.slice(7)}`, config, { mode: 0o600 });
    fs.mkdirSync(`${meta}/${id.slice(7)}`, { mode: 0o700 });
    fs.writeFileSync(`${meta}/${id.slice(7)}/lastUpdated`, '2024-01-01T00:00:00.000000000Z', { mode: 0o600 });
    const repo = tag.replace(/:.*$/, '');
    (repositories[repo] ??= {})[tag] = id;
    const img = { id, tag, top: chain[chain.length - 1], configPath: `${content}/${id.slice(7)}` };
    images.push(img);
    return img;
  };

  // `docker create`: mount dir, <mount-id>-init on the image's top layer, <mount-id> on the init dir
  const containers = [];
  const addContainer = (name, img) => {
    const id = r.id();
    const mountId = r.id();
    const initId = `${mountId}-init`;
    const init = createDriverDir(initId, img.top.cacheId);
    fs.mkdirSync(`${init.dir}/diff/etc`);
    fs.writeFileSync(`${init.dir}/diff/etc/hostname`, '');
    const rw = createDriverDir(mountId, initId);
    fs.writeFileSync(`${rw.dir}/diff/written-by-container`, 'rw data\n');
    const mountDir = `${layerdb}/mounts/${id}`;
    fs.mkdirSync(mountDir, { mode: 0o755 });
    fs.writeFileSync(`${mountDir}/mount-id`, mountId);
    fs.writeFileSync(`${mountDir}/init-id`, initId);
    fs.writeFileSync(`${mountDir}/parent`, img.top.chainId);
    const cdir = `${root}/containers/${id}`;
    fs.mkdirSync(cdir, { mode: 0o710 });
    fs.writeFileSync(`${cdir}/config.v2.json`, JSON.stringify({ ID: id, Name: `/${name}`, Image: img.id, Driver: 'overlay2', State: { Running: false } }), { mode: 0o600 });
    fs.writeFileSync(`${cdir}/hostconfig.json`, '{}', { mode: 0o600 });
    const c = { id, name, mountId, initId, rwDir: rw.dir, rwLid: rw.lid };
    containers.push(c);
    return c;
  };

  // healthy layers: a forest of chains, each new layer on a recent layer (bases shared like real
  // images share theirs) or a new base; every layer is a prefix of some image, so none is dangling
  for (let i = 0; i < o.layers; i++) {
    let parent;
    if (layers.length && r.next() > 0.08) {
      const pick = layers[layers.length - 1 - r.int(Math.min(layers.length, 50))];
      if (pick.depth < o.maxDepth) parent = pick;
    }
    layers.push(addLayer(layerFiles(), parent));
  }
  const chainOf = (l) => {
    const out = [];
    const byChain = (chainOf.index ??= new Map(layers.map((x) => [x.chainId, x])));
    for (let x = l; x; x = x.parent ? byChain.get(x.parent) : undefined) out.unshift(x);
    return out;
  };
  for (const l of layers) if (l.children === 0 || r.next() < 0.05) addImage(`img${images.length}:latest`, chainOf(l));
  const healthyImages = [...images];
  for (let i = 0; i < o.containers && healthyImages.length; i++) addContainer(`c${i}`, healthyImages[r.int(healthyImages.length)]);

  if (o.bigLayerBytes > 0) {
    const files = {};
    let left = o.bigLayerBytes;
    const put = (dirName, count, size) => {
      for (let i = 0; i < count && left > 0; i++, left -= size) {
        const head = Buffer.from(`${serial++}\n`);
        files[`big/${dirName}/${i}`] = Buffer.concat([head, r.bytes(size - head.length)]);
      }
    };
    put('m', 64, 1 << 20);
    put('k', 512, 64 << 10);
    put('s', Math.ceil(left / (16 << 10)), 16 << 10);
    const big = addLayer(files);
    addImage('big:latest', [big]);
  }

  // ---------------------------------------------------------------------------------------------
  // damage, each on a victim of its own, kind by kind in DAMAGE's order
  const expected = {};
  const g = {
    r,
    home,
    links,
    sha,
    layerdb,
    layers,
    o,
    fileContent,
    layerFiles,
    addLayer,
    addImage,
    addContainer,
    createDriverDir,
    chainOf,
    count: (kind) => (expected[kind] = (expected[kind] ?? 0) + 1),
    pickHealthy: () => layers[r.int(layers.length)],
    soloImage: (tag) => {
      const l = addLayer(layerFiles());
      return { layer: l, image: addImage(tag, [l]) };
    },
  };
  for (const [kind, make] of Object.entries(DAMAGE)) {
    for (let i = 0; i < (o.damage[kind] ?? 0); i++) {
      make(g, i);
      g.count(kind);
    }
  }
  let leakedDir;
  if (o.leakedFiles > 0) {
    const drv = createDriverDir(r.id());
    leakedDir = drv.dir;
    const data = Buffer.alloc(100, 120);
    for (let d = 0; d * 1000 < o.leakedFiles; d++) {
      const sub = `${drv.dir}/diff/d${d}`;
      fs.mkdirSync(sub);
      for (let i = 0; i < 1000 && d * 1000 + i < o.leakedFiles; i++) fs.writeFileSync(`${sub}/f${i}`, data);
    }
    expected['unreferenced-driver-dir'] = (expected['unreferenced-driver-dir'] ?? 0) + 1;
  }

  fs.writeFileSync(path.join(imageDir, 'repositories.json'), JSON.stringify({ Repositories: repositories }), { mode: 0o600 });
  const manifest = {
    options: o,
    root,
    outside,
    layers: layers.length,
    images: images.length,
    containers: containers.length,
    files: serial,
    leakedDir,
    expected,
    generateMs: Date.now() - started,
  };
  fs.writeFileSync(path.join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

/** One of every kind of damage, `n` times. */
export function everyDamage(n = 1) {
  return Object.fromEntries(DAMAGE_KINDS.map((k) => [k, n]));
}
