// A progress line on stderr for long verifies on a terminal: layers, bytes, rate, time left.
import { human } from '../cli/output.js';

export function progressBar(total: number) {
  const started = Date.now();
  let last = 0;
  const write = (s: string) => process.stderr.write(`\r\x1b[2K${s}`);
  return {
    update: (p: { layersDone: number; layersTotal: number; bytes: number }) => {
      const now = Date.now();
      if (now - last < 200 && p.layersDone < p.layersTotal) return;
      last = now;
      const secs = Math.max(0.001, (now - started) / 1000);
      const rate = p.bytes / secs;
      const frac = p.layersTotal ? p.layersDone / p.layersTotal : 1;
      const width = 24;
      const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, '.');
      const left = frac > 0 ? Math.round(secs / frac - secs) : 0;
      write(`[${bar}] ${p.layersDone}/${total} layers  ${human(p.bytes)}  ${human(rate)}/s  ${frac > 0 && frac < 1 ? `~${left}s left` : ''}`);
    },
    done: () => process.stderr.write('\r\x1b[2K'),
  };
}
