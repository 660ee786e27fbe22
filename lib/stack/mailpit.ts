// Mailpit: a real SMTP server whose HTTP API lists what it received. Tests of the email sink send to it; it is not
// part of `parley stack up` (Parley itself needs no mail server unless PARLEY_NOTIFY_SINKS has email).
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pino } from 'pino';
import type { Logger } from '../observability/logger.js';
import { ensureMailpit } from './install.js';
import { freePort, launch, type ManagedService } from './process.js';

export interface MailpitOptions {
  dir: string;
  log?: Logger;
  binary?: string;
}

export interface Mailpit extends ManagedService {
  /** The HTTP API and UI, e.g. http://127.0.0.1:<port> (GET /api/v1/messages lists the mail received). */
  readonly httpUrl: string;
}

export async function launchMailpit(opts: MailpitOptions): Promise<Mailpit> {
  const log = opts.log ?? pino({ enabled: false });
  const dir = resolve(opts.dir);
  await mkdir(dir, { recursive: true });
  const binary = opts.binary ?? (await ensureMailpit(log));
  // The HTTP port is chosen once and kept across restarts, like the SMTP port `launch` chooses.
  const httpPort = await freePort();
  const httpUrl = `http://127.0.0.1:${httpPort}`;
  const service = await launch({
    name: 'mailpit',
    binary,
    args: async (port) => [
      '--smtp', `127.0.0.1:${port}`, '--listen', `127.0.0.1:${httpPort}`, '--database', join(dir, 'mailpit.db'),
      '--disable-version-check', '--smtp-auth-accept-any', '--smtp-auth-allow-insecure', '--quiet',
    ],
    url: (port) => `smtp://127.0.0.1:${port}`,
    probe: async (_url, ms) => {
      const res = await fetch(`${httpUrl}/readyz`, { signal: AbortSignal.timeout(ms) });
      await res.body?.cancel();
      if (!res.ok) throw new Error(`mailpit /readyz answered ${res.status}`);
    },
    readyTimeoutMs: 20_000,
    stopTimeoutMs: 10_000,
    detached: false,
    log,
  });
  return Object.assign(service, { httpUrl }) as Mailpit;
}
