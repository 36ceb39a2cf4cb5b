// The df use case: where the disk under the data root goes, in categories that add up to du.
import { openStore } from '../store/index.js';
import { diskUsage } from '../df/index.js';
import { buildkitNote } from './notes.js';
import type { Where } from './hooks.js';
import type { DfReport } from './report.js';

export async function df(opts: Where): Promise<DfReport> {
  const started = Date.now();
  const store = await openStore(opts);
  const usage = await diskUsage(store);
  return { command: 'df', usage, notes: [buildkitNote(store)].filter((n): n is string => !!n), times: { started, finished: Date.now() } };
}
