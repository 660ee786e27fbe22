// The gateway's side of sessions and presence: registers each connection's session and room memberships in Redis
// (atomically, through the scripts in lua.ts), heartbeats for all of its sessions in one transaction per tick,
// relays presence and typing events to local room members, and repairs its registrations after any Redis failure.
import type { Config } from '../config/index.js';
import type { ConnectionAdmission } from '../limits/index.js';
import type { Logger } from '../observability/index.js';
import { decodePresence, decodeTyping, encodeTyping } from '../fanout/index.js';
import { presenceFrame, typingFrame } from '../protocol/index.js';
import type { RoomId } from '../protocol/index.js';
import { loadScripts } from '../redis/index.js';
import type { RedisConnection, RedisKeys, RedisSubscriber, ScriptArg, Scripts } from '../redis/index.js';
import { PRESENCE_SCRIPTS } from './lua.js';
import type { PresenceScript } from './lua.js';
import { Throttle } from './throttle.js';

export interface SessionInfo {
  session: string;
  user: string;
  ip: string;
  /** Client description (User-Agent), bounded. */
  ua: string;
}

export interface GatewayPresence {
  /**
   * May this connection be admitted (lib/limits admission: cluster-wide caps and connect rates per user and address)?
   * Registers its session if so. Resolves undefined when admitted, or the reason to close it with 4008. Never rejects.
   */
  admit(s: SessionInfo): Promise<string | undefined>;
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
  /**
   * Starts relaying presence and typing frames for rooms to `deliver` (which sends them to local members), over the
   * given Pub/Sub connection.
   */
  listen(sub: RedisSubscriber, deliver: (room: RoomId, frame: string) => void): Promise<void>;
  ready(): boolean;
  /** Unregisters the gateway (after its connections were closed); the Redis connections are the caller's to close. */
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

/**
 * Loads its scripts, registers the gateway (first heartbeat) and starts heartbeating, on a commands connection.
 * `admission` decides which connections are admitted; presence runs its check in the script that registers the session.
 */
export async function startGatewayPresence(
  redis: RedisConnection, keys: RedisKeys, admission: ConnectionAdmission, cfg: Config, log: Logger,
): Promise<GatewayPresence> {
  const scripts = loadScripts(redis.client, PRESENCE_SCRIPTS);
  await scripts.load();
  const gp = new GatewayPresenceImpl(redis, keys, scripts, admission, cfg, log);
  await gp.start();
  return gp;
}

class GatewayPresenceImpl implements GatewayPresence {
  private readonly sessions = new Map<string, Local>();
  private readonly typingGate: Throttle;
  /** The names the presence scripts build while they run (lib/redis keys.ts); the first ARGV of each. */
  private readonly names: readonly string[];
  /** KEYS of the scripts that take none of their own: routes them to the presence slot on a Redis Cluster. */
  private readonly slot: readonly string[];
  private readonly gw: string;
  private readonly sessionTtlMs: number;
  private timer: NodeJS.Timeout | undefined;
  private beating: Promise<void> | undefined;
  /** A registration may be missing or stale in Redis (a write failed): re-register everything at the next tick. */
  private dirty = false;
  private registered = false;
  private closing = false;

  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: RedisKeys,
    private readonly scripts: Scripts<PresenceScript>,
    private readonly admission: ConnectionAdmission,
    private readonly cfg: Config,
    private readonly log: Logger,
  ) {
    this.names = keys.scriptNames;
    this.slot = [keys.presenceSlot];
    this.gw = cfg.gatewayId;
    this.typingGate = new Throttle(cfg.presence.typingIntervalMs);
    // A session key outlives one missed heartbeat; the presence service deletes it when it reaps the gateway.
    this.sessionTtlMs = cfg.presence.gatewayTtlMs * 2;
  }

  async start(): Promise<void> {
    // Whatever a previous process with this gateway id left behind is stale: undo it before registering.
    await this.scripts.run('gatewayReset', this.slot, [...this.names, this.gw, this.cfg.presence.graceMs]);
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
    return this.redis.ready();
  }

  async admit(s: SessionInfo): Promise<string | undefined> {
    const local: Local = { user: s.user, ip: s.ip, ua: s.ua, connectedAt: Date.now(), rooms: [] };
    this.sessions.set(s.session, local);
    this.admission.opened(s.user, s.ip);
    if (this.ready()) {
      try {
        const open = this.openArgs(s.session, local, false);
        const [status, wait] = await this.scripts.run<[number, number]>('sessionOpen', open.keys, open.args);
        return this.admission.refusal(status, wait);
      } catch (err) {
        this.markDirty(err);
      }
    } else {
      this.markDirty();
    }
    return this.admission.admitLocally(s.user, s.ip);
  }

