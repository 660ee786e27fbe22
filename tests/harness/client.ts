// A WebSocket test client that records every frame and lets tests wait for conditions on them. It opens its socket
// and decodes frames with the SDK's transport (lib/client), but keeps every raw frame: suites test what the server
// sends, including to clients that misbehave, which the SDK itself never does. For app-level behaviour (reconnect,
// recovery, resends) suites use the SDK: Suite.sdk().
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { NodeWebSocket, decodeServerFrame, openSocket } from '../../lib/client/node.js';
import type { MessageFrame as ProtocolMessageFrame } from '../../lib/protocol/index.js';
import { until } from './wait.js';

export interface Frame {
  type: string;
  [k: string]: unknown;
}

/** A `message` frame as lib/protocol declares it, open to the loose checks tests make on any frame. */
export type MessageFrame = ProtocolMessageFrame & Frame;

export class TestClient {
  readonly frames: Frame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private constructor(readonly ws: WebSocket, readonly user: string) {
    this.closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    ws.on('message', (data, isBinary) => {
      const f = isBinary ? undefined : decodeServerFrame(String(data));
      if (f) this.frames.push(f as unknown as Frame);
    });
    ws.on('error', () => undefined); // surfaced through `closed` and the awaited frames
  }

  /** Connects as the SDK does (`parley.v1, token.<jwt>` subprotocols) and resolves after the `welcome` frame. */
  static async connect(url: string, tokenValue: string, user = '?'): Promise<TestClient> {
    // The SDK's socket, which in Node is a `ws` WebSocket: suites also use its Node API (pause, terminate, events).
    const ws = openSocket(NodeWebSocket, url, tokenValue) as unknown as WebSocket;
    const c = new TestClient(ws, user);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
    });
    await c.waitFor((f) => f.type === 'welcome');
    return c;
  }

  send(frame: Record<string, unknown>): void {
    this.ws.send(JSON.stringify(frame));
  }

  sendRaw(data: string | Buffer, binary = false): void {
    this.ws.send(data, { binary });
  }

  async join(room: string, since?: number, timeout = 10_000): Promise<Frame> {
    const from = this.frames.length;
    this.send(since === undefined ? { type: 'join', room } : { type: 'join', room, since });
    return this.waitFor((f) => (f.type === 'joined' || f.type === 'error') && (f.room === room || f.ref === room), { from, timeout });
  }

  /** Sends a message and resolves with its `ack` or `error` frame. */
  async sendMessage(room: string, id: string, body: string): Promise<Frame> {
    const before = this.frames.length;
    this.send({ type: 'send', room, id, body });
    return this.waitFor((f) => (f.type === 'ack' && f.id === id) || (f.type === 'error' && f.ref === id), { from: before });
  }

  /** Sends many messages without waiting in between; resolves with the ack (or error) of each, in order. */
  async sendAll(room: string, ids: string[], body = (id: string) => `body of ${id}`, timeout = 30_000): Promise<Frame[]> {
    const want = new Set(ids);
    const replies = new Map<string, Frame>();
    let scanned = this.frames.length;
    for (const id of ids) this.send({ type: 'send', room, id, body: body(id) });
    await until(() => {
      for (; scanned < this.frames.length; scanned++) {
        const f = this.frames[scanned]!;
        const id = (f.type === 'ack' ? f.id : f.type === 'error' ? f.ref : undefined) as string | undefined;
        if (id !== undefined && want.has(id) && !replies.has(id)) replies.set(id, f);
      }
      return replies.size === want.size;
    }, { timeout, message: `${ids.length} acks for ${this.user}` });
    return ids.map((id) => replies.get(id)!);
  }

  /** First frame (at index >= from) matching pred, waiting for it if needed. */
  async waitFor(pred: (f: Frame) => boolean, opts: { timeout?: number; from?: number } = {}): Promise<Frame> {
    let found: Frame | undefined;
    await until(() => {
      found = this.frames.slice(opts.from ?? 0).find(pred);
      return found !== undefined;
    }, { timeout: opts.timeout ?? 10_000, message: `a frame for ${this.user}: ${pred.toString().slice(0, 100)}` });
    return found!;
  }

  messages(room?: string): MessageFrame[] {
    return this.frames.filter((f): f is MessageFrame => f.type === 'message' && (room === undefined || f.room === room));
  }

  errors(): Frame[] {
    return this.frames.filter((f) => f.type === 'error');
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    this.ws.close(1000);
    const t = setTimeout(() => this.ws.terminate(), 2_000);
    await this.closed;
    clearTimeout(t);
  }
}

/** Tries an upgrade and returns the HTTP status it was refused with (or 101 if it was accepted). */
export async function upgradeStatus(url: string, headers: Record<string, string> = {}, protocols?: string[]): Promise<number> {
  const ws = new WebSocket(url, protocols, { headers });
  return new Promise<number>((resolve, reject) => {
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
      ws.terminate();
    });
    ws.once('open', () => {
      ws.close();
      resolve(101);
    });
    ws.once('error', (err) => {
      if (ws.readyState !== WebSocket.CLOSED) reject(err);
    });
  });
}

/** Every message follows the one before it: strictly increasing seq and an unbroken `prev` chain from `start`. */
export function assertChain(msgs: MessageFrame[], start: number, who: string): void {
  let prev = start;
  for (const m of msgs) {
    assert.ok(m.seq > prev, `${who}: seq ${m.seq} after ${prev}`);
    assert.equal(m.prev, prev, `${who}: message ${m.seq} says prev ${String(m.prev)}, last seen ${prev} (a gap)`);
    prev = m.seq;
  }
}
