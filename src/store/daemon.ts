// Is a dockerd working on this data root? Looked up from the processes themselves (their
// command line and config file), not only /var/run/docker.pid, so a daemon started with its own
// exec-root and pidfile is found too.
import { readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { trimSpace } from './digest.js';
import { DEFAULT_DAEMON_CONFIG, DEFAULT_DATA_ROOT, runningDaemonConfig } from './daemon-config.js';
import { REMAP_SUBDIR } from '../layout.js';
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

/** The data root a dockerd process uses, from its arguments and config file. */
export function daemonDataRoot(args: string[], cwd = '/'): { dataRoot: string; userns: boolean } {
  let dataRoot = flagValue(args, ['--data-root', '-g', '--graph']);
  let userns = flagValue(args, ['--userns-remap']) !== undefined;
  if (!dataRoot || !userns) {
    const cfgPath = flagValue(args, ['--config-file']) ?? DEFAULT_DAEMON_CONFIG;
    // no config, or unreadable: the daemon would not start with a broken one
    const cfg = runningDaemonConfig(cfgPath.startsWith('/') ? cfgPath : `${cwd}/${cfgPath}`) ?? {};
    if (!dataRoot && typeof cfg['data-root'] === 'string') dataRoot = cfg['data-root'];
    if (!dataRoot && typeof cfg.graph === 'string') dataRoot = cfg.graph;
    if (typeof cfg['userns-remap'] === 'string' && cfg['userns-remap']) userns = true;
  }
  dataRoot = dataRoot ?? DEFAULT_DATA_ROOT;
  return { dataRoot: realOr(dataRoot.startsWith('/') ? dataRoot : `${cwd}/${dataRoot}`), userns };
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
  for (const p of pids) {
    let comm: string;
    let args: string[];
    let cwd = '/';
    try {
      comm = trimSpace(readFileSync(`${procDir}/${p}/comm`, 'utf8'));
      if (comm !== 'dockerd') continue;
      args = readFileSync(`${procDir}/${p}/cmdline`, 'utf8').split('\0').filter(Boolean);
      try { cwd = realpathSync(`${procDir}/${p}/cwd`); } catch { /* keep / */ }
    } catch {
      continue; // the process ended while we looked
    }
    const d = daemonDataRoot(args.slice(1), cwd);
    const parentOfRemapped = d.userns && dataRoot.startsWith(`${d.dataRoot}/`) && REMAP_SUBDIR.test(dataRoot.slice(d.dataRoot.length + 1));
    if (d.dataRoot === dataRoot || parentOfRemapped || sameDir(`${procDir}/${p}/root${d.dataRoot}`, dataRoot) || (d.userns && sameDir(`${procDir}/${p}/root${d.dataRoot}`, dataRoot.replace(/\/\d+\.\d+$/, '')))) processes.push({ pid: Number(p), dataRoot: d.dataRoot, userns: d.userns });
  }
  return { running: processes.length > 0, processes };
}
