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
  constructor(message: string, readonly exitCode: ExitCodeValue = ExitCode.USAGE) {
    super(message);
  }
}
