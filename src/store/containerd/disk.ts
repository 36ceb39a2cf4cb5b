// The directories beside the databases: snapshots/, blobs/, ingest/ and moby's containers/.
// Listed with lstat only; a symlink is reported, never followed.
import { listDir, readlinkQuiet, readSmallFile } from '../../fsx/read.js';
import { HEX64 } from '../../layout.js';
import type { ContainerdDisk, ContainerdLocation, IngestDir } from './model.js';

/** Algorithms the content store's walk accepts as dirs of blobs/. */
const BLOB_ALGORITHMS: Record<string, RegExp> = { sha256: HEX64, sha384: /^[a-f0-9]{96}$/, sha512: /^[a-f0-9]{128}$/ };

export async function readContainerdDisk(loc: ContainerdLocation): Promise<ContainerdDisk> {
  const disk: ContainerdDisk = { snapshotDirs: [], blobs: new Map(), strayBlobNames: [], ingests: [], containerDirs: [], unsafe: [] };
  const onSymlink = (path: string, target: string) => disk.unsafe.push({ path, reason: `a symlink (to ${target}) where containerd keeps a directory` });

  for (const e of await listDir(`${loc.snapshotterRoot}/snapshots`, onSymlink)) {
    if (e.stat.isSymbolicLink()) onSymlink(e.path, '…');
    disk.snapshotDirs.push({ name: e.name, path: e.path, isDir: e.stat.isDirectory() });
  }

  const blobsDir = `${loc.contentRoot}/blobs`;
  for (const alg of await listDir(blobsDir, onSymlink)) {
    const re = BLOB_ALGORITHMS[alg.name];
    // a symlink is reported as unsafe, never called stray (removing it is not layergc's call)
    if (alg.stat.isSymbolicLink()) onSymlink(alg.path, readlinkQuiet(alg.path));
    else if (!re || !alg.stat.isDirectory()) disk.strayBlobNames.push(alg.path);
    if (!re || !alg.stat.isDirectory()) continue;
    for (const b of await listDir(alg.path, onSymlink)) {
      if (b.stat.isSymbolicLink()) {
        onSymlink(b.path, readlinkQuiet(b.path));
        continue;
      }
      if (!re.test(b.name) || !b.stat.isFile()) {
        disk.strayBlobNames.push(b.path);
        continue;
      }
      if (alg.name === 'sha256') disk.blobs.set(`sha256:${b.name}`, { path: b.path, size: b.stat.size });
    }
  }

  for (const e of await listDir(`${loc.contentRoot}/ingest`, onSymlink)) {
    if (!e.stat.isDirectory()) {
      // a symlink is reported as unsafe, never an ingest to remove (as in blobs/)
      if (e.stat.isSymbolicLink()) {
        onSymlink(e.path, readlinkQuiet(e.path));
        continue;
      }
      disk.ingests.push({ name: e.name, path: e.path, ref: { state: 'unreadable', why: 'not a directory' } });
      continue;
    }
    disk.ingests.push({ name: e.name, path: e.path, ref: await ingestRef(`${e.path}/ref`) });
  }

  for (const e of await listDir(`${loc.dataRoot}/containers`, onSymlink)) {
    if (!e.stat.isDirectory()) continue;
    const cfg = await readSmallFile(`${e.path}/config.v2.json`);
    let name: string | undefined;
    if (cfg.state === 'ok') {
      try {
        const n = (JSON.parse(cfg.text) as { Name?: unknown }).Name;
        if (typeof n === 'string') name = n.replace(/^\//, '');
      } catch {
        /* a config dockerd cannot parse still names a container it knows of */
      }
    }
    // only a missing config is a create killed half way; one layergc cannot read (too big, a symlink) may still load
    disk.containerDirs.push({ id: e.name, path: e.path, hasConfig: cfg.state !== 'missing', ...(name ? { name } : {}) });
  }
  return disk;
}

async function ingestRef(path: string): Promise<IngestDir['ref']> {
  const f = await readSmallFile(path);
  switch (f.state) {
    case 'ok':
      return f.text.length ? { state: 'ok', text: f.text } : { state: 'empty', why: 'its ref file is empty' };
    case 'missing':
      return { state: 'missing', why: 'it has no ref file' };
    case 'symlink':
      return { state: 'unreadable', why: `its ref is a symlink (to ${f.target})` };
    case 'not-a-file':
      return { state: 'unreadable', why: 'its ref is not a regular file' };
    default:
      return { state: 'unreadable', why: `its ref cannot be read: ${f.error}` };
  }
}
