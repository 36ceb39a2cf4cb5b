/**
 * vitest globalSetup: when the real-daemon tests (test/e2e) were skipped, for want of a dockerd or
 * a tool they need, the run's last lines say how many and the one command that installs it all.
 * The teardown runs after the reporters' summary, so these are the last lines of `npm test`.
 */
import type { TestProject } from 'vitest/node';

export const INSTALL = 'sudo bash .ci/install-deps.sh';

export default function setup(project: TestProject) {
  return () => {
    let skipped = 0;
    for (const m of project.vitest.state.getTestModules()) {
      if (!m.moduleId.includes('/test/e2e/')) continue;
      skipped += [...m.children.allTests('skipped')].length;
    }
    if (skipped)
      process.stdout.write(
        `\n${skipped} real-daemon test${skipped === 1 ? ' was' : 's were'} skipped (no dockerd 20.10/28.5 here, or a tool they need is missing).\nInstall what they need: ${INSTALL}\n`,
      );
  };
}
