// Lines for an 80-column terminal: words wrapped at spaces, continuation lines indented. A word
// longer than the line (a path) is never cut: copying it must still work.
export const WIDTH = 80;

// ANSI colour codes take no columns
const visible = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '').length;

export function wrap(text: string, indent = '', hang = `${indent}  `, width = WIDTH): string[] {
  const lines: string[] = [];
  let cur = indent;
  let empty = true;
  for (const word of text.split(/ +/)) {
    if (!empty && visible(cur) + 1 + visible(word) > width) {
      lines.push(cur);
      cur = hang + word;
    } else cur += (empty ? '' : ' ') + word;
    empty = false;
  }
  lines.push(cur);
  return lines;
}

/** The width of a summary table's kind column: the graph-driver kinds fit 26, containerd's run to 31; one space after the longest. */
export function kindWidth(kinds: string[]): number {
  return Math.max(26, ...kinds.map((k) => k.length + 1));
}
