// A load-generator worker thread: holds a share of the connections, sends on a fixed schedule (coordinated-omission
// aware: latency is measured from the intended send time, carried in the message body), and records every delivery
// and ack in HDR histograms plus loss, duplicate and order bookkeeping.
import { parentPort, workerData } from 'node:worker_threads';
import { connect } from './driver.js';
import type { Client, DriverKind } from './driver.js';
import { encode, newHistogram } from '../hist.js';

export interface ConnSpec {
  url: string;
  token: string;
  rooms: string[];
  /** The room this connection sends to, if it is a sender. */
  sendTo: string | null;
}

export interface WorkerInit {
  index: number;
  kind: DriverKind;
  /** `room`: the server's per-room seq must increase; `sender`: only each sender's own order is checked (no room seq). */
  orderBy: 'room' | 'sender';
  conns: ConnSpec[];
  connectConcurrency: number;
  timeoutMs: number;
}

export type WorkerCommand =
  | { cmd: 'connect' }
  | { cmd: 'run'; phase: number; t0: number; warmupMs: number; durationMs: number; rate: number }
  | { cmd: 'stats' }
  | { cmd: 'collect' }
  | { cmd: 'close' };

export interface WorkerStats { sent: number; acked: number; rejected: number; received: number; distinct: number }

export interface WorkerResult extends WorkerStats {
  e2e: string;
  ack: string;
  ackedByRoom: Record<string, number>;
  duplicates: number;
  outOfOrder: number;
  errors: Record<string, number>;
  unexpectedCloses: number;
}

export type WorkerReply =
  | { type: 'connected'; ok: number; failed: number; firstError: string | undefined }
  | { type: 'sent-done'; phase: number; sent: number }
  | { type: 'stats'; stats: WorkerStats; ackedByRoom: Record<string, number> }
  | { type: 'collected'; result: WorkerResult }
  | { type: 'closed' };

const init = workerData as WorkerInit;
const port = parentPort!;
const reply = (r: WorkerReply): void => port.postMessage(r);
const now = (): number => performance.timeOrigin + performance.now();

interface ConnState {
  spec: ConnSpec;
  client: Client | undefined;
  last: Map<string, number>;
  seen: Set<number | string>;
}

const conns: ConnState[] = init.conns.map((spec) => ({ spec, client: undefined, last: new Map(), seen: new Set() }));
let e2e = newHistogram();
let ackHist = newHistogram();
let phase = -1;
let intended = new Float64Array(0);
let measuredFrom = 0;
const stats: WorkerStats = { sent: 0, acked: 0, rejected: 0, received: 0, distinct: 0 };
const ackedByRoom: Record<string, number> = {};
const errors: Record<string, number> = {};
let duplicates = 0;
let outOfOrder = 0;
let unexpectedCloses = 0;
let closing = false;
const idPrefix = `w${init.index}-`;

function handlersFor(c: ConnState): Parameters<typeof connect>[2] {
  return {
    onMessage(room, id, seq, from, body) {
      stats.received++;
      // body: <w|m><phase>|<intended epoch ms>|<k>
      const i1 = body.indexOf('|');
      const i2 = body.indexOf('|', i1 + 1);
      if (i1 < 0 || i2 < 0) return;
      const t = Number(body.slice(i1 + 1, i2));
      const k = Number(body.slice(i2 + 1));
      const dupKey = init.orderBy === 'room' ? seq : `${from}|${id}`;
      if (c.seen.has(dupKey)) {
        duplicates++;
        return;
      }
      c.seen.add(dupKey);
      stats.distinct++;
      const orderKey = init.orderBy === 'room' ? room : `${room}|${from}`;
      const value = init.orderBy === 'room' ? seq : Number(body.slice(1, i1)) * 1e9 + k;
      const last = c.last.get(orderKey);
      if (last !== undefined && value <= last) outOfOrder++;
      else c.last.set(orderKey, value);
      if (body.charCodeAt(0) === 109 /* m */ && Number(body.slice(1, i1)) === phase) {
        e2e.recordValue(Math.max(1, Math.round((now() - t) * 1000)));
      }
    },
    onAck(id) {
      stats.acked++;
      const room = c.spec.sendTo ?? '';
      ackedByRoom[room] = (ackedByRoom[room] ?? 0) + 1;
      // id: w<index>-<phase>-<k>
      const dash = id.lastIndexOf('-');
      const p = Number(id.slice(idPrefix.length, dash));
      const k = Number(id.slice(dash + 1));
      if (p === phase && k >= measuredFrom && k < intended.length) {
        const t = intended[k]!;
        if (t > 0) ackHist.recordValue(Math.max(1, Math.round((now() - t) * 1000)));
      }
    },
    onError(code) {
      stats.rejected++;
      errors[code] = (errors[code] ?? 0) + 1;
    },
    onClose() {
      if (!closing) unexpectedCloses++;
    },
  };
}

