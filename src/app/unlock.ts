// The unlock use case: remove the lock of a layergc that no longer runs (one killed in a container,
// on another machine); refused while its holder is provably alive.
import { resolveDataRoot } from '../store/locate.js';
import { describeHolder, unlock as removeLock } from '../purge/lock.js';
import type { Where } from './hooks.js';
import type { UnlockReport } from './report.js';

export async function unlock(opts: Where): Promise<UnlockReport> {
  const started = Date.now();
  const { real } = await resolveDataRoot(opts);
  const r = await removeLock(real);
  const removed = r.removed ? { holder: r.removed.holder, text: r.removed.text, description: describeHolder(r.removed.holder) } : undefined;
  return { command: 'unlock', dataRoot: real, lock: r.path, removed, liveness: r.liveness, times: { started, finished: Date.now() } };
}
