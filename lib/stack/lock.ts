// A cross-process lock (a directory created atomically) so parallel test files never build the same binary twice.
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../observability/logger.js';
import { StackError } from './errors.js';
import { pidAlive, sleep } from './util.js';

/** Builds are slow on a cold machine (k6, FerretDB): wait long before giving up on another holder. */
const DEFAULT_TIMEOUT_MS = 45 * 60_000;
/** A lock directory without an owner file for this long was left by a process that died mid-acquire. */
const ORPHAN_MS = 30_000;

export async function withLock<T>(path: string, log: Logger, fn: () => Promise<T>, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let announced = false;
  for (;;) {
    if (await tryAcquire(path)) break;
    if (await isStale(path)) {
      await rm(path, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) {
      throw new StackError('LOCK_TIMEOUT', `gave up waiting for the lock ${path}; if no other parley build runs, remove it`);
    }
    if (!announced) {
      log.info({ lock: path }, 'waiting for another process to finish building');
      announced = true;
    }
    await sleep(500);
  }
  try {
    return await fn();
  } finally {
    await rm(path, { recursive: true, force: true });
  }
}

async function tryAcquire(path: string): Promise<boolean> {
  try {
    await mkdir(path); // atomic: exactly one process creates it
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  await writeFile(join(path, 'owner'), String(process.pid));
  return true;
}

async function isStale(path: string): Promise<boolean> {
  try {
    const owner = Number(await readFile(join(path, 'owner'), 'utf8'));
    return Number.isInteger(owner) && owner > 0 && !pidAlive(owner);
  } catch {
    try {
      return Date.now() - (await stat(path)).mtimeMs > ORPHAN_MS;
    } catch {
      return false; // released meanwhile: the next tryAcquire decides
    }
  }
}