async function connectAll(): Promise<void> {
  let ok = 0;
  let failed = 0;
  let firstError: string | undefined;
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < conns.length) {
      const c = conns[next++]!;
      try {
        c.client = await connect(init.kind, { url: c.spec.url, token: c.spec.token, timeoutMs: init.timeoutMs }, handlersFor(c));
        for (const room of c.spec.rooms) await c.client.join(room, init.timeoutMs);
        ok++;
      } catch (err) {
        failed++;
        firstError ??= err instanceof Error ? err.message : String(err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(init.connectConcurrency, conns.length) }, lane));
  reply({ type: 'connected', ok, failed, firstError });
}

function run(c: Extract<WorkerCommand, { cmd: 'run' }>): void {
  phase = c.phase;
  e2e = newHistogram();
  ackHist = newHistogram();
  const senders = conns.filter((s) => s.spec.sendTo !== null && s.client);
  const interval = 1000 / c.rate;
  const total = senders.length === 0 || c.rate <= 0 ? 0 : Math.floor((c.warmupMs + c.durationMs) / interval);
  const warmCount = Math.floor(c.warmupMs / interval);
  intended = new Float64Array(total);
  measuredFrom = warmCount;
  let k = 0;
  let sentThisPhase = 0;
  const tick = (): void => {
    const t = now();
    // Catch up on everything whose intended time has passed: a stalled loop shows up as latency, not as fewer sends.
    while (k < total) {
      const at = c.t0 + k * interval;
      if (at > t) break;
      const s = senders[k % senders.length]!;
      intended[k] = at;
      const body = `${k < warmCount ? 'w' : 'm'}${c.phase}|${at.toFixed(3)}|${k}`;
      try {
        s.client!.send(s.spec.sendTo!, `${idPrefix}${c.phase}-${k}`, body);
        stats.sent++;
        sentThisPhase++;
      } catch {
        errors.SEND_FAILED = (errors.SEND_FAILED ?? 0) + 1;
      }
      k++;
    }
    if (k < total) setTimeout(tick, Math.max(0, c.t0 + k * interval - now()));
    else reply({ type: 'sent-done', phase: c.phase, sent: sentThisPhase });
  };
  setTimeout(tick, Math.max(0, c.t0 - now()));
}

port.on('message', (m: WorkerCommand) => {
  switch (m.cmd) {
    case 'connect':
      void connectAll();
      break;
    case 'run':
      run(m);
      break;
    case 'stats':
      reply({ type: 'stats', stats: { ...stats }, ackedByRoom: { ...ackedByRoom } });
      break;
    case 'collect':
      reply({
        type: 'collected',
        result: { ...stats, e2e: encode(e2e), ack: encode(ackHist), ackedByRoom: { ...ackedByRoom }, duplicates, outOfOrder, errors: { ...errors }, unexpectedCloses },
      });
      break;
    case 'close':
      closing = true;
      for (const c of conns) c.client?.close();
      // Let close frames go out before the thread ends.
      setTimeout(() => {
        reply({ type: 'closed' });
        port.close();
      }, 200);
      break;
  }
});
