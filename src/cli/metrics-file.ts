// --metrics-file: written atomically for node_exporter's textfile collector, and checked before a
// purge removes anything (the renderers only make the text: src/cli/render/prometheus.ts).
import { fs } from '../fsx/fs.js';
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { dirname, basename } from 'node:path';
import { fsCause, LayergcError } from '../errors.js';

/**
 * Write atomically, as node_exporter asks: a temporary file in the same directory whose name does
 * not end in .prom (the collector reads only *.prom), flushed to disk, then renamed over the
 * target. A reader sees the old file or the new one, never half of one.
 */
export async function writeMetricsFile(path: string, text: string): Promise<void> {
  // a random name, created with O_EXCL: nothing planted under a predictable name is ever written through
  const tmp = `${dirname(path)}/.${basename(path)}.${randomBytes(8).toString('hex')}.tmp`;
  try {
    const fh = await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
    try {
      await fh.writeFile(text);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, path);
  } catch (err) {
    await fs.unlink(tmp).catch(() => undefined); // a full disk leaves no temp file for the collector's dir
    throw new LayergcError(`cannot write the metrics file ${path}: ${fsCause(err) ?? (err as Error).message}`);
  }
}

/**
 * Before anything is removed: the metrics file can be written (its dir takes a new file, and what
 * is at the path is a regular file or nothing), so a purge never removes and then fails to report.
 */
export async function checkMetricsTarget(path: string): Promise<void> {
  const st = await fs
    .lstat(path)
    .catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? null : Promise.reject(err)))
    .catch((err: Error) => {
      throw new LayergcError(`cannot write the metrics file ${path}: ${err.message}; nothing was removed`);
    });
  if (st && !st.isFile()) throw new LayergcError(`cannot write the metrics file ${path}: it is ${st.isSymbolicLink() ? 'a symlink' : 'not a regular file'}; nothing was removed`);
  const probe = `${dirname(path)}/.${basename(path)}.${randomBytes(8).toString('hex')}.probe`;
  try {
    const fh = await fs.open(probe, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    await fh.close();
    await fs.unlink(probe);
  } catch (err) {
    throw new LayergcError(`cannot write the metrics file ${path}: ${fsCause(err) ?? (err as Error).message.replace(/, open .*$/, '')}; nothing was removed`);
  }
}
