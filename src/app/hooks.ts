// What a use case may ask of its caller: log events, a progress line, a yes or no, a signal to
// stop. The CLI provides them; a use case never prints and never reads argv or the environment.
import type { ProgressFactory } from '../verify/findings.js';
import type { LocateOptions } from '../store/locate.js';

export type { ProgressFactory };

/** Log events: a message for people and fields for --log-format json. */
export interface Log {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
}

export interface Hooks {
  log?: Log;
  /** the progress line of a long verify */
  progress?: ProgressFactory;
  /** checked between items and between files: SIGINT or SIGTERM */
  signal?: AbortSignal;
}

/** Where the store is: the flags that locate it. */
export type Where = LocateOptions;

export const quietLog: Log = { info: () => undefined, warn: () => undefined };
