// The gateway's side of sessions and presence: registers each connection's session and room memberships in Redis
// (atomically, through the scripts in lua.ts), heartbeats for all of its sessions in one transaction per tick,
// relays presence and typing events to local room members, and repairs its registrations after any Redis failure.
import type { Config } from '../config/index.js';
import { LocalLimiter, pushCharge, rateKey } from '../limits/index.js';
import type { Logger } from '../observability/index.js';
import { typingFrame } from '../protocol/index.js';
import type { RoomId } from '../protocol/index.js';
import { presenceKeys } from './keys.js';
import { connectCommandRedis } from './redis.js';
import type { PresencePipeline, PresenceRedis } from './redis.js';
import { Throttle, decodeTyping, encodeTyping } from './throttle.js';

export interface SessionInfo {
  session: string;
  user: string;
  ip: string;
  /** Client description (User-Agent), bounded. */
  ua: string;
}

export interface GatewayPresence {
  /** The command connection (scripts loaded); the send limiter shares it. */
  readonly redis: PresenceRedis;
  /** Registers a new connection. Resolves undefined when admitted, or the reason to close it with 4008. Never rejects. */
  open(s: SessionInfo): Promise<string | undefined>;
  /** The connection is gone (any reason): its session and room memberships are removed at once. */
  close(session: string): void;
  /** The connection joined a room (call once per membership, after the join succeeded). */
  joined(session: string, room: RoomId): void;
  left(session: string, room: RoomId): void;
  /**
   * Signals typing to the room on every other gateway. Resolves the frame to deliver to this gateway's other members
   * of the room, or undefined when the signal was throttled (at most one per user and room per interval).
   */
  typing(user: string, room: RoomId): Promise<string | undefined>;
  /** Users online in the room now (including those whose offline is still within the grace period). */
  onlineInRoom(room: RoomId): Promise<string[]>;
  /** Starts relaying presence and typing frames for rooms to `deliver` (which sends them to local members). */
  listen(deliver: (room: RoomId, frame: string) => void): Promise<void>;
  ready(): boolean;
  /** Unregisters the gateway (after its connections were closed) and closes the Redis connections. */
  shutdown(): Promise<void>;
}

interface Local {
  user: string;
  ip: string;
  ua: string;
  connectedAt: number;
  /** An array, not a Set: most sessions join few rooms, and an empty array costs a fraction of an empty Set. */
  rooms: RoomId[];
}

