// Waiting for conditions instead of sleeping, and names that keep parallel suites apart.
import { randomBytes } from 'node:crypto';

export interface UntilOptions {
  timeout?: number;
  interval?: number;
  /** What was awaited, for the error on timeout. */
  message?: string;
}

/** Polls `predicate` until it returns true; throws a descriptive error after `timeout` ms. */
export async function until(predicate: () => boolean | Promise<boolean>, opts: UntilOptions = {}): Promise<void> {
  const { timeout = 10_000, interval = 20, message } = opts;
  const started = Date.now();
  let attempts = 0;
  let lastError: unknown;
  for (;;) {
    attempts++;
    try {
      if (await predicate()) return;
      lastError = undefined;
    } catch (err) {
      lastError = err; // a predicate may throw while the system is still coming up
    }
    if (Date.now() - started >= timeout) {
      const what = message ?? predicate.toString().replace(/\s+/g, ' ').slice(0, 120);
      const why = lastError instanceof Error ? `; last error: ${lastError.message}` : '';
      throw new Error(`until: timed out after ${timeout} ms (${attempts} attempts) waiting for ${what}${why}`,
        lastError === undefined ? undefined : { cause: lastError });
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** A short unique id made of [A-Za-z0-9_]: fits stream names, Redis key prefixes and database names. */
export function uniqueName(prefix: string): string {
  const clean = prefix.replace(/[^A-Za-z0-9_]/g, '_').slice(0, 24);
  return `${clean}_${Date.now().toString(36)}${randomBytes(4).toString('hex')}`;
}
