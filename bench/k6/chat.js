// k6 driver of Parley's protocol: each VU connects with its token, joins a room, sends on a fixed interval, checks
// its acks and measures end-to-end latency (send -> every member's `message`) as a Trend with a p(99) threshold.
// Env: URLS, TOKENS (comma-separated, one per VU), ROOMS, ROOM_PREFIX, DURATION_MS, INTERVAL_MS, P99_MS, SUMMARY.
import ws from 'k6/ws';
import { check } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';

const urls = (__ENV.URLS || 'ws://127.0.0.1:8080/ws').split(',');
const tokens = (__ENV.TOKENS || '').split(',').filter(Boolean);
const rooms = Number(__ENV.ROOMS || 4);
const roomPrefix = __ENV.ROOM_PREFIX || 'k6r';
const durationMs = Number(__ENV.DURATION_MS || 10000);
const intervalMs = Number(__ENV.INTERVAL_MS || 100);
const p99 = Number(__ENV.P99_MS || 100);

const e2e = new Trend('e2e_latency', true);
const ackLatency = new Trend('ack_latency', true);
const acks = new Counter('acks');
const delivered = new Counter('delivered');
const acked = new Rate('acked');

export const options = {
  scenarios: {
    chat: { executor: 'per-vu-iterations', vus: Math.max(1, tokens.length), iterations: 1, maxDuration: `${Math.ceil(durationMs / 1000) + 30}s` },
  },
  thresholds: {
    e2e_latency: [`p(99)<${p99}`],
    acked: ['rate>0.999'],
    checks: ['rate>0.99'],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(99)'],
};

export default function () {
  const vu = __VU - 1;
  const room = `${roomPrefix}${vu % rooms}`;
  const sentAt = {};
  let sent = 0;
  let ackCount = 0;
  let sending = false;
  const res = ws.connect(urls[vu % urls.length], { headers: { Authorization: `Bearer ${tokens[vu]}` } }, (socket) => {
    socket.on('message', (data) => {
      const f = JSON.parse(data);
      if (f.type === 'welcome') {
        socket.send(JSON.stringify({ type: 'join', room }));
      } else if (f.type === 'joined') {
        sending = true;
        socket.setInterval(() => {
          if (!sending) return;
          const id = `k${vu}-${sent++}`;
          const now = Date.now();
          sentAt[id] = now;
          socket.send(JSON.stringify({ type: 'send', room, id, body: String(now) }));
        }, intervalMs);
        socket.setTimeout(() => { sending = false; }, durationMs);
        socket.setTimeout(() => socket.close(), durationMs + 2000);
      } else if (f.type === 'ack') {
        if (sentAt[f.id] !== undefined) ackLatency.add(Date.now() - sentAt[f.id]);
        ackCount++;
        acks.add(1);
      } else if (f.type === 'message') {
        e2e.add(Date.now() - Number(f.body));
        delivered.add(1);
      } else if (f.type === 'error') {
        check(f, { 'no error frames': () => false });
      }
    });
  });
  check(res, { 'upgraded (101)': (r) => r && r.status === 101 });
  for (let i = 0; i < sent; i++) acked.add(i < ackCount);
}

export function handleSummary(data) {
  const m = data.metrics;
  const line = (name) => (m[name] ? `${name}: p50=${m[name].values.med} p99=${m[name].values['p(99)']} max=${m[name].values.max}\n` : '');
  const out = { stdout: `k6 summary\n${line('e2e_latency')}${line('ack_latency')}` };
  if (__ENV.SUMMARY) out[__ENV.SUMMARY] = JSON.stringify(data);
  return out;
}
