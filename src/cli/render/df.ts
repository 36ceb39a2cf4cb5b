// layergc df for people (a short table with bars, biggest first, and what a purge would free),
// from the report of src/app/df.ts.
import { CATEGORY_LABEL, PURGED_CATEGORIES, type DfCategory } from '../../df/categories.js';
import type { DfCategoryBytes, DfReport as DiskUsage } from '../../df/index.js';
import type { DfReport } from '../../app/report.js';
import { human, type Output } from '../output.js';
import { short } from '../../store/digest.js';

const BAR = 24;
const EIGHTHS = ['', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
const IMAGES_SHOWN = 10;
const OTHERS_SHOWN = 10;

/** A bar of `frac` of BAR cells, in eighths; a visible sliver for anything above zero. */
export function bar(frac: number): string {
  const eighths = Math.max(frac > 0 ? 1 : 0, Math.round(Math.min(1, frac) * BAR * 8));
  return '█'.repeat(Math.floor(eighths / 8)) + EIGHTHS[eighths % 8];
}

const labelOf = (c: DfCategoryBytes) => (c.category === 'other' ? `other: ${c.path}` : CATEGORY_LABEL[c.category]);
const unref = (r: DiskUsage) => r.categories.find((c) => c.category === 'unreferenced-layer')?.bytes ?? 0;

export function renderDfHuman(o: Output, d: DfReport, opts: { quiet?: boolean } = {}): string {
  if (opts.quiet) return '';
  const { c } = o;
  const r = d.usage;
  const notes = d.notes;
  const lines: string[] = [];
  lines.push(`${c.bold('layergc df')} ${r.dataRoot} (${r.driver})${r.daemonRunning ? c.yellow('  a dockerd is running on this data root') : ''}`);
  for (const n of notes) lines.push(c.yellow(`note: ${n}`));
  lines.push(`${c.bold(human(r.total))} on disk under the data root, counted as \`du -sx -B1\` counts (each inode once, no mount point crossed)`);
  lines.push('');
  const nonzero = r.categories.filter((x) => x.bytes > 0);
  // a root with thousands of strays: the biggest `other` paths here, every one in --json
  const others = nonzero.filter((x) => x.category === 'other');
  const shown = nonzero.filter((x) => x.category !== 'other' || others.indexOf(x) < OTHERS_SHOWN);
  const hidden = others.slice(OTHERS_SHOWN);
  const w = Math.max(8, ...shown.map((x) => labelOf(x).length));
  for (const x of shown) {
    const frac = r.total ? x.bytes / r.total : 0;
    const garbage = (PURGED_CATEGORIES as readonly DfCategory[]).includes(x.category);
    const row = `  ${labelOf(x).padEnd(w)}  ${human(x.bytes).padStart(9)}  ${`${(frac * 100).toFixed(1)}%`.padStart(6)}  ${bar(frac)}`;
    lines.push(garbage ? c.yellow(row) : x.category === 'broken-layer' ? c.red(row) : row);
  }
  if (hidden.length) lines.push(c.dim(`  … ${hidden.length} more other paths, ${human(hidden.reduce((t, x) => t + x.bytes, 0))} together (--json names each)`));
  if (r.images.length) {
    const list = r.images.slice(0, IMAGES_SHOWN).map((i) => ({ ...i, image: i.tags.length ? i.image : short(i.id) }));
    const iw = Math.max(5, ...list.map((i) => i.image.length));
    lines.push('');
    lines.push(c.bold(`  ${'image'.padEnd(iw)}  ${'unique'.padStart(9)}  ${'shared'.padStart(9)}`));
    for (const i of list) lines.push(`  ${i.image.padEnd(iw)}  ${human(i.uniqueBytes).padStart(9)}  ${human(i.sharedBytes).padStart(9)}`);
    if (r.images.length > list.length) lines.push(c.dim(`  … ${r.images.length - list.length} more images (--json lists them all)`));
    lines.push(c.dim('  unique: what `docker rmi` of that image alone frees; shared: layers other images, containers or BuildKit also use'));
  }
  if (r.mountsSkipped.length)
    lines.push(c.dim(`${r.mountsSkipped.length} mount point${r.mountsSkipped.length === 1 ? '' : 's'} under the data root not counted (running containers' merged/ and shm/), as du -x does not`));
  lines.push('');
  const more = unref(r) ? `; \`purge --include unreferenced-layer\` (daemon stopped) would add ${human(unref(r))}` : '';
  lines.push(
    r.reclaimableBytes
      ? `A purge would free ${c.bold(human(r.reclaimableBytes))} now: layergc purge --dry-run shows what${more}.${r.daemonRunning ? ' With the daemon running, unreferenced-driver-dir and stale-write-set items wait until nothing in them was written for --min-age.' : ''}`
      : `Nothing for a purge to free${more}.`,
  );
  return lines.join('\n');
}
