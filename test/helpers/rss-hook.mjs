// Preloaded into a layergc child by test/helpers/bounded.ts: on exit, writes the process's peak
// resident set size (KiB, worker threads included) to $LAYERGC_RSS_FILE.
import { writeFileSync } from 'node:fs';

const file = process.env.LAYERGC_RSS_FILE;
if (file) {
  process.on('exit', () => {
    try {
      writeFileSync(file, String(process.resourceUsage().maxRSS));
    } catch {
      /* the test reports a missing measurement */
    }
  });
}
