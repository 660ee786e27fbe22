// `parley client`: a small interactive client. Lines typed are sent to the room; frames that arrive are printed.
import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { mintToken } from '../lib/auth/index.js';
import { loadConfig } from '../lib/config/index.js';
import type { Logger } from '../lib/observability/index.js';
import type { ServerFrame } from '../lib/protocol/index.js';

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
  const url = values.url ?? `ws://127.0.0.1:${cfg.port}/ws`;
  let token = values.token;
  if (!token) {
    if (!values.user || !cfg.jwt.secret) {
      console.error('usage: parley client --user <u> --room <r> [--url <ws url>] [--token <jwt>]');
      return 2;
    }
    token = mintToken({ secret: cfg.jwt.secret, user: values.user, ttlMs: 12 * 3_600_000 });
  }
  const room = values.room;
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` } });
  ws.on('unexpected-response', (_req, res) => {
    console.error(`server refused the connection: HTTP ${res.statusCode}`);
    process.exitCode = 1;
  });
  ws.on('open', () => {
    const join: Record<string, unknown> = { type: 'join', room };
    if (values.since) join.since = Number(values.since);
    ws.send(JSON.stringify(join));
    const rl = createInterface({ input: process.stdin });
    rl.on('line', (line) => {
      const body = line.trim();
      if (body) ws.send(JSON.stringify({ type: 'send', room, id: randomUUID(), body }));
    });
    rl.on('close', () => ws.close(1000));
  });
  ws.on('message', (data) => console.log(format(String(data))));
  return new Promise<number>((resolve) => {
    ws.on('close', (code, reason) => {
      console.error(`closed: ${code} ${reason.toString()}`);
      resolve(code === 1000 || code === 1005 ? (process.exitCode as number | undefined) ?? 0 : 1);
      process.stdin.destroy();
    });
    ws.on('error', (err) => console.error(`error: ${err.message}`));
  });
}

function format(text: string): string {
  try {
    const f = JSON.parse(text) as ServerFrame;
    switch (f.type) {
      case 'message': return `[${new Date(f.ts).toISOString().slice(11, 19)}] #${f.room} <${f.from}> ${f.body}  (seq ${f.seq})`;
      case 'ack': return `  ✓ stored as seq ${f.seq}${f.duplicate ? ' (duplicate)' : ''}`;
      case 'error': return `  ! ${f.code}: ${f.message}`;
      case 'joined': return `  joined #${f.room} at seq ${f.seq}; online: ${(f.presence ?? []).join(', ')}`;
      case 'presence': return `  * ${f.user} is ${f.status}${f.room ? ` in #${f.room}` : ''}`;
      case 'typing': return `  … ${f.user} is typing in #${f.room}`;
      case 'welcome': return `  connected as ${f.user} (session ${f.session})`;
      default: return `  ${text}`;
    }
  } catch {
    return text;
  }
}