  close(session: string): void {
    const s = this.sessions.get(session);
    if (!s) return;
    this.sessions.delete(session);
    this.admission.closed(s.user, s.ip);
    if (!this.ready()) return this.markDirty();
    this.scripts.run('sessionClose', this.slot, [...this.names, this.gw, session, this.cfg.presence.graceMs, ...s.rooms])
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
      const sent = await this.scripts.run<number>('typing', [this.keys.rate('typing', `${room}:${user}`)], [
        this.cfg.presence.typingIntervalMs, this.keys.typingChannel, encodeTyping(this.gw, room, user),
      ]);
      return sent === 1 ? frame : undefined;
    } catch (err) {
      if (this.log.isLevelEnabled('debug')) this.log.debug({ err, room }, 'typing not relayed');
      return frame;
    }
  }

  async onlineInRoom(room: RoomId): Promise<string[]> {
    try {
      return await this.redis.client.hKeys(this.keys.roomOnline(room));
    } catch (err) {
      this.log.warn({ err, room }, 'presence of the room unavailable');
      return [];
    }
  }

  async listen(sub: RedisSubscriber, deliver: (room: RoomId, frame: string) => void): Promise<void> {
    await sub.subscribe(this.keys.presenceChannel, (payload) => {
      // Global presence (no room) is for other services; clients get the room-scoped events of their rooms.
      const e = decodePresence(payload);
      if (e?.room !== undefined) deliver(e.room, presenceFrame(e.room, e.user, e.status));
    });
    await sub.subscribe(this.keys.typingChannel, (payload) => {
      const t = decodeTyping(payload);
      // The origin gateway delivered it to its own members already, without echoing it to the sender.
      if (t && t.gateway !== this.gw) deliver(t.room, typingFrame(t.room, t.user));
    });
  }

  async shutdown(): Promise<void> {
    this.closing = true;
    if (this.timer) clearTimeout(this.timer);
    await this.beating;
    try {
      // Connections were closed cleanly before this; the reset removes whatever a failed write left behind.
      if (this.ready()) await this.scripts.run('gatewayReset', this.slot, [...this.names, this.gw, this.cfg.presence.graceMs]);
    } catch (err) {
      this.log.warn({ err }, 'gateway unregistration failed; the presence service will reap it');
    }
  }

  private room(session: string, room: RoomId, dir: 'in' | 'out'): void {
    if (!this.ready()) return this.markDirty();
    this.scripts.run('room', this.slot, [...this.names, this.gw, session, room, dir, this.cfg.presence.graceMs])
      .catch((err: unknown) => this.markDirty(err));
  }

  /** KEYS: the connect-rate keys of the user and the address (admission's); ARGV as SESSION_OPEN_LUA documents. */
  private openArgs(session: string, s: Local, force: boolean): { keys: string[]; args: ScriptArg[] } {
    const check = this.admission.scriptArgs(s.user, s.ip, force);
    const args: ScriptArg[] = [...this.names, this.gw, session, s.user, s.ip, s.ua, s.connectedAt, this.sessionTtlMs, ...check.args];
    return { keys: check.keys, args };
  }

  private markDirty(err?: unknown): void {
    if (!this.dirty) this.log.warn({ err }, 'presence registration failed; will re-register this gateway when Redis answers');
    this.dirty = true;
  }

  /** One transaction per tick for the whole gateway: alive key, registry membership, every session's TTL. */
  private async heartbeat(): Promise<void> {
    if (this.dirty) return this.resync();
    try {
      const m = this.redis.client.multi();
      m.sAdd(this.keys.gateways, this.gw);
      m.set(this.keys.gatewayAlive(this.gw), String(Date.now()), { PX: this.cfg.presence.gatewayTtlMs });
      for (const sid of this.sessions.keys()) m.pExpire(this.keys.session(sid), this.sessionTtlMs);
      const res = await m.exec();
      const added = res[0] as unknown;
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
      // A Redis that came back empty lost its script cache too: the batch below calls the scripts by SHA.
      await this.scripts.load();
      const p = this.redis.client.multi();
      this.scripts.queue(p, 'gatewayReset', this.slot, [...this.names, this.gw, this.cfg.presence.graceMs]);
      p.sAdd(this.keys.gateways, this.gw);
      p.set(this.keys.gatewayAlive(this.gw), String(Date.now()), { PX: this.cfg.presence.gatewayTtlMs });
      for (const [sid, s] of this.sessions) {
        const open = this.openArgs(sid, s, true);
        this.scripts.queue(p, 'sessionOpen', open.keys, open.args);
        for (const room of s.rooms) this.scripts.queue(p, 'room', this.slot, [...this.names, this.gw, sid, room, 'in', 0]);
      }
      // A pipeline, not a transaction: every reply is checked, and any error reply rejects it.
      await p.execAsPipeline();
      this.registered = true;
      this.log.info({ sessions: this.sessions.size }, 'gateway presence re-registered');
    } catch (err) {
      this.dirty = false;
      this.markDirty(err);
    }
  }
}
