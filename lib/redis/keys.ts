// Every Redis key and Pub/Sub channel Parley uses, produced here and nowhere else, under the deployment's prefix.
// Scripts get the names they touch from these functions (as KEYS, or as name prefixes in ARGV for the keys a script
// discovers while it runs, such as a reaped gateway's rooms); no other module spells a key.
import type { RoomId } from '../protocol/index.js';

export interface RedisKeys {
  readonly prefix: string;
  /** hash user, gateway, ip, ua, connectedAt; TTL refreshed by the gateway heartbeat. */
  session(sid: string): string;
  /** set of session ids */
  userSessions(user: string): string;
  /** set of session ids */
  ipSessions(ip: string): string;
  /** hash user -> sessions in the room, cluster-wide; 0 while the user's offline is pending. */
  roomOnline(room: RoomId): string;
  /** string with TTL: the gateway's heartbeat */
  gatewayAlive(gw: string): string;
  /** set of registered gateway ids */
  readonly gateways: string;
  /** zset "<room> <user>" -> when the offline is due */
  readonly presencePending: string;
  /** GCRA state of one limit: `rl:<scope>:<id>`. */
  rate(scope: string, id: string): string;
  /** Pub/Sub: one room's broadcasts. */
  roomChannel(room: RoomId): string;
  /** The room of a room channel, or undefined for any other channel. */
  roomOfChannel(channel: string): RoomId | undefined;
  /** Pub/Sub: presence events (room-scoped and global). */
  readonly presenceChannel: string;
  /** Pub/Sub: typing events. */
  readonly typingChannel: string;
}

export function redisKeys(prefix: string): RedisKeys {
  const roomChannelPrefix = `${prefix}room.`;
  return {
    prefix,
    session: (sid) => `${prefix}session:${sid}`,
    userSessions: (user) => `${prefix}user:${user}:sessions`,
    ipSessions: (ip) => `${prefix}ip:${ip}:sessions`,
    roomOnline: (room) => `${prefix}room:${room}:online`,
    gatewayAlive: (gw) => `${prefix}gateway:${gw}:alive`,
    gateways: `${prefix}gateways`,
    presencePending: `${prefix}presence:pending`,
    rate: (scope, id) => `${prefix}rl:${scope}:${id}`,
    roomChannel: (room) => `${roomChannelPrefix}${room}`,
    roomOfChannel: (channel) => (channel.startsWith(roomChannelPrefix) ? channel.slice(roomChannelPrefix.length) : undefined),
    presenceChannel: `${prefix}presence`,
    typingChannel: `${prefix}typing`,
  };
}
