// Mount points from /proc/self/mountinfo (the one parser of it in layergc): layergc never crosses
// one, and never deletes a tree with one inside. Mount ids (mountinfo's first field, and the
// mnt_id of an open fd) tell a same-filesystem bind mount from a plain directory, which st_dev
// cannot.
import { readFileSync } from 'node:fs';

/** Undo the octal escapes mountinfo uses for space, tab, newline and backslash. */
export function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export interface MountEntry {
  id: number;
  parent: number;
  point: string;
  fstype: string;
  source: string;
}

export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const [pre, post] = line.split(' - ');
    const f = (pre ?? '').split(' ');
    if (f.length < 5) continue;
    const [fstype, source] = (post ?? '').split(' ');
    out.push({ id: Number(f[0]), parent: Number(f[1]), point: unescapeMountinfo(f[4]), fstype: fstype ?? '', source: unescapeMountinfo(source ?? '') });
  }
  return out;
}

export class MountTable {
  readonly points: ReadonlySet<string>;
  /** False when the table could not be read: then nothing can be shown to be free of mounts. */
  readonly known: boolean;
  constructor(
    points: Iterable<string>,
    readonly entries: MountEntry[] = [],
    known = true,
  ) {
    this.points = new Set(points);
    this.known = known;
  }

  static read(file = '/proc/self/mountinfo'): MountTable {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      return new MountTable([], [], false);
    }
    const entries = parseMountinfo(text);
    return new MountTable(
      entries.map((e) => e.point),
      entries,
    );
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

/** The mount id an open fd lies on (/proc/self/fdinfo, Linux 3.15+), or undefined when unreadable. */
export function mountIdOfFd(fd: number): number | undefined {
  try {
    const m = /^mnt_id:\s*(\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'latin1'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}
