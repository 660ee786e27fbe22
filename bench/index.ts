// Entry of `parley bench` (being written): scenarios, baselines, budgets.
import type { Logger } from '../lib/observability/index.js';

export async function benchCommand(_argv: string[], log: Logger): Promise<number> {
  log.error('bench is not implemented yet');
  return 2;
}
