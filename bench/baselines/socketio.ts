// The Socket.IO baseline: Socket.IO 4 with the Redis adapter, rooms, the same join/send/ack/message exchange, and
// fan-out in memory (no durability, no stream, no database): what a typical Node chat server does.
//   node socketio.js   env: REDIS_URL PORT SIO_PREFIX
import { createServer } from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';
import { Server } from 'socket.io';
import { requireEnv, userFromBearer } from './common.js';

const http = createServer((req, res) => {
  res.statusCode = req.url === '/healthz' ? 200 : 404;
  res.end();
});
const pub = createClient({ url: requireEnv('REDIS_URL') });
const sub = pub.duplicate();
await Promise.all([pub.connect(), sub.connect()]);
const io = new Server(http, {
  transports: ['websocket'],
  serveClient: false,
  adapter: createAdapter(pub, sub, { key: process.env.SIO_PREFIX ?? 'sio' }),
});
io.use((socket, next) => {
  const user = userFromBearer(socket.handshake.headers.authorization);
  if (!user) return next(new Error('unauthorized'));
  socket.data.user = user;
  next();
});
// Socket.IO has no global order across servers: seq is per process (the generator checks each sender's order).
let seq = 0;
io.on('connection', (socket) => {
  const user = socket.data.user as string;
  socket.on('join', (room: string, cb?: () => void) => {
    void socket.join(room);
    cb?.();
  });
  socket.on('send', (m: { room: string; id: string; body: string }, cb?: (a: unknown) => void) => {
    const s = ++seq;
    io.to(m.room).emit('message', { room: m.room, id: m.id, seq: s, from: user, body: m.body, ts: Date.now() });
    cb?.({ id: m.id, seq: s, duplicate: false });
  });
});
http.listen(Number(requireEnv('PORT')), '127.0.0.1', () => console.log('socketio ready'));
const stop = (): void => {
  void io.close();
  pub.destroy();
  sub.destroy();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
