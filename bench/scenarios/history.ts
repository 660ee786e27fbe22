// HTTP: autocannon against a gateway's /metrics (on its metrics port, rendering cached), and the history endpoint
// GET /rooms/:room/messages (history rate limits off; the gateway's read gate still applies, so 503s count as non2xx).
import autocannon from 'autocannon';
import { WebSocket } from 'ws';
import { mintToken } from '../../lib/auth/index.js';
import { startParley } from '../systems.js';
import type { BenchContext } from '../systems.js';

export interface HttpRun {
  endpoint: string;
  available: boolean;
  note?: string;
  reqPerSec?: number;
  p50Ms?: number;
  p99Ms?: number;
  maxMs?: number;
  errors?: number;
  non2xx?: number;
}

export async function runHistory(ctx: BenchContext, o: { durationSec: number; connections: number }, tag: string): Promise<HttpRun[]> {
  const dep = await startParley(ctx, tag, 1);
  try {
    const base = dep.http[0]!;
    const headers = { authorization: `Bearer ${mintToken({ secret: ctx.secret, user: 'h0', ttlMs: 3_600_000 })}` };
    const bench = async (endpoint: string, h?: Record<string, string>, on = base): Promise<HttpRun> => {
      const r = await autocannon({ url: `${on}${endpoint}`, connections: o.connections, duration: o.durationSec, ...(h ? { headers: h } : {}) });
      return {
        endpoint, available: true, reqPerSec: Math.round(r.requests.average), p50Ms: r.latency.p50, p99Ms: r.latency.p99, maxMs: r.latency.max,
        errors: r.errors + r.timeouts, non2xx: r.non2xx,
      };
    };
    const out: HttpRun[] = [await bench('/metrics', undefined, dep.ops![0]!)];
    const historyPath = `/rooms/${tag}r0/messages`;
    const probe = await fetch(`${base}${historyPath}`, { headers });
    await probe.arrayBuffer();
    if (probe.status === 404 || probe.status === 405) {
      out.push({ endpoint: 'GET /rooms/:room/messages', available: false, note: `not available (probe answered ${probe.status})` });
    } else {
      const seeded = await seed(dep.urls[0]!, headers.authorization, `${tag}r0`, 200);
      const r = await bench(historyPath, headers);
      r.note = `probe answered ${probe.status}; room seeded with ${seeded} messages`;
      out.push({ ...r, endpoint: 'GET /rooms/:room/messages' });
      return out;
    }
    return out;
  } finally {
    await dep.stop();
  }
}

/** Sends `n` messages to `room` and resolves with the number acked (bounded to 15 s). */
function seed(url: string, authorization: string, room: string, n: number): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers: { authorization } });
    let acked = 0;
    let answered = 0;
    const done = (): void => { clearTimeout(t); ws.close(); resolve(acked); };
    const t = setTimeout(done, 15_000);
    ws.on('message', (data: Buffer) => {
      const f = JSON.parse(data.toString('utf8')) as { type: string };
      if (f.type === 'welcome') ws.send(JSON.stringify({ type: 'join', room }));
      else if (f.type === 'joined') for (let i = 0; i < n; i++) ws.send(JSON.stringify({ type: 'send', room, id: `seed${i}`, body: `history seed ${i}` }));
      else if (f.type === 'ack' || f.type === 'error') {
        if (f.type === 'ack') acked++;
        if (++answered === n) done();
      }
    });
    ws.on('error', done);
  });
}
