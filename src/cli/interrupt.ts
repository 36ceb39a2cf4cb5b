// Ctrl-C and SIGTERM during a purge: the item under way is finished (or left staged for the next
// run, as after a crash), nothing new is started, the report says what was done, and the exit
// code is the shell's for that signal (130, 143). A second signal ends the run at once: the
// journal and the staged names make that as safe as a crash.
import { createInterface } from 'node:readline';

const CODES = { SIGINT: 130, SIGTERM: 143 } as const;
type Sig = keyof typeof CODES;

export class Interrupt {
  private readonly controller = new AbortController();
  private received?: Sig;
  private readonly handlers = (Object.keys(CODES) as Sig[]).map((sig) => {
    const h = () => {
      if (this.received) process.exit(CODES[sig]);
      this.received = sig;
      this.onFirst(sig);
      this.controller.abort(sig);
    };
    process.on(sig, h);
    return [sig, h] as const;
  });

  constructor(private readonly onFirst: (sig: Sig) => void = () => undefined) {}

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** 130 after SIGINT, 143 after SIGTERM; undefined when no signal came. */
  get exitCode(): number | undefined {
    return this.received && CODES[this.received];
  }

  /** Signal the prompt that the person pressed Ctrl-C there (the terminal sends no SIGINT in raw mode). */
  raise(sig: Sig): void {
    this.received ??= sig;
    this.controller.abort(sig);
  }

  dispose(): void {
    for (const [sig, h] of this.handlers) process.off(sig, h);
  }
}

/**
 * Ask on the terminal. Ctrl-D (end of input) is a no; Ctrl-C, or a signal while waiting, is
 * 'interrupted'. Either prints a newline so the shell prompt starts on a line of its own.
 */
export function confirm(question: string, interrupt: Interrupt): Promise<'yes' | 'no' | 'interrupted'> {
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  return new Promise((resolve) => {
    let done = false;
    const finish = (answer: 'yes' | 'no' | 'interrupted', newline: boolean) => {
      if (done) return;
      done = true;
      if (newline) process.stdout.write('\n');
      interrupt.signal.removeEventListener('abort', onAbort);
      rl.close();
      resolve(answer);
    };
    const onAbort = () => finish('interrupted', true);
    interrupt.signal.addEventListener('abort', onAbort);
    rl.on('SIGINT', () => {
      interrupt.raise('SIGINT');
      finish('interrupted', true);
    });
    rl.on('close', () => finish('no', true));
    rl.question(question, (a) => finish(/^y(es)?$/i.test(a.trim()) ? 'yes' : 'no', false));
  });
}
