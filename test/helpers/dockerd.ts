/**
 * The private-dockerd launcher for the e2e tests, with its TypeScript types. The implementation is
 * dockerd.mjs (plain JavaScript, so that bench/*.mjs starts its daemons with the same code); see
 * there for how a daemon is started, isolated and cleaned up.
 */
export * from './dockerd.mjs';

export type DockerVersion = '20.10' | '28.5';
export type DriverName = 'overlay2' | 'vfs' | 'fuse-overlayfs' | 'btrfs';

export interface DaemonOptions {
  version?: DockerVersion;
  driver?: DriverName;
  /** reuse an existing data root (it is never deleted by destroy(); only unmounted) */
  dataRoot?: string;
  debug?: boolean;
  /** 28.5: the containerd image store (daemon.json features.containerd-snapshotter; snapshotter overlayfs) */
  containerdStore?: boolean;
}

export interface DockerResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface DockerCallOptions {
  input?: string | Buffer;
  allowFail?: boolean;
  env?: Record<string, string>;
  timeoutMs?: number;
}
