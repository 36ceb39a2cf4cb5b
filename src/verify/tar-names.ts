// Tar entry names: cleaned as moby joins them onto a root, shown as text in reports, and the
// per-file problem a report carries.

import type { FileEntry } from './tarsplit.js';

export type FileProblemKind = 'modified' | 'missing' | 'short' | 'long' | 'unreadable' | 'unsafe';
export interface FileProblem {
  name: string;
  problem: FileProblemKind;
  detail?: string;
}

/**
 * Cleans a tar name the way filepath.Join(root, name) would, as bytes (a latin1 string, one char per byte):
 * leading '/', './' and '.' parts go, '..' pops. Returns null when '..' would climb out of the root.
 */
export function cleanName(nameLatin1: string): string | null {
  let name = nameLatin1;
  if (name.startsWith('./')) name = name.slice(2);
  // Most names are already clean: no empty, '.' or '..' parts.
  if (name !== '' && !name.startsWith('/') && !name.includes('//') && !/(^|\/)\.\.?(\/|$)/.test(name)) {
    return name.endsWith('/') ? name.slice(0, -1) : name;
  }
  const out: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length === 0) return null;
      out.pop();
    } else out.push(part);
  }
  return out.join('/');
}

/** Text for reports: UTF-8 as is, any byte that is not part of valid UTF-8 as \xNN. */
export function displayName(bytes: Buffer): string {
  const strict = new TextDecoder('utf-8', { fatal: true });
  try {
    return strict.decode(bytes);
  } catch {
    let out = '';
    let i = 0;
    while (i < bytes.length) {
      const b = bytes[i];
      const len = b < 0x80 ? 1 : b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
      if (len > 0 && i + len <= bytes.length) {
        try {
          out += strict.decode(bytes.subarray(i, i + len));
          i += len;
          continue;
        } catch {
          /* fall through to the escape */
        }
      }
      out += '\\x' + b.toString(16).padStart(2, '0');
      i++;
    }
    return out;
  }
}

/** Reported names are cleaned (no './'); a non-UTF-8 name also carries its exact bytes in the detail. */
export function reportName(e: FileEntry): string {
  const clean = cleanName(e.nameLatin1);
  return displayName(clean === null ? e.nameBytes : Buffer.from(clean, 'latin1'));
}

export function fileProblem(e: FileEntry, problem: FileProblemKind, detail?: string): FileProblem {
  const p: FileProblem = { name: reportName(e), problem };
  const d = [detail, e.nameRaw ? `name_raw ${e.nameBytes.toString('base64')}` : undefined].filter(Boolean).join('; ');
  if (d) p.detail = d;
  return p;
}
