// Durations as Docker and Go write them (time.ParseDuration): 1h30m, 90m, 2h45m30s, 1.5h, 0.
const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, μs: 1e-3, ms: 1, s: 1e3, m: 6e4, h: 36e5 };

export const DURATION_UNITS = 'h, m, s, ms, us, ns';

/** Milliseconds, or null when `s` is not a Go duration. A bare number other than 0 is not one. */
export function parseDuration(s: string): number | null {
  const t = s.trim();
  if (/^[+]?0+(\.0*)?$/.test(t)) return 0;
  if (!/^[+]?(\d+(\.\d*)?|\.\d+)[a-zµμ]+/.test(t)) return null;
  let ms = 0;
  let rest = t.replace(/^\+/, '');
  while (rest) {
    const m = /^(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/.exec(rest);
    if (!m) return null;
    ms += Number(m[1]) * UNIT_MS[m[2]];
    rest = rest.slice(m[0].length);
  }
  return ms;
}
