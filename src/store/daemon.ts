// Is a dockerd working on this data root? Looked up from the processes themselves (their
// command line and config file), not only /var/run/docker.pid, so a daemon started with its own
// exec-root and pidfile is found too.
import { readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { trimSpace } from './digest.js';
import { DEFAULT_DAEMON_CONFIG, DEFAULT_DATA_ROOT, runningDaemonConfig } from './daemon-config.js';
import { remapOf } from '../layout.js';
import type { DaemonInfo, DaemonProcess } from './model.js';

/** dockerd flags that take a value, as `--flag value` or `--flag=value`. */
export function flagValue(args: string[], names: string[]): string | undefined {
  let v: string | undefined;
  for (let i = 0; i < args.length; i++) {
    for (const n of names) {
      if (args[i] === n && i + 1 < args.length) v = args[i + 1];
      else if (args[i].startsWith(`${n}=`)) v = args[i].slice(n.length + 1);
    }
  }
  return v;
}

function realOr(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

/**
 * The data root a dockerd process uses, from its arguments and config file. With `at`, which maps
 * a path of the process to one this process can open (through /proc/<pid>/root and /proc/<pid>/cwd,
 * so a daemon in another mount namespace, Docker-in-Docker or a CI runner, is read in its own view,
 * its config file included), the data root is returned as the process names it; without, paths
 * are resolved here, relative ones against `cwd`.
 */
export function daemonDataRoot(args: string[], cwd = '/', at?: (path: string) => string): { dataRoot: string; userns: boolean } {
  const open = at ?? ((p: string) => (p.startsWith('/') ? p : `${cwd}/${p}`));
  let dataRoot = flagValue(args, ['--data-root', '-g', '--graph']);
  let userns = flagValue(args, ['--userns-remap']) !== undefined;
  if (!dataRoot || !userns) {
    // no config, or unreadable: the daemon would not start with a broken one
    const cfg = runningDaemonConfig(open(flagValue(args, ['--config-file']) ?? DEFAULT_DAEMON_CONFIG)) ?? {};
    if (!dataRoot && typeof cfg['data-root'] === 'string') dataRoot = cfg['data-root'];
    if (!dataRoot && typeof cfg.graph === 'string') dataRoot = cfg.graph;
    if (typeof cfg['userns-remap'] === 'string' && cfg['userns-remap']) userns = true;
  }
  const named = dataRoot ?? DEFAULT_DATA_ROOT;
  return { dataRoot: at ? named : realOr(open(named)), userns };
}

/**
 * Whether two paths are one directory, by device and inode: a dockerd's root seen through
 * /proc/<pid>/root (its own mount namespace: Docker-in-Docker, CI runners) or through a bind mount.
 */
function sameDir(a: string, b: string): boolean {
  try {
    const x = statSync(a);
    const y = statSync(b);
    return x.isDirectory() && x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

/** Every dockerd process whose data root is `dataRoot`, or its parent when userns-remap is on. */
export function findDaemons(dataRoot: string, procDir = '/proc'): DaemonInfo {
  const processes: DaemonProcess[] = [];
  let pids: string[] = [];
  try {
    pids = readdirSync(procDir).filter((n) => /^\d+$/.test(n));
  } catch {
    return { running: false, processes };
  }
  const remapped = remapOf(dataRoot)?.parent;
  for (const p of pids) {
    let args: string[];
    try {
      if (trimSpace(readFileSync(`${procDir}/${p}/comm`, 'utf8')) !== 'dockerd') continue;
      args = readFileSync(`${procDir}/${p}/cmdline`, 'utf8').split('\0').filter(Boolean);
    } catch {
      continue; // the process ended while we looked
    }
    // its paths as it sees them, opened through its own root and cwd: its mount namespace may not be ours
    const at = (path: string) => (path.startsWith('/') ? `${procDir}/${p}/root${path}` : `${procDir}/${p}/cwd/${path}`);
    const d = daemonDataRoot(args.slice(1), '/', at);
    let match: boolean;
    if (sameDir(`${procDir}/${p}/root/`, `${procDir}/${p}/root/`)) {
      // one directory or not, by device and inode: a path string may name another dir in its namespace
      match = sameDir(at(d.dataRoot), dataRoot) || (d.userns && remapped !== undefined && sameDir(at(d.dataRoot), remapped));
    } else {
      // its root cannot be opened (not root ourselves): compare the names as resolved here
      let cwd = '/';
      try {
        cwd = realpathSync(`${procDir}/${p}/cwd`);
      } catch {
        /* keep / */
      }
      const own = realOr(d.dataRoot.startsWith('/') ? d.dataRoot : `${cwd}/${d.dataRoot}`);
      match = own === dataRoot || (d.userns && remapped === own);
    }
    if (match) processes.push({ pid: Number(p), dataRoot: d.dataRoot, userns: d.userns });
  }
  return { running: processes.length > 0, processes };
}
