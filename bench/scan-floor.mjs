// The floor under `layergc scan` in Node: a process that reads only what a scan of an overlay2 root
// must read (each layerdb entry's listing and its diff, size, cache-id and parent; l/ and a readlink
// per link; each layer dir's diff/ lstat, link and lower; each image config, hashed and parsed) with
// the plainest synchronous calls, and checks nothing. The scan bench times it beside find and the
// scan: what a scan costs above it is layergc's own work; what it costs above find is Node's.
// Usage: node bench/scan-floor.mjs <data root>
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';

const root = process.argv[2];
const FLAGS = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK;
const buf = Buffer.allocUnsafe(8 << 20);

/** open, (fstat), read, close; the text, or null */
function read(path, fstat) {
  let fd;
  try {
    fd = fs.openSync(path, FLAGS);
  } catch {
    return null;
  }
  try {
    if (fstat) fs.fstatSync(fd);
    return buf.toString('utf8', 0, fs.readSync(fd, buf, 0, buf.length, 0));
  } finally {
    fs.closeSync(fd);
  }
}

let files = 0;
const sha256 = `${root}/image/overlay2/layerdb/sha256`;
for (const d of fs.readdirSync(sha256, { withFileTypes: true })) {
  if (!d.isDirectory()) continue;
  const dir = `${sha256}/${d.name}`;
  const names = new Set(fs.readdirSync(dir));
  for (const f of ['diff', 'size', 'cache-id', 'parent']) if (names.has(f) && read(`${dir}/${f}`, false) !== null) files++;
}
const home = `${root}/overlay2`;
for (const d of fs.readdirSync(`${home}/l`, { withFileTypes: true })) if (d.isSymbolicLink()) fs.readlinkSync(`${home}/l/${d.name}`);
for (const d of fs.readdirSync(home, { withFileTypes: true })) {
  if (d.name === 'l' || !d.isDirectory()) continue;
  fs.lstatSync(`${home}/${d.name}/diff`, { throwIfNoEntry: false });
  for (const f of ['link', 'lower']) if (read(`${home}/${d.name}/${f}`, true) !== null) files++;
}
const content = `${root}/image/overlay2/imagedb/content/sha256`;
for (const d of fs.readdirSync(content, { withFileTypes: true })) {
  const text = read(`${content}/${d.name}`, true);
  if (text === null) continue;
  createHash('sha256').update(text).digest('hex');
  try {
    JSON.parse(text);
  } catch {
    /* a damaged config: read all the same */
  }
  files++;
}
console.log(JSON.stringify({ files }));
