// Readiness probes: each resolves when the server really answers its protocol, and rejects with the reason otherwise.
import { connect as tcpConnect, type Socket } from 'node:net';
import { MongoClient } from 'mongodb';

/** Reads nats-server's INFO line; with `jetstream`, also requires JetStream to be enabled. */
export async function probeNats(url: string, timeoutMs = 1000, opts: { jetstream?: boolean } = {}): Promise<void> {
  const line = await firstLine(url, 4222, undefined, timeoutMs);
  if (!line.startsWith('INFO ')) throw new Error(`not a NATS server: ${line.slice(0, 80)}`);
  const info = JSON.parse(line.slice(5)) as { jetstream?: boolean };
  if (opts.jetstream && info.jetstream !== true) throw new Error('NATS answers but JetStream is not enabled');
}

export async function probeRedis(url: string, timeoutMs = 1000): Promise<void> {
  const line = await firstLine(url, 6379, 'PING\r\n', timeoutMs);
  if (line !== '+PONG') throw new Error(`Redis did not answer PING with PONG: ${line.slice(0, 80)}`);
}

/** MongoDB or FerretDB: a `ping` through the official driver, as the services talk to it. */
export async function probeMongo(url: string, timeoutMs = 2000): Promise<void> {
  const client = new MongoClient(url, {
    directConnection: true,
    serverSelectionTimeoutMS: timeoutMs,
    connectTimeoutMS: timeoutMs,
    socketTimeoutMS: timeoutMs,
    maxPoolSize: 1,
  });
  try {
    await client.db('admin').command({ ping: 1 });
  } finally {
    await client.close(true);
  }
}

export type ProbeKind = 'nats' | 'redis' | 'mongo';

/** True when the server at `url` answers within `timeoutMs`. */
export async function answers(kind: ProbeKind, url: string, timeoutMs = 1000): Promise<boolean> {
  try {
    if (kind === 'nats') await probeNats(url, timeoutMs);
    else if (kind === 'redis') await probeRedis(url, timeoutMs);
    else await probeMongo(url, timeoutMs);
    return true;
  } catch {
    return false;
  }
}

/** Connects, optionally writes `send`, and resolves with the first CRLF-terminated line the server sends. */
function firstLine(url: string, defaultPort: number, send: string | undefined, timeoutMs: number): Promise<string> {
  const { hostname, port } = new URL(url);
  const host = hostname.replace(/^\[|\]$/g, '') || '127.0.0.1';
  return new Promise((resolve, reject) => {
    let buf = '';
    let settled = false;
    const socket: Socket = tcpConnect({ host, port: port ? Number(port) : defaultPort });
    const done = (err: Error | undefined, line?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(line ?? '');
    };
    const timer = setTimeout(() => done(new Error(`no answer from ${host}:${port} within ${timeoutMs} ms`)), timeoutMs);
    socket.once('connect', () => { if (send) socket.write(send); });
    socket.on('data', (chunk: Buffer) => {
      buf += chunk.toString('latin1');
      const end = buf.indexOf('\r\n');
      if (end >= 0) done(undefined, buf.slice(0, end));
    });
    socket.once('error', (err) => done(err));
    socket.once('close', () => done(new Error(`${host}:${port} closed the connection without answering`)));
  });
}
