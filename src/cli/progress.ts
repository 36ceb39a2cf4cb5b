// The progress line of a long verify, on stderr when stderr is a terminal: layers, bytes, rate,
// and time left estimated from bytes (one big layer among small ones would make a layer count lie).
import { human } from './output.js';

export interface Progress {
  layersDone: number;
  layersTotal: number;
  bytes: number;
}

/** `totalBytes`: the layers' recorded sizes (layerdb `size`), an estimate of what will be read. */
export function progressLine(totalBytes: number, write: (s: string) => void = (s) => process.stderr.write(s)) {
  const started = Date.now();
  let last = 0;
  return {
    update: (p: Progress) => {
      const now = Date.now();
      if (now - last < 200 && p.layersDone < p.layersTotal) return;
      last = now;
      const secs = Math.max(0.001, (now - started) / 1000);
      const rate = p.bytes / secs;
      // the recorded sizes leave out tar headers: never claim to be done before the last layer is
      const frac = p.layersDone >= p.layersTotal ? 1 : Math.min(0.99, totalBytes > 0 ? p.bytes / totalBytes : p.layersDone / Math.max(1, p.layersTotal));
      const bar = '#'.repeat(Math.round(frac * 20)).padEnd(20, '.');
      const left = rate > 0 && totalBytes > p.bytes ? `  ~${Math.ceil((totalBytes - p.bytes) / rate)}s left` : '';
      write(`\r\x1b[2K[${bar}] ${p.layersDone}/${p.layersTotal} layers  ${human(p.bytes)}${totalBytes ? ` of ~${human(totalBytes)}` : ''}  ${human(rate)}/s${frac < 1 ? left : ''}`);
    },
    done: () => write('\r\x1b[2K'),
  };
}
