// The real CLI's commands (dist/cli/commands/*.js, the same commander wiring as dist/cli/program/main.js),
// kept loaded in one process that runs one command line after another: `npm run fuzz` uses it so
// that 2,000 iterations do not spend most of their time starting Node. Protocol: one JSON line in
// ({"args": [...]}) per run, one JSON line out ({code, stdout, stderr, rssMiB, peakMiB}) on fd 3.
// A run that hangs is the parent's to kill; the parent then starts a fresh server.
import { createInterface } from 'node:readline';
import { createWriteStream } from 'node:fs';
import { Command } from 'commander';

const dist = new URL('../../dist/cli/commands/', import.meta.url);
const factories = await Promise.all(
  ['scan', 'purge', 'verify', 'explain', 'df'].map(async (n) => {
    const m = await import(new URL(`${n}.js`, dist).href);
    return m[`${n}Command`];
  }),
);

class Exit extends Error {
  constructor(code) {
    super(`exit ${code}`);
    this.code = code;
  }
}

function program() {
  const p = new Command('layergc').exitOverride((err) => {
    throw new Exit(err.exitCode === 0 ? 0 : 2);
  });
  for (const f of factories) {
    const c = f();
    c.exitOverride((err) => {
      throw new Exit(err.exitCode === 0 ? 0 : 2);
    });
    p.addCommand(c);
  }
  return p;
}

const reply = createWriteStream(null, { fd: 3 });
const realOut = process.stdout.write.bind(process.stdout);
const realErr = process.stderr.write.bind(process.stderr);
const realExit = process.exit;

for await (const line of createInterface({ input: process.stdin })) {
  const { args } = JSON.parse(line);
  let stdout = '';
  let stderr = '';
  process.stdout.write = (s) => {
    stdout += s;
    return true;
  };
  process.stderr.write = (s) => {
    stderr += s;
    return true;
  };
  process.exit = (code) => {
    throw new Exit(code ?? 0);
  };
  process.exitCode = undefined;
  let code;
  try {
    await program().parseAsync(['node', 'layergc', ...args]);
    code = process.exitCode ?? 0;
  } catch (err) {
    if (err instanceof Exit) code = err.code;
    else {
      stderr += `internal error (escaped the command): ${err?.stack ?? err}\n`;
      code = 70;
    }
  } finally {
    process.stdout.write = realOut;
    process.stderr.write = realErr;
    process.exit = realExit;
    process.exitCode = undefined;
  }
  reply.write(`${JSON.stringify({ code, stdout, stderr, rssMiB: process.memoryUsage().rss / 1048576, peakMiB: process.resourceUsage().maxRSS / 1024 })}\n`);
}
