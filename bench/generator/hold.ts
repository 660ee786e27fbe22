// A connection holder (child process with its own fd limit): opens COUNT idle authenticated WebSockets from its own
// source address, reports progress over IPC, holds them until told to close, then exits.
//   env: HOLD_URL HOLD_SECRET HOLD_COUNT HOLD_ADDRESS HOLD_INDEX HOLD_CONCURRENCY HOLD_DEADLINE_MS
import { WebSocket } from 'ws';
import { mintToken } from '../../lib/auth/index.js';

export interface HoldProgress { type: 'progress' | 'done'; opened: number; failed: number; firstError?: string; stoppedBy?: string }

const env = (k: string): string => process.env[k] ?? '';
const url = env('HOLD_URL');
const secret = env('HOLD_SECRET');
const count = Number(env('HOLD_COUNT'));
const address = env('HOLD_ADDRESS');
const index = Number(env('HOLD_INDEX'));
const concurrency = Number(env('HOLD_CONCURRENCY') || '200');
const deadline = Date.now() + Number(env('HOLD_DEADLINE_MS') || '60000');
const sockets: WebSocket[] = [];
let opened = 0;
let failed = 0;
let consecutiveFailures = 0;
let firstError: string | undefined;
let stoppedBy: string | undefined;
let next = 0;

const send = (m: HoldProgress): void => { process.send?.(m); };

function openOne(i: number): Promise<void> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, {
      headers: { authorization: `Bearer ${mintToken({ secret, user: `c${index}_${i}`, ttlMs: 3_600_000 })}` },
      perMessageDeflate: false,
      localAddress: address,
      handshakeTimeout: 10_000,
    });
    let settled = false;
    const fail = (why: string): void => {
      if (settled) return;
      settled = true;
      failed++;
      consecutiveFailures++;
      firstError ??= why;
      ws.terminate();
      resolve();
    };
    const t = setTimeout(() => fail('no welcome within 10 s'), 10_000);
    ws.once('message', () => {
      if (settled) return;
      settled = true;
      clearTimeout(t);
      opened++;
      consecutiveFailures = 0;
      sockets.push(ws);
      resolve();
    });
    ws.on('error', (err) => { clearTimeout(t); fail(err.message); });
    ws.on('close', () => { clearTimeout(t); fail('closed before welcome'); });
  });
}

async function lane(): Promise<void> {
  while (next < count && !stoppedBy) {
    if (Date.now() > deadline) { stoppedBy = 'time bound'; break; }
    if (consecutiveFailures >= 100) { stoppedBy = `100 consecutive failures (${firstError ?? ''})`; break; }
    await openOne(next++);
  }
}

const progress = setInterval(() => send({ type: 'progress', opened, failed, ...(firstError ? { firstError } : {}) }), 500);
void Promise.all(Array.from({ length: concurrency }, lane)).then(() => {
  clearInterval(progress);
  send({ type: 'done', opened, failed, ...(firstError ? { firstError } : {}), ...(stoppedBy ? { stoppedBy } : {}) });
});
process.on('message', (m: { cmd: string }) => {
  if (m.cmd !== 'close') return;
  for (const ws of sockets) ws.terminate();
  setTimeout(() => process.exit(0), 100);
});
process.on('disconnect', () => process.exit(0));
