// A history flooder in a process of its own (`node flood.js <json>`), so that the test process measuring another
// client's latency is not itself slowed by the flood's sockets. Prints one JSON summary line and exits.
import WebSocket from 'ws';
import type { FloodSpec } from './flood-process.js';


export interface FloodSummary {
  /** Error codes received over WebSocket, with counts. */
  wsErrors: Record<string, number>;
  wsPages: number;
  wsCloseCodes: number[];
  /** HTTP status -> count, and whether every 429/503 carried a numeric Retry-After. */
  httpStatus: Record<string, number>;
  retryAfterOk: boolean;
}

async function main(spec: FloodSpec): Promise<FloodSummary> {
  const summary: FloodSummary = { wsErrors: {}, wsPages: 0, wsCloseCodes: [], httpStatus: {}, retryAfterOk: true };
  const sockets = await Promise.all(Array.from({ length: spec.connections }, () => new Promise<WebSocket>((resolve, reject) => {
    const ws = new WebSocket(spec.wsUrl, { headers: { authorization: `Bearer ${spec.token}` } });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  })));
  const closed = sockets.map((ws) => new Promise<void>((resolve) => {
    ws.on('message', (data) => {
      const f = JSON.parse(String(data)) as { type: string; code?: string };
      if (f.type === 'history') summary.wsPages++;
      if (f.type === 'error') summary.wsErrors[f.code!] = (summary.wsErrors[f.code!] ?? 0) + 1;
    });
    ws.once('close', (code) => {
      summary.wsCloseCodes.push(code);
      resolve();
    });
  }));
  const frame = JSON.stringify({ type: 'history', room: spec.room, limit: 200 });
  process.stdout.write('flooding\n');
  for (const ws of sockets) for (let i = 0; i < spec.framesPerConnection; i++) ws.send(frame);
  const http = Array.from({ length: spec.httpRequests }, async () => {
    const res = await fetch(`${spec.httpUrl}/rooms/${spec.room}/messages?limit=200`, { headers: { authorization: `Bearer ${spec.token}` } });
    await res.text();
    summary.httpStatus[res.status] = (summary.httpStatus[res.status] ?? 0) + 1;
    if ((res.status === 429 || res.status === 503) && !/^\d+$/.test(res.headers.get('retry-after') ?? '')) summary.retryAfterOk = false;
  });
  await Promise.all(http);
  // Connections still open after the HTTP flood are closed by us; those the server closed already are done.
  for (const ws of sockets) if (ws.readyState === WebSocket.OPEN) ws.close(1000);
  await Promise.all(closed);
  return summary;
}

main(JSON.parse(process.argv[2]!) as FloodSpec).then((s) => {
  process.stdout.write(`${JSON.stringify(s)}\n`);
  process.exit(0);
}, (err: unknown) => {
  process.stderr.write(`${String(err)}\n`);
  process.exit(1);
});
