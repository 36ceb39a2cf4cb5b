// layergc's command line: parse, run one command, exit with its documented code.
import { Command } from 'commander';
import { scanCommand } from './commands/scan.js';
import { explainCommand } from './commands/explain.js';
import { purgeCommand } from './commands/purge.js';
import { verifyCommand } from './commands/verify.js';
import { dfCommand } from './commands/df.js';
import { restoreCommand } from './commands/restore.js';
import { VERSION } from './version.js';

const EXIT_CODES = `
Exit codes:
  0  nothing found (scan, verify), or everything planned was removed (purge); df always
  1  findings (scan, verify), or some items could not be removed (purge), or a container held a broken chain back
  2  could not run: bad arguments, not a Docker data root, unreadable
  3  refused: a dockerd runs on this data root and the request needs it stopped
  4  a layout layergc does not handle (unknown driver, containerd schema or snapshotter)
  5  another layergc holds this data root`;

export function program(): Command {
  const p = new Command('layergc')
    .description("Offline repair tool for Docker's image layer store: find, explain, verify and safely purge orphan and broken layers.")
    .version(VERSION)
    .addHelpText('after', EXIT_CODES)
    .showHelpAfterError()
    .exitOverride((err) => {
      // commander's own usage errors (unknown option, bad choice) are exit 2, like any bad argument
      process.exit(err.exitCode === 0 ? 0 : 2);
    });
  for (const c of [scanCommand(), purgeCommand(), verifyCommand(), explainCommand(), dfCommand(), restoreCommand()]) {
    c.addHelpText('after', EXIT_CODES);
    c.exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));
    p.addCommand(c);
  }
  return p;
}

await program().parseAsync(process.argv);
