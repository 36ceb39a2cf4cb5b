// The layer database, read the way moby's fileMetadataStore reads it (layer/filestore.go):
// layerdb/sha256/<chain hex>/, layerdb/sha256/<chain hex>-<random>-removing/,
// layerdb/mounts/<name>/ and layerdb/tmp/write-set-*/.
import { parseDigest, trimSpace } from './digest.js';
import { cacheIdPath, HEX64, isRemovingName, layerdbPaths, MOUNT_ID, namesOneEntry, removingChainHex, unsafeDriverId, WRITE_SET_PREFIX } from '../layout.js';
import { listTyped, readSmallFileSync, readSmallFilesIn, smallFileProblem, type SmallFile } from '../fsx/read.js';
import type { LayerDb, LayerRecord, MountRecord, RemovingRecord, Unsafe } from './model.js';

export async function readLayerDb(layerdb: string): Promise<LayerDb> {
  const p = layerdbPaths(layerdb);
  const db: LayerDb = { root: layerdb, layers: new Map(), removing: [], writeSets: [], mounts: [], unsafe: [] };
  const linked = (path: string, target: string) => db.unsafe.push({ path, reason: `is a symlink (to ${target}) where moby keeps a directory; it is never followed` });

  // the listing's dirent types say which entries are dirs: no lstat per layer
  for (const e of listTyped(p.sha256, linked)) {
    const isRemoving = isRemovingName(e.name);
    if (!isRemoving && !HEX64.test(e.name)) continue; // moby's List() ignores every other name
    if (e.type.isSymbolicLink()) {
      db.unsafe.push({ path: e.path, reason: `is a symlink where moby keeps a layer directory; it is never followed` });
      continue;
    }
    if (!e.type.isDirectory()) continue;
    if (isRemoving) {
      const hex = removingChainHex(e.name);
      if (!hex) continue; // getOrphan skips names whose first part is not a digest
      const rec: RemovingRecord = { name: e.name, dir: e.path, chainId: `sha256:${hex}` };
      const cid = readSmallFileSync(cacheIdPath(e.path));
      const v = cacheIdValue(cid);
      if (v.value !== undefined) {
        const bad = unsafeDriverId(v.value);
        if (bad) {
          db.unsafe.push({ path: cacheIdPath(e.path), reason: `cache-id "${v.value}" ${bad}; it would lead out of the driver home` });
          rec.cacheIdProblem = `its cache-id "${v.value}" ${bad}`;
        } else rec.cacheId = v.value;
      } else rec.cacheIdProblem = v.problem;
      db.removing.push(rec);
    } else {
      db.layers.set(`sha256:${e.name}`, readLayer(e.name, e.path, db.unsafe));
    }
  }

  for (const e of listTyped(p.mounts, linked)) {
    if (e.type.isSymbolicLink()) {
      db.unsafe.push({ path: e.path, reason: 'is a symlink where moby keeps a mount directory; it is never followed' });
      continue;
    }
    if (e.type.isDirectory()) db.mounts.push(readMount(e.name, e.path, db.unsafe));
  }

  for (const e of listTyped(p.tmp, linked)) {
    if (!e.name.startsWith(WRITE_SET_PREFIX)) continue;
    if (e.type.isSymbolicLink()) {
      db.unsafe.push({ path: e.path, reason: 'is a symlink where moby keeps a write-set directory; it is never followed' });
      continue;
    }
    if (!e.type.isDirectory()) continue;
    const v = cacheIdValue(readSmallFileSync(cacheIdPath(e.path)));
    db.writeSets.push({ name: e.name, dir: e.path, cacheId: v.value && !unsafeDriverId(v.value) ? v.value : undefined });
  }
  return db;
}

function cacheIdValue(f: SmallFile): { value?: string; problem?: string } {
  const r = fileText(f, 'cache-id');
  if (r.problem) return { problem: r.problem };
  const v = trimSpace(r.text!);
  return v ? { value: v } : { problem: 'cache-id is empty' };
}

/** Text of a metadata file, or the problem that stops moby from reading it. */
function fileText(f: SmallFile, name: string): { text?: string; problem?: string } {
  return f.state === 'ok' ? { text: f.text } : { problem: `${name} ${smallFileProblem(f)}` };
}

const LAYER_FILES = ['diff', 'size', 'cache-id', 'parent', 'descriptor.json'];

