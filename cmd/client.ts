// `parley client`: a small interactive client on the SDK (lib/client). Lines typed are sent to the room; what
// arrives is printed. It reconnects by itself (to the next of several --url, comma-separated) and recovers the room.
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { mintToken } from '../lib/auth/index.js';
import { connect } from '../lib/client/node.js';
import type { ParleyClient } from '../lib/client/node.js';
import { loadConfig } from '../lib/config/index.js';
import type { Logger } from '../lib/observability/index.js';

export async function runClient(argv: string[], env: NodeJS.ProcessEnv, _log: Logger): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      user: { type: 'string' },
      room: { type: 'string', default: 'lobby' },
      url: { type: 'string' },
      token: { type: 'string' },
      since: { type: 'string' },
    },
  });
  const cfg = loadConfig(env);
  const urls = (values.url ?? `ws://127.0.0.1:${cfg.port}/ws`).split(',');
  const user = values.user;
  const secret = cfg.jwt.secret;
  if (!values.token && (!user || !secret)) {
    console.error('usage: parley client --user <u> --room <r> [--url <ws url>[,<ws url>...]] [--token <jwt>] [--since <seq>]');
    return 2;
  }
  const room = values.room;
  const client: ParleyClient = values.token
    ? connect({ url: urls, token: values.token })
    : connect({ url: urls, getToken: () => mintToken({ secret: secret!, user: user!, ttlMs: 12 * 3_600_000 }) });
  const time = (ts: number): string => new Date(ts).toISOString().slice(11, 19);
  client.on('welcome', (f) => console.log(`  connected as ${f.user} (session ${f.session})`));
  client.on('state', (s) => console.error(`  [${s}]`));
  client.on('disconnect', (d) => console.error(`  disconnected (${d.code}${d.reason ? ` ${d.reason}` : ''})` +
    (d.retryInMs === undefined ? '' : `; reconnecting in ${d.retryInMs} ms`)));
  client.on('joined', (f) => console.log(`  joined #${f.room} at seq ${f.seq}; online: ${(f.presence ?? []).join(', ')}`));
  client.on('message', (m) => console.log(`[${time(m.ts)}] #${m.room} <${m.from}> ${m.body}  (seq ${m.seq})`));
  client.on('presence', (f) => console.log(`  * ${f.user} is ${f.status}${f.room ? ` in #${f.room}` : ''}`));
  client.on('typing', (f) => console.log(`  … ${f.user} is typing in #${f.room}`));
  client.on('reset', (e) => console.log(`  ! too far behind in #${e.room}: seqs ${e.from + 1}..${e.to} were not replayed`));
  client.on('error', (e) => console.error(`  ! ${e.code}: ${e.message}`));
  client.join(room, values.since ? { since: Number(values.since) } : {}).catch(() => undefined); // reported as 'error'
  const rl = createInterface({ input: process.stdin });
  const pending = new Set<Promise<unknown>>();
  rl.on('line', (line) => {
    const body = line.trim();
    if (!body) return;
    const p = client.send(room, body).then(
      (a) => console.log(`  ✓ stored as seq ${a.seq}${a.duplicate ? ' (duplicate)' : ''}`),
      (e: Error) => console.error(`  ! not sent: ${e.message}`),
    );
    pending.add(p);
    void p.finally(() => pending.delete(p));
  });
  return new Promise<number>((resolve) => {
    let failed = false;
    client.on('error', (e) => { if (e.code === 'CLOSED' || e.closeCode !== undefined) failed = true; });
    // End of input (also a piped one): the lines already read are still sent and acknowledged first.
    rl.on('close', () => void Promise.allSettled([...pending]).then(() => client.close()));
    client.on('state', (s) => {
      if (s !== 'closed') return;
      rl.close();
      process.stdin.destroy();
      resolve(failed ? 1 : 0);
    });
  });
}
