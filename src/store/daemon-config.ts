// dockerd's config file (daemon.json), parsed here only: by locate, for where this root and its
// driver are, and by the daemon finder, for the data root each running dockerd uses.
import { readSmallFileSync, smallFileProblem } from '../fsx/read.js';
import { LayergcError } from '../errors.js';

export const DEFAULT_DAEMON_CONFIG = '/etc/docker/daemon.json';
export const DEFAULT_DATA_ROOT = '/var/lib/docker';

export interface DaemonConfig {
  'data-root'?: string;
  graph?: string;
  'storage-driver'?: string;
  'userns-remap'?: string;
  features?: Record<string, unknown>;
  containerd?: string;
  'containerd-namespace'?: string;
  'containerd-plugin-namespace'?: string;
}

/**
 * daemon.json text as dockerd reads it: `config` when it is a JSON object, and `problem` (how the
 * line after "daemon config <file>" reads) when dockerd would refuse it: not JSON, or a field of the wrong type.
 */
export function parseDaemonConfig(text: string): { config?: DaemonConfig; problem?: string } {
  let config: DaemonConfig;
  try {
    config = JSON.parse(text) as DaemonConfig;
    if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new Error('not a JSON object');
  } catch (err) {
    return { problem: ` is not valid JSON: ${(err as Error).message}` };
  }
  for (const key of ['data-root', 'graph', 'storage-driver', 'userns-remap'] as const) {
    if (config[key] !== undefined && typeof config[key] !== 'string') return { config, problem: `: "${key}" is not a string` };
  }
  const feat = config.features;
  if (feat !== undefined && (typeof feat !== 'object' || feat === null || Array.isArray(feat))) return { config, problem: ': "features" is not an object' };
  return { config };
}

/** The config layergc is pointed at (or the default one, when it exists): dockerd refuses a broken one, and so does layergc, in one line. */
export function readDaemonConfig(path: string | undefined): { config: DaemonConfig; path?: string } {
  const file = path ?? DEFAULT_DAEMON_CONFIG;
  const f = readSmallFileSync(file);
  if (f.state === 'missing' && !path) return { config: {} };
  if (f.state !== 'ok') throw new LayergcError(`cannot read daemon config ${file}: it ${smallFileProblem(f)}`);
  const { config, problem } = parseDaemonConfig(f.text);
  if (problem) throw new LayergcError(`daemon config ${file}${problem}`);
  return { config: config!, path: file };
}

/** The config a running dockerd names, as far as it parses; undefined when it cannot be read (never blocks on a FIFO). */
export function runningDaemonConfig(file: string): DaemonConfig | undefined {
  try {
    const f = readSmallFileSync(file);
    return f.state === 'ok' ? parseDaemonConfig(f.text).config : undefined;
  } catch {
    return undefined;
  }
}
