// Options every command shares, and how a command ends: an exit code, never a stray throw.
import { type Command, Option } from 'commander';
import { ExitCode, fsCause, LayergcError } from '../errors.js';
import { makeOutput, type Output } from './output.js';
import { makeLogger, type Logger } from './log.js';
import { writeMetricsFile } from './metrics-file.js';

export type Format = 'human' | 'json' | 'prometheus';

export interface CommonOptions {
  dataRoot?: string;
  driver?: string;
  daemonConfig?: string;
  containerdRoot?: string;
  json?: boolean;
  format?: Format;
  color?: boolean;
  quiet?: boolean;
  logFormat?: 'text' | 'json';
  metricsFile?: string;
}

export function withStoreOptions(cmd: Command): Command {
  return withOutputOptions(
    cmd
      .option('--data-root <dir>', 'Docker data root (default: data-root from the daemon config, else /var/lib/docker)')
      .option('--driver <name>', 'storage driver (default: storage-driver from the daemon config, else detected)')
      .option('--daemon-config <file>', 'dockerd config file to read data-root, storage-driver and userns-remap from', undefined)
      .option('--containerd-root <dir>', "containerd's root for Docker's containerd image store (default: <data-root>/containerd/daemon, else the system containerd's root)"),
  );
}

/** The output options every command honours alike. */
export function withOutputOptions(cmd: Command): Command {
  return cmd
    .option('--json', 'print one JSON object (same as --format json)')
    .addOption(new Option('--format <format>', 'output format').choices(['human', 'json', 'prometheus']))
    .option('--no-color', 'no colour (also: NO_COLOR=1, or not a terminal)')
    .option('-q, --quiet', 'print nothing when nothing was found or done; errors still go to stderr')
    .addOption(new Option('--log-format <format>', 'format of log events on stderr').choices(['text', 'json']).default('text'))
    .option('--metrics-file <path>', 'also write Prometheus metrics to this file, atomically (node_exporter textfile collector)');
}

export function formatOf(o: CommonOptions): Format {
  return o.format ?? (o.json ? 'json' : 'human');
}

/** --fail-on: the least severe finding that makes scan or verify exit 1. */
export type FailOn = 'error' | 'warning' | 'none';

export function withFailOn(cmd: Command): Command {
  return cmd.addOption(
    new Option('--fail-on <severity>', 'exit 1 when a finding of this severity or worse is found: error (broken layers only), warning (also garbage), none (always 0)')
      .choices(['error', 'warning', 'none'])
      .default('warning'),
  );
}

export function exitFor(findings: readonly { severity: 'error' | 'warning' }[], failOn: FailOn = 'warning'): number {
  if (failOn === 'none') return ExitCode.OK;
  return findings.some((f) => failOn === 'warning' || f.severity === 'error') ? ExitCode.FOUND : ExitCode.OK;
}

export interface RunContext {
  out: Output;
  log: Logger;
  opts: CommonOptions;
}

/** Run a command body; map errors to the documented exit codes. */
export function action<T extends CommonOptions>(body: (ctx: RunContext, opts: T, args: string[]) => Promise<number>) {
  return async (...argv: unknown[]) => {
    const cmd = argv[argv.length - 1] as Command;
    const opts = cmd.opts<T>();
    const out = makeOutput({ color: opts.color });
    const log = makeLogger(opts.logFormat ?? 'text', out);
    let code: number;
    try {
      if (opts.json && opts.format && opts.format !== 'json') throw new LayergcError(`--json and --format ${opts.format} conflict: pick one`);
      code = await body({ out, log, opts }, opts, cmd.args);
    } catch (err) {
      if (err instanceof LayergcError) {
        log.error(err.message, { exitCode: err.exitCode });
        code = err.exitCode;
      } else if (fsCause(err)) {
        // a full, read-only or forbidding filesystem is the host's state, not a bug: one line, no stack
        const e = err as NodeJS.ErrnoException;
        log.error(`cannot ${e.syscall ?? 'write'}${e.path ? ` ${e.path}` : ''}: ${fsCause(err)}`, { exitCode: ExitCode.USAGE, code: e.code });
        code = ExitCode.USAGE;
      } else {
        log.error(`internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
        code = ExitCode.USAGE;
      }
    }
    process.exitCode = code;
  };
}

/** The three renderings of a report; human may be '' (--quiet with nothing to say). */
export interface Renderings {
  json: () => unknown;
  metrics: () => string;
  human: () => string;
}

/**
 * Write a report where the options say: --metrics-file, then stdout in the chosen format. `after`:
 * a run that changed things (purge) prints its report even when the metrics file cannot be
 * written, and then fails with that error and this sentence.
 */
export async function deliver({ out, opts }: RunContext, r: Renderings, after?: string): Promise<void> {
  const failed = opts.metricsFile
    ? await writeMetricsFile(opts.metricsFile, r.metrics()).then(
        () => undefined,
        (err: Error) => err,
      )
    : undefined;
  if (failed && !after) throw failed;
  const format = formatOf(opts);
  const text = format === 'json' ? JSON.stringify(r.json(), null, 2) : format === 'prometheus' ? r.metrics() : r.human();
  if (text) out.out(text);
  if (failed) throw new LayergcError(`${failed.message}; ${after}`);
}
