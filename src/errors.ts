// Exit codes and the one error type that carries one: documented in the README and in --help.
export const ExitCode = {
  OK: 0,
  /** scan/verify: findings; purge: some planned items could not be removed. */
  FOUND: 1,
  /** Could not run: bad arguments, not a Docker data root, unreadable. */
  USAGE: 2,
  /** Refused: a daemon runs on this data root and the request needs it stopped. */
  DAEMON_RUNNING: 3,
  /** A layout layergc does not handle (unknown driver, containerd schema or snapshotter). */
  UNSUPPORTED: 4,
  /** Another layergc holds this data root. */
  LOCKED: 5,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export class LayergcError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCodeValue = ExitCode.USAGE,
  ) {
    super(message);
  }
}

/**
 * A full, read-only or forbidding filesystem, said in words a person acts on (the errno in
 * parentheses); undefined for any other error. Root gets EACCES/EPERM only from an attribute, a
 * security module or a root-squashed network filesystem, so it is not told to run as root.
 */
export function fsCause(err: unknown): string | undefined {
  const code = typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
  switch (code) {
    case 'ENOSPC':
      return 'the filesystem is full (ENOSPC)';
    case 'EDQUOT':
      return 'the disk quota is exhausted (EDQUOT)';
    case 'EROFS':
      return 'the filesystem is read-only (EROFS)';
    case 'EACCES':
    case 'EPERM':
      return process.getuid?.() === 0
        ? `permission denied even to root: an immutable or append-only attribute, a security module or a root-squashed network filesystem (${code})`
        : `permission denied: run as root (${code})`;
    default:
      return undefined;
  }
}
