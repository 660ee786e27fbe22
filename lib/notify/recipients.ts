// Who is told about a message: the users it mentions, and the other member of a direct room. Pure: presence and
// mutes are asked by the service (service.ts), which drops direct recipients who are online and anyone who muted.
//
// A direct room is `dm-<a>-<b>` with a < b (code unit order) and both ids of [A-Za-z0-9_]{1,30}: the name alone says
// who its two members are, so no membership record is needed and two users have exactly one direct room. Users
// whose ids do not fit that alphabet have no direct room by name (the gateway's access claims decide who may join it).
import { isUserId } from '../protocol/index.js';
import type { ChatMessage } from '../protocol/index.js';
import type { NotificationReason } from '../store/index.js';

const DIRECT_MEMBER = /^[A-Za-z0-9_]{1,30}$/;
const DIRECT_ROOM = /^dm-([A-Za-z0-9_]{1,30})-([A-Za-z0-9_]{1,30})$/;

/** The direct room of two users, or undefined when either id cannot name one (or they are the same user). */
export function directRoom(a: string, b: string): string | undefined {
  if (a === b || !DIRECT_MEMBER.test(a) || !DIRECT_MEMBER.test(b)) return undefined;
  return a < b ? `dm-${a}-${b}` : `dm-${b}-${a}`;
}

/** The two members of a direct room, or undefined when the room is not one (its ids must be sorted). */
export function directMembers(room: string): [string, string] | undefined {
  const m = DIRECT_ROOM.exec(room);
  if (!m || !(m[1]! < m[2]!)) return undefined;
  return [m[1]!, m[2]!];
}

export interface Candidate {
  recipient: string;
  reason: NotificationReason;
}

/**
 * Everyone the message may concern, each once: mentioned users (valid user ids, at most `maxMentions`, the sender
 * never), then the other member of a direct room unless mentioned already. The same message always yields the same
 * list, so a redelivery finds the notifications an earlier delivery recorded.
 */
export function candidates(ev: ChatMessage, maxMentions: number): Candidate[] {
  const out: Candidate[] = [];
  const seen = new Set<string>([ev.from]);
  for (const u of (ev.mentions ?? []).slice(0, maxMentions)) {
    if (!isUserId(u) || seen.has(u)) continue;
    seen.add(u);
    out.push({ recipient: u, reason: 'mention' });
  }
  const members = directMembers(ev.room);
  if (members?.includes(ev.from)) {
    for (const u of members) {
      if (seen.has(u)) continue;
      seen.add(u);
      out.push({ recipient: u, reason: 'direct' });
    }
  }
  return out;
}
