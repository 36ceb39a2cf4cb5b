// Mount points from /proc/self/mountinfo: layergc never crosses one, and never deletes a tree
// with one inside.
import { readFileSync } from 'node:fs';

/** Undo the octal escapes mountinfo uses for space, tab, newline and backslash. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export class MountTable {
  readonly points: ReadonlySet<string>;
  constructor(points: Iterable<string>) {
    this.points = new Set(points);
  }

  static read(file = '/proc/self/mountinfo'): MountTable {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      return new MountTable([]);
    }
    const pts: string[] = [];
    for (const line of text.split('\n')) {
      const f = line.split(' ');
      if (f.length > 4) pts.push(unescape(f[4]));
    }
    return new MountTable(pts);
  }

  isMountPoint(path: string): boolean {
    return this.points.has(path);
  }

  /** Mount points at or below `path`. */
  under(path: string): string[] {
    const prefix = path.endsWith('/') ? path : `${path}/`;
    return [...this.points].filter((p) => p === path || p.startsWith(prefix)).sort();
  }
}
