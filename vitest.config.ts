import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 300_000,
    // real-daemon files each start dockerds and move hundreds of MB: on a 2-core machine they
    // run one file at a time, so no test's timing depends on another's load
    fileParallelism: false,
    reporters: ['default'],
    // the last lines say when real-daemon tests were skipped, and what installs their needs
    globalSetup: ['test/helpers/skip-summary.ts'],
  },
});
