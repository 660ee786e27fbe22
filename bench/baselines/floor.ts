// The floor baseline: the least code that still takes Parley's path minus the database. Two `gateway` processes
// (uWS, join/send/ack/message subset) publish to a small JetStream stream; one `relay` process pulls, PUBLISHes to
// Redis, and acks; gateways fan out through uWS topics. Parley's overhead is measured against this.
//   node floor.js gateway|relay   env: NATS_URL REDIS_URL PORT FLOOR_STREAM FLOOR_SUBJECT FLOOR_PREFIX
import { createRequire } from 'node:module';
import { AckPolicy, DeliverPolicy, StorageType, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { JsMsg } from '@nats-io/jetstream';
import { connect, nanos } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/transport-node';
import { createClient } from 'redis';
import type * as UWS from 'uWebSockets.js';
import { requireEnv, userFromBearer } from './common.js';

const STREAM = requireEnv('FLOOR_STREAM');
const SUBJECT = requireEnv('FLOOR_SUBJECT');
const PREFIX = process.env.FLOOR_PREFIX ?? 'floor:';
const CONSUMER = 'floor-relay';

async function ensureStream(nc: NatsConnection): Promise<void> {
  const jsm = await jetstreamManager(nc);
  try {
    await jsm.streams.add({ name: STREAM, subjects: [`${SUBJECT}.>`], storage: StorageType.File, duplicate_window: nanos(120_000) });
  } catch (err) {
    if (!/already in use/i.test(String(err))) throw err;
  }
}

interface Conn { user: string; closed: boolean }

async function gateway(): Promise<void> {
  const require = createRequire(import.meta.url);
  const uws = require('uWebSockets.js') as typeof UWS;
  if (!Function.prototype.toString.call(uws.App).includes('[native code]')) throw new Error('uWebSockets.js is not native');
  const nc = await connect({ servers: requireEnv('NATS_URL') });
  await ensureStream(nc);
  const js = jetstream(nc);
  const app = uws.App();
  const sub = createClient({ url: requireEnv('REDIS_URL') });
  await sub.connect();
  const channelPrefix = `${PREFIX}room.`;
  await sub.pSubscribe(`${channelPrefix}*`, (payload: string, channel: string) => {
    app.publish(channel.slice(channelPrefix.length), payload, false);
  });
  app.ws<Conn>('/ws', {
    compression: uws.DISABLED,
    maxPayloadLength: 16 * 1024,
    idleTimeout: 120,
    upgrade: (res, req, ctx) => {
      const user = userFromBearer(req.getHeader('authorization'));
      if (!user) {
        res.writeStatus('401 Unauthorized').end();
        return;
      }
      res.upgrade<Conn>({ user, closed: false }, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'),
        req.getHeader('sec-websocket-extensions'), ctx);
    },
    open: (ws) => {
      ws.send(JSON.stringify({ type: 'welcome', user: ws.getUserData().user, session: 'floor', protocol: 1 }));
    },
    message: (ws, data) => {
      const c = ws.getUserData();
      const f = JSON.parse(Buffer.from(data).toString('utf8')) as { type: string; room: string; id: string; body: string };
      if (f.type === 'join') {
        ws.subscribe(f.room);
        ws.send(`{"type":"joined","room":${JSON.stringify(f.room)},"seq":0}`);
      } else if (f.type === 'send') {
        const ev = JSON.stringify({ room: f.room, id: f.id, from: c.user, body: f.body, ts: Date.now() });
        js.publish(`${SUBJECT}.${f.room}`, ev, { msgID: `${c.user}:${f.id}` }).then((pa) => {
          if (!c.closed) ws.cork(() => ws.send(`{"type":"ack","id":"${f.id}","seq":${pa.seq},"duplicate":${pa.duplicate}}`));
        }, () => {
          if (!c.closed) ws.send(`{"type":"error","code":"UNAVAILABLE","message":"publish failed","ref":"${f.id}"}`);
        });
      }
    },
    close: (ws) => { ws.getUserData().closed = true; },
  });
  app.get('/readyz', (res) => { res.end('ok'); });
  const port = Number(requireEnv('PORT'));
  await new Promise<void>((resolve, reject) => app.listen('127.0.0.1', port, (s) => (s ? resolve() : reject(new Error(`listen ${port}`)))));
  console.log('floor gateway ready');
  const stop = (): void => {
    sub.destroy();
    void nc.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

async function relay(): Promise<void> {
  const nc = await connect({ servers: requireEnv('NATS_URL') });
  await ensureStream(nc);
  const jsm = await jetstreamManager(nc);
  await jsm.consumers.add(STREAM, {
    durable_name: CONSUMER, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, filter_subject: `${SUBJECT}.>`, max_ack_pending: 2048,
  });
  const pub = createClient({ url: requireEnv('REDIS_URL') });
  await pub.connect();
  const consumer = await jetstream(nc).consumers.get(STREAM, CONSUMER);
  let pending: JsMsg[] = [];
  let busy = false;
  const flush = async (): Promise<void> => {
    busy = true;
    while (pending.length > 0) {
      const batch = pending;
      pending = [];
      const pipe = pub.multi();
      for (const m of batch) {
        const ev = JSON.parse(m.string()) as { room: string; id: string; from: string; body: string; ts: number };
        pipe.publish(`${PREFIX}room.${ev.room}`,
          JSON.stringify({ type: 'message', room: ev.room, id: ev.id, seq: m.seq, from: ev.from, body: ev.body, ts: ev.ts }));
      }
      await pipe.execAsPipeline();
      for (const m of batch) m.ack();
    }
    busy = false;
  };
  const messages = await consumer.consume({
    max_messages: 1024,
    callback: (m) => {
      pending.push(m);
      if (!busy) { busy = true; setImmediate(() => void flush()); }
    },
  });
  console.log('floor relay ready');
  const stop = (): void => {
    messages.stop();
    pub.destroy();
    void nc.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

const role = process.argv[2];
(role === 'gateway' ? gateway() : role === 'relay' ? relay() : Promise.reject(new Error('usage: floor.js gateway|relay'))).catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
