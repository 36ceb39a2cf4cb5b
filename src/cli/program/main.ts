// layergc's command line: parse, run one command, exit with its documented code.
import { Command } from 'commander';
import { scanCommand } from '../commands/scan.js';
import { explainCommand } from '../commands/explain.js';
import { purgeCommand } from '../commands/purge.js';
import { verifyCommand } from '../commands/verify.js';
import { dfCommand } from '../commands/df.js';
import { restoreCommand } from '../commands/restore.js';
import { unlockCommand } from '../commands/unlock.js';
import { VERSION } from '../version.js';

const EXIT_CODES = `
Exit codes:
  0  nothing found (scan, verify), or everything planned was removed (purge);
     df always
  1  findings (scan, verify), or some items could not be removed (purge), or
     a container held a broken chain back
  2  could not run: bad arguments, not a Docker data root, unreadable
  3  refused: a dockerd runs on this data root and the request needs it stopped
  4  a layout layergc does not handle (unknown driver, containerd schema or
     snapshotter)
  5  another layergc holds this data root (or may: see layergc unlock);
     unlock: refused, the holder is alive`;

const EXAMPLES = `
Examples:
  layergc scan                     what is orphaned or broken, and what it costs
  layergc purge --dry-run          what a purge would remove; changes nothing
  layergc purge --yes              remove it (-f, --force: the same)
  layergc explain nginx:1.27       why an image, container, layer or dir is kept
  layergc verify my-container      prove its layers' content against the DiffIDs`;

/** commander's usage errors: one line naming the help to read, exit 2 (a bad argument). */
function quietErrors(c: Command, helpOf: string): Command {
  return c
    .configureOutput({
      outputError: (msg, write) =>
        write(
          `layergc: ${msg
            .replace(/^error: /, '')
            .trim()
            .replace(/\s*\n\s*/g, ' ')} (see ${helpOf} --help)\n`,
        ),
    })
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));
}

export function program(): Command {
  const p = new Command('layergc')
    .description("Offline repair tool for Docker's image layer store: find, explain, verify and safely purge orphan and broken layers.")
    .version(VERSION)
    .addHelpText('after', `${EXAMPLES}\n${EXIT_CODES}`);
  quietErrors(p, 'layergc');
  for (const c of [scanCommand(), purgeCommand(), verifyCommand(), explainCommand(), dfCommand(), restoreCommand(), unlockCommand()]) {
    c.addHelpText('after', EXIT_CODES);
    quietErrors(c, `layergc ${c.name()}`);
    p.addCommand(c);
  }
  return p;
}

await program().parseAsync(process.argv);
