// Client drivers of the load generator: Parley's wire protocol over `ws` (Parley and the floor baseline speak it)
// and the Socket.IO equivalent (join/send with acknowledgements, `message` events).
import { WebSocket } from 'ws';
import { io } from 'socket.io-client';
import type { ServerFrame } from '../../lib/protocol/index.js';

export type DriverKind = 'ws' | 'sio';

export interface ClientHandlers {
  onMessage(room: string, id: string, seq: number, from: string, body: string): void;
  onAck(id: string, seq: number, duplicate: boolean): void;
  onError(code: string, ref: string | undefined): void;
  onClose(): void;
}

export interface Client {
  join(room: string, timeoutMs: number): Promise<void>;
  send(room: string, id: string, body: string): void;
  close(): void;
}

export interface ConnectOptions {
  url: string;
  token: string;
  localAddress?: string;
  timeoutMs: number;
}

export function connect(kind: DriverKind, o: ConnectOptions, h: ClientHandlers): Promise<Client> {
  return kind === 'ws' ? connectWs(o, h) : connectSio(o, h);
}

function connectWs(o: ConnectOptions, h: ClientHandlers): Promise<Client> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(o.url, {
      headers: { authorization: `Bearer ${o.token}` },
      perMessageDeflate: false,
      handshakeTimeout: o.timeoutMs,
      ...(o.localAddress ? { localAddress: o.localAddress } : {}),
    });
    const joins = new Map<string, () => void>();
    let welcomed = false;
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error('no welcome in time'));
    }, o.timeoutMs);
    const client: Client = {
      join(room, timeoutMs) {
        return new Promise<void>((res, rej) => {
          const t = setTimeout(() => { joins.delete(room); rej(new Error(`join ${room} timed out`)); }, timeoutMs);
          joins.set(room, () => { clearTimeout(t); res(); });
          ws.send(`{"type":"join","room":${JSON.stringify(room)}}`);
        });
      },
      send(room, id, body) {
        ws.send(`{"type":"send","room":"${room}","id":"${id}","body":${JSON.stringify(body)}}`);
      },
      close() {
        ws.terminate();
      },
    };
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) return;
      const f = JSON.parse(data.toString('utf8')) as ServerFrame;
      switch (f.type) {
        case 'message':
          h.onMessage(f.room, f.id, f.seq, f.from, f.body);
          break;
        case 'ack':
          h.onAck(f.id, f.seq, f.duplicate === true);
          break;
        case 'welcome':
          welcomed = true;
          clearTimeout(timer);
          resolve(client);
          break;
        case 'joined': {
          const done = joins.get(f.room);
          if (done) { joins.delete(f.room); done(); }
          break;
        }
        case 'error':
          h.onError((f.code as string | undefined) ?? 'UNKNOWN', f.ref);
          break;
      }
    });
    ws.on('error', (err) => {
      if (!welcomed) { clearTimeout(timer); reject(err); }
    });
    ws.on('unexpected-response', (_req, res) => {
      clearTimeout(timer);
      reject(new Error(`upgrade refused: HTTP ${res.statusCode}`));
      ws.terminate();
    });
    ws.on('close', () => {
      if (!welcomed) { clearTimeout(timer); reject(new Error('closed before welcome')); }
      h.onClose();
    });
  });
}

interface SioMessage { room: string; id: string; seq: number; from: string; body: string }

function connectSio(o: ConnectOptions, h: ClientHandlers): Promise<Client> {
  return new Promise((resolve, reject) => {
    const socket = io(o.url, {
      transports: ['websocket'],
      extraHeaders: { authorization: `Bearer ${o.token}` },
      reconnection: false,
      forceNew: true,
      timeout: o.timeoutMs,
      ...(o.localAddress ? { localAddress: o.localAddress } : {}),
    });
    const client: Client = {
      join(room, timeoutMs) {
        return new Promise<void>((res, rej) => {
          socket.timeout(timeoutMs).emit('join', room, (err: Error | null) => (err ? rej(err) : res()));
        });
      },
      send(room, id, body) {
        socket.emit('send', { room, id, body }, (a: { id: string; seq: number; duplicate: boolean }) => h.onAck(a.id, a.seq, a.duplicate));
      },
      close() {
        socket.disconnect();
      },
    };
    socket.on('message', (m: SioMessage) => h.onMessage(m.room, m.id, m.seq, m.from, m.body));
    socket.once('connect', () => resolve(client));
    socket.once('connect_error', (err: Error) => reject(err));
    socket.on('disconnect', () => h.onClose());
  });
}
