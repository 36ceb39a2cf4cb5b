// dangling-link: overlay2 l/<LID> symlinks whose layer dir is gone.
import { measure } from './measure.js';
import { noAffects, type Finding, type FindingModule } from './types.js';

export const danglingLinks: FindingModule = async (ctx) => {
  const out: Finding[] = [];
  for (const l of await ctx.store.driver.danglingLinks()) {
    const m = measure(ctx, [l.path]);
    out.push({
      kind: 'dangling-link',
      severity: 'warning',
      paths: [l.path],
      bytes: m.bytes,
      reclaimable: true,
      reason: `link ${l.reason}`,
      affects: noAffects(),
      removal: { type: 'link', path: l.path },
      newestMs: m.newestMs,
    });
  }
  return out;
};