const PRESENCE_ROOM = /^\{"type":"presence","room":"([A-Za-z0-9_-]{1,64})"/;

/** Connects, registers the gateway (first heartbeat) and starts heartbeating. */
export async function startGatewayPresence(cfg: Config, log: Logger): Promise<GatewayPresence> {
  const redis = await connectCommandRedis(cfg.redisUrl, log, `parley-presence-${cfg.gatewayId}`);
  const gp = new GatewayPresenceImpl(redis, cfg, log);
  await gp.start();
  return gp;
}

class GatewayPresenceImpl implements GatewayPresence {
  private readonly sessions = new Map<string, Local>();
  private readonly perUser = new Map<string, number>();
  private readonly perIp = new Map<string, number>();
  private readonly connectFallback = new LocalLimiter();
  private readonly typingGate: Throttle;
  private readonly keys: ReturnType<typeof presenceKeys>;
  private readonly prefix: string;
  private readonly gw: string;
  private readonly sessionTtlMs: number;
  private sub: PresenceRedis | undefined;
  private timer: NodeJS.Timeout | undefined;
  private beating: Promise<void> | undefined;
  /** A registration may be missing or stale in Redis (a write failed): re-register everything at the next tick. */
  private dirty = false;
  private registered = false;
  private closing = false;

  constructor(readonly redis: PresenceRedis, private readonly cfg: Config, private readonly log: Logger) {
    this.prefix = cfg.redisPrefix;
    this.gw = cfg.gatewayId;
    this.keys = presenceKeys(cfg.redisPrefix);
    this.typingGate = new Throttle(cfg.presence.typingIntervalMs);
    // A session key outlives one missed heartbeat; the presence service deletes it when it reaps the gateway.
    this.sessionTtlMs = cfg.presence.gatewayTtlMs * 2;
  }

  async start(): Promise<void> {
    // Whatever a previous process with this gateway id left behind is stale: undo it before registering.
    await this.redis.parleyGatewayReset(this.prefix, this.gw, this.cfg.presence.graceMs);
    await this.heartbeat();
    const every = Math.max(50, Math.floor(this.cfg.presence.gatewayTtlMs / 3));
    const tick = (): void => {
      this.beating = this.heartbeat().finally(() => {
        this.beating = undefined;
        if (!this.closing) this.timer = setTimeout(tick, every);
      });
    };
    this.timer = setTimeout(tick, every);
  }

  ready(): boolean {
    return this.redis.status === 'ready';
  }

  async open(s: SessionInfo): Promise<string | undefined> {
    const local: Local = { user: s.user, ip: s.ip, ua: s.ua, connectedAt: Date.now(), rooms: [] };
    this.sessions.set(s.session, local);
    bump(this.perUser, s.user, 1);
    bump(this.perIp, s.ip, 1);
    if (this.ready()) {
      try {
        const [status, wait] = await this.redis.parleySessionOpen(2, ...this.openArgs(s.session, local, false));
        if (status === 1) return undefined;
        if (status === 0) return `too many connections for this user (max ${this.cfg.presence.maxConnectionsPerUser})`;
        if (status === -1) return `too many connections from this address (max ${this.cfg.presence.maxConnectionsPerIp})`;
        return `too many connection attempts; retry in ${wait} ms`;
      } catch (err) {
        this.markDirty(err);
      }
    } else {
      this.markDirty();
    }
    return this.admitLocally(s);
  }

  close(session: string): void {
    const s = this.sessions.get(session);
    if (!s) return;
    this.sessions.delete(session);
    bump(this.perUser, s.user, -1);
    bump(this.perIp, s.ip, -1);
    if (!this.ready()) return this.markDirty();
    this.redis.parleySessionClose(this.prefix, this.gw, session, this.cfg.presence.graceMs, ...s.rooms)
      .catch((err: unknown) => this.markDirty(err));
  }

  joined(session: string, room: RoomId): void {
    const s = this.sessions.get(session);
    if (!s || s.rooms.includes(room)) return;
    s.rooms.push(room);
    this.room(session, room, 'in');
  }

  left(session: string, room: RoomId): void {
    const s = this.sessions.get(session);
    const i = s ? s.rooms.indexOf(room) : -1;
    if (!s || i < 0) return;
    s.rooms.splice(i, 1);
    this.room(session, room, 'out');
  }

  async typing(user: string, room: RoomId): Promise<string | undefined> {
    if (!this.typingGate.allow(`${room} ${user}`, Date.now())) return undefined;
    const frame = typingFrame(room, user);
    if (!this.ready()) return frame; // Redis down: at least this gateway's members see it
    try {
      const sent = await this.redis.parleyTyping(
        rateKey(this.prefix, 'typing', `${room}:${user}`), this.prefix, this.cfg.presence.typingIntervalMs,
        this.keys.typingChannel, encodeTyping(this.gw, room, frame),
      );
      return sent === 1 ? frame : undefined;
    } catch (err) {
      if (this.log.isLevelEnabled('debug')) this.log.debug({ err, room }, 'typing not relayed');
      return frame;
    }
  }

  async onlineInRoom(room: RoomId): Promise<string[]> {
    try {
      return await this.redis.hkeys(this.keys.roomOnline(room));
    } catch (err) {
      this.log.warn({ err, room }, 'presence of the room unavailable');
      return [];
    }
  }

  async listen(deliver: (room: RoomId, frame: string) => void): Promise<void> {
    const sub = await connectCommandRedis(this.cfg.redisUrl, this.log, `parley-presence-sub-${this.gw}`, { subscriber: true });
    this.sub = sub;
    const { presenceChannel, typingChannel } = this.keys;
    sub.on('message', (channel: string, payload: string) => {
      if (channel === presenceChannel) {
        // Global presence (no room) is for other services; clients get the room-scoped events of their rooms.
        const m = PRESENCE_ROOM.exec(payload);
        if (m) deliver(m[1]!, payload);
      } else if (channel === typingChannel) {
        const t = decodeTyping(payload);
        // The origin gateway delivered it to its own members already, without echoing it to the sender.
        if (t && t.gateway !== this.gw) deliver(t.room, t.frame);
      }
    });
    await sub.subscribe(presenceChannel, typingChannel);
  }

  async shutdown(): Promise<void> {
    this.closing = true;
    if (this.timer) clearTimeout(this.timer);
    await this.beating;
    try {
      // Connections were closed cleanly before this; the reset removes whatever a failed write left behind.
      if (this.ready()) await this.redis.parleyGatewayReset(this.prefix, this.gw, this.cfg.presence.graceMs);
    } catch (err) {
      this.log.warn({ err }, 'gateway unregistration failed; the presence service will reap it');
    }
    await Promise.all([this.sub, this.redis].map((r) => r?.quit().catch(() => r.disconnect())));
  }

  private room(session: string, room: RoomId, dir: 'in' | 'out'): void {
    if (!this.ready()) return this.markDirty();
    this.redis.parleyRoom(this.prefix, this.gw, session, room, dir, this.cfg.presence.graceMs)
      .catch((err: unknown) => this.markDirty(err));
  }

  private openArgs(session: string, s: Local, force: boolean): Array<string | number> {
    const lim = this.cfg.rateLimits;
    const p = this.cfg.presence;
    const args: Array<string | number> = [
      rateKey(this.prefix, 'connect-user', s.user), rateKey(this.prefix, 'connect-ip', s.ip),
      this.prefix, this.gw, session, s.user, s.ip, s.ua, s.connectedAt, this.sessionTtlMs,
      p.maxConnectionsPerUser, p.maxConnectionsPerIp, force ? '1' : '0',
    ];
    pushCharge(args, 1, 'm', lim.connectPerUser, 1);
    pushCharge(args, 2, 'm', lim.connectPerIp, 1);
    return args;
  }

  /** Fail open: limits from this gateway's own connections and an in-process rate limiter. */
  private admitLocally(s: SessionInfo): string | undefined {
    const p = this.cfg.presence;
    const lim = this.cfg.rateLimits;
    const charges = [];
    if (lim.connectPerUser.perSec > 0) charges.push({ key: `u:${s.user}`, rate: lim.connectPerUser, cost: 1 });
    if (lim.connectPerIp.perSec > 0) charges.push({ key: `i:${s.ip}`, rate: lim.connectPerIp, cost: 1 });
    const wait = this.connectFallback.charge(charges, Date.now());
    if (wait > 0) return `too many connection attempts; retry in ${wait} ms`;
    if (p.maxConnectionsPerUser > 0 && (this.perUser.get(s.user) ?? 0) > p.maxConnectionsPerUser) {
      return `too many connections for this user (max ${p.maxConnectionsPerUser})`;
    }
    if (p.maxConnectionsPerIp > 0 && (this.perIp.get(s.ip) ?? 0) > p.maxConnectionsPerIp) {
      return `too many connections from this address (max ${p.maxConnectionsPerIp})`;
    }
    return undefined;
  }

  private markDirty(err?: unknown): void {
    if (!this.dirty) this.log.warn({ err }, 'presence registration failed; will re-register this gateway when Redis answers');
    this.dirty = true;
  }

  /** One transaction per tick for the whole gateway: alive key, registry membership, every session's TTL. */
  private async heartbeat(): Promise<void> {
    if (this.dirty) return this.resync();
    try {
      const m = this.redis.multi();
      m.sadd(`${this.prefix}gateways`, this.gw);
      m.set(this.keys.gatewayAlive(this.gw), String(Date.now()), 'PX', this.cfg.presence.gatewayTtlMs);
      for (const sid of this.sessions.keys()) m.pexpire(this.keys.session(sid), this.sessionTtlMs);
      const res = await m.exec();
      const added = res?.[0]?.[1];
      if (added === 1 && this.registered) {
        // Reaped while alive (an event-loop stall or a Redis outage longer than the TTL): register again.
        this.log.warn({ gateway: this.gw }, 'gateway was reaped while alive; re-registering its sessions');
        return this.resync();
      }
      this.registered = true;
    } catch (err) {
      this.markDirty(err);
    }
  }

  /**
   * Undo this gateway's registrations, then register every live session and membership again. Users still
   * connected see no event: the reset only schedules their offline, and the re-registration within the grace
   * period cancels it. Users whose close was lost go offline after the grace period.
   */
  private async resync(): Promise<void> {
    this.dirty = false;
    try {
      const p = this.redis.pipeline() as PresencePipeline;
      p.parleyGatewayReset(this.prefix, this.gw, this.cfg.presence.graceMs);
      p.sadd(`${this.prefix}gateways`, this.gw);
      p.set(this.keys.gatewayAlive(this.gw), String(Date.now()), 'PX', this.cfg.presence.gatewayTtlMs);
      for (const [sid, s] of this.sessions) {
        p.parleySessionOpen(2, ...this.openArgs(sid, s, true));
        for (const room of s.rooms) p.parleyRoom(this.prefix, this.gw, sid, room, 'in', 0);
      }
      const res = await p.exec();
      const failed = res?.find(([e]) => e);
      if (failed) throw failed[0];
      this.registered = true;
      this.log.info({ sessions: this.sessions.size }, 'gateway presence re-registered');
    } catch (err) {
      this.dirty = false;
      this.markDirty(err);
    }
  }
}

function bump(m: Map<string, number>, k: string, by: number): void {
  const n = (m.get(k) ?? 0) + by;
  if (n > 0) m.set(k, n);
  else m.delete(k);
}
