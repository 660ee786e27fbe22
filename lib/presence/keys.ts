// Every Redis key and channel of sessions and presence, in one place, under the deployment's prefix.
import type { RoomId } from '../protocol/index.js';

export interface PresenceKeys {
  session(sid: string): string;
  userSessions(user: string): string;
  ipSessions(ip: string): string;
  roomOnline(room: RoomId): string;
  gatewayAlive(gw: string): string;
  /** Pub/Sub: presence frames (room-scoped and global). */
  presenceChannel: string;
  /** Pub/Sub: typing signals, `<gateway>\n<room>\n<frame>`. */
  typingChannel: string;
}

export function presenceKeys(prefix: string): PresenceKeys {
  return {
    session: (sid) => `${prefix}session:${sid}`,
    userSessions: (user) => `${prefix}user:${user}:sessions`,
    ipSessions: (ip) => `${prefix}ip:${ip}:sessions`,
    roomOnline: (room) => `${prefix}room:${room}:online`,
    gatewayAlive: (gw) => `${prefix}gateway:${gw}:alive`,
    presenceChannel: `${prefix}presence`,
    typingChannel: `${prefix}typing`,
  };
}