function readLayer(hex: string, dir: string, unsafe: Unsafe[]): LayerRecord {
  const rec: LayerRecord = { chainId: `sha256:${hex}`, dir, hasTarSplit: false, problems: [] };
  // one listing of the dir, then only the files it holds are opened; tar-split.json.gz can be large: only its presence matters
  const files = readSmallFilesIn(dir, LAYER_FILES, ['tar-split.json.gz']);
  const [diff, size, cacheId, parent, descriptor] = LAYER_FILES.map((n) => files.get(n) as SmallFile);
  const tarSplit = files.get('tar-split.json.gz')!;
  for (const [f, name] of [
    [diff, 'diff'],
    [size, 'size'],
    [cacheId, 'cache-id'],
    [parent, 'parent'],
    [descriptor, 'descriptor.json'],
    [tarSplit, 'tar-split.json.gz'],
  ] as const) {
    if (f.state === 'symlink') unsafe.push({ path: `${dir}/${name}`, reason: `is a symlink (to ${f.target}) where moby keeps a file; it is never followed` });
  }

  const d = fileText(diff, 'diff');
  if (d.problem) rec.problems.push(d.problem);
  else if (!parseDigest(trimSpace(d.text!))) rec.problems.push(`diff is not a digest: ${JSON.stringify(d.text!.slice(0, 80))}`);
  else rec.diffId = trimSpace(d.text!);

  const s = fileText(size, 'size');
  if (s.problem) rec.problems.push(s.problem);
  else if (!/^[+-]?\d+$/.test(s.text!) || !Number.isSafeInteger(Number(s.text))) {
    // strconv.ParseInt without TrimSpace: a trailing newline makes the layer unloadable
    rec.problems.push(`size is not a decimal integer: ${JSON.stringify(s.text!.slice(0, 40))}`);
  } else rec.size = Number(s.text);

  const c = cacheIdValue(cacheId);
  if (c.problem) rec.problems.push(c.problem);
  else {
    const bad = unsafeDriverId(c.value!);
    if (bad) {
      unsafe.push({ path: cacheIdPath(dir), reason: `cache-id "${c.value}" ${bad}; it would lead out of the driver home` });
      rec.problems.push(`cache-id "${c.value}" ${bad}`);
      // still one name in the driver home (a staging or bookkeeping name): the dir it names stays claimed
      if (namesOneEntry(c.value!)) rec.namesDir = c.value;
    } else rec.cacheId = c.value;
  }

  if (parent.state !== 'missing') {
    const pt = fileText(parent, 'parent');
    if (pt.problem) rec.problems.push(pt.problem);
    else if (!parseDigest(trimSpace(pt.text!))) rec.problems.push(`parent is not a digest: ${JSON.stringify(pt.text!.slice(0, 80))}`);
    else rec.parent = trimSpace(pt.text!);
  }

  if (descriptor.state !== 'missing') {
    const dt = fileText(descriptor, 'descriptor.json');
    if (dt.problem) rec.problems.push(dt.problem);
    else {
      try {
        JSON.parse(dt.text!);
      } catch {
        rec.problems.push('descriptor.json is not valid JSON');
      }
    }
  }
  rec.hasTarSplit = tarSplit.state === 'present';
  return rec;
}

const MOUNT_FILES = ['mount-id', 'init-id', 'parent'];

function readMount(name: string, dir: string, unsafe: Unsafe[]): MountRecord {
  const rec: MountRecord = { name, dir, problems: [] };
  const files = readSmallFilesIn(dir, MOUNT_FILES);
  const [mountId, initId, parent] = MOUNT_FILES.map((n) => files.get(n) as SmallFile);
  for (const [f, n] of [
    [mountId, 'mount-id'],
    [initId, 'init-id'],
    [parent, 'parent'],
  ] as const) {
    if (f.state === 'symlink') unsafe.push({ path: `${dir}/${n}`, reason: `is a symlink (to ${f.target}) where moby keeps a file; it is never followed` });
  }
  const m = fileText(mountId, 'mount-id');
  if (m.problem) rec.problems.push(m.problem);
  else if (!MOUNT_ID.test(trimSpace(m.text!))) rec.problems.push(`mount-id is not a valid ID: ${JSON.stringify(m.text!.slice(0, 80))}`);
  else rec.mountId = trimSpace(m.text!);
  if (initId.state !== 'missing') {
    const t = fileText(initId, 'init-id');
    if (t.problem) rec.problems.push(t.problem);
    else if (!MOUNT_ID.test(trimSpace(t.text!))) rec.problems.push(`init-id is not a valid ID: ${JSON.stringify(t.text!.slice(0, 80))}`);
    else rec.initId = trimSpace(t.text!);
  }
  if (parent.state !== 'missing') {
    const t = fileText(parent, 'parent');
    if (t.problem) rec.problems.push(t.problem);
    else if (!parseDigest(trimSpace(t.text!))) rec.problems.push(`parent is not a digest: ${JSON.stringify(t.text!.slice(0, 80))}`);
    else rec.parent = trimSpace(t.text!);
  }
  return rec;
}
