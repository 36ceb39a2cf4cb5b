// Where overlayfs leaves the files of a layer whose upper dir changed them only by name or metadata
// (the kernel's Documentation/filesystems/overlayfs.rst: redirect_dir, metacopy). verify follows
// these rules across a layer's content roots: its own diff, then the lower chain, nearest first.
import { spawnSync } from 'node:child_process';

const REDIRECT_XATTRS = ['trusted.overlay.redirect', 'user.overlay.redirect'];

/** A metacopy upper file has the right size but no data blocks: its data is in a lower layer. */
export function isMetacopyCandidate(stat: { size: number; blocks: number }): boolean {
  return stat.size > 0 && stat.blocks === 0;
}

/** The redirect xattr of a directory, read with getfattr (Node has no xattr API); null when none. */
export function readRedirect(dirPath: string): string | null {
  for (const name of REDIRECT_XATTRS) {
    const r = spawnSync('getfattr', ['--absolute-names', '--only-values', '-n', name, '--', dirPath], { encoding: 'latin1' });
    if (r.status === 0 && r.stdout) return r.stdout;
  }
  return null;
}

/**
 * The path (parts from the layer root) a directory renamed through the mount had in the layer below,
 * from its redirect value: absolute from the layer root, or one name in the same parent. overlayfs
 * writes nothing else; any other value, or one that would lead out of the layer, gives null.
 */
export function redirectTarget(dirParts: string[], value: string): string[] | null {
  if (!value.startsWith('/') && value.includes('/')) return null;
  const target = value.startsWith('/') ? value.slice(1).split('/').filter(Boolean) : [...dirParts.slice(0, -1), value];
  if (!target.length || target.some((t) => t === '..' || t === '.')) return null;
  return target;
}
