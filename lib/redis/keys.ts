// Every Redis key and Pub/Sub channel Parley uses, produced here and nowhere else, under the deployment's prefix.
// Scripts get the names they touch from here: as KEYS when the caller knows them (rate limits, the typing throttle),
// and, for the keys a script discovers while it runs (the sessions and rooms of a gateway it reaps), as the templates
// below in ARGV (`scriptNames`, read by SCRIPT_NAMES_LUA). Either way no script spells a key itself.
// Redis Cluster: every key a script touches must live in one slot, so the keys carry hash tags by group (ADR 0024):
//   {presence}  sessions, users' and addresses' sessions, room presence, gateways, pending offlines, connect rates:
//               the presence scripts (and admission inside the session-open one) touch all of them at once;
//   {limits}    send and history rate limits (one script charges a user's and an address's budgets together), and
//               the typing throttle.
// Room channels carry no tag: each room's sharded channel lives on its own slot, which spreads fan-out over the
// masters. The presence and typing channels are plain Pub/Sub (published from scripts; reach every node).
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
  /** hash sid -> "<ip> <user>": the gateway's sessions (no TTL: how a dead gateway's sessions are found) */
  gatewaySessions(gw: string): string;
  /** hash "<room> <user>" -> sessions: the gateway's room memberships (no TTL, as gatewaySessions) */
  gatewayRooms(gw: string): string;
  /** set of registered gateway ids */
  readonly gateways: string;
  /** zset "<room> <user>" -> when the offline is due */
  readonly presencePending: string;
  /** GCRA state of one limit: `{limits}rl:<scope>:<id>`. */
  rate(scope: string, id: string): string;
  /**
   * string with TTL: the seq a namespaced message id was first stored with (docs/decisions/0015). The id is the
   * hash tag, so on Redis Cluster each id is one key in one slot, whatever the prefix.
   */
  messageId(namespacedId: string): string;
  /** GCRA state of a connect rate (checked by the session-open script, so in the presence slot). */
  connectRate(kind: 'user' | 'ip', id: string): string;
  /** A key in the presence slot, named as KEYS by every presence script so a Redis Cluster routes it there. */
  readonly presenceSlot: string;
  /** Pub/Sub: one room's broadcasts. */
  roomChannel(room: RoomId): string;
  /** The room of a room channel, or undefined for any other channel. */
  roomOfChannel(channel: string): RoomId | undefined;
  /** Pub/Sub: presence events (room-scoped and global). */
  readonly presenceChannel: string;
  /** Pub/Sub: typing events. */
  readonly typingChannel: string;
  /**
   * The first SCRIPT_NAME_COUNT ARGV of every script that starts with SCRIPT_NAMES_LUA: each template's head and tail,
   * then each fixed name, in the order of SCRIPT_TEMPLATES and SCRIPT_FIXED.
   */
  readonly scriptNames: readonly string[];
}

/** A name made from one id: head .. id .. tail. */
type Template = readonly [head: string, tail: string];

/** The names made from an id that scripts need, and the fixed ones, by their RedisKeys member. */
export const SCRIPT_TEMPLATES = ['session', 'userSessions', 'ipSessions', 'roomOnline', 'gatewayAlive', 'gatewaySessions', 'gatewayRooms'] as const;
export const SCRIPT_FIXED = ['gateways', 'presencePending', 'presenceChannel'] as const;
export const SCRIPT_NAME_COUNT = SCRIPT_TEMPLATES.length * 2 + SCRIPT_FIXED.length;

type TemplateName = (typeof SCRIPT_TEMPLATES)[number];

/** The hash tags of the key groups (after the deployment prefix, so ACL patterns on the prefix keep working). */
export const PRESENCE_TAG = '{presence}';
export const LIMITS_TAG = '{limits}';

function templates(p: string): Record<TemplateName | 'roomChannel', Template> {
  const g = `${p}${PRESENCE_TAG}`;
  return {
    session: [`${g}session:`, ''],
    userSessions: [`${g}user:`, ':sessions'],
    ipSessions: [`${g}ip:`, ':sessions'],
    roomOnline: [`${g}room:`, ':online'],
    gatewayAlive: [`${g}gateway:`, ':alive'],
    gatewaySessions: [`${g}gateway:`, ':sessions'],
    gatewayRooms: [`${g}gateway:`, ':rooms'],
    roomChannel: [`${p}room.`, ''],
  };
}

export function redisKeys(prefix: string): RedisKeys {
  const t = templates(prefix);
  const of = ([head, tail]: Template) => (id: string): string => `${head}${id}${tail}`;
  const roomChannelPrefix = t.roomChannel[0];
  const fixed = {
    gateways: `${prefix}${PRESENCE_TAG}gateways`,
    presencePending: `${prefix}${PRESENCE_TAG}presence:pending`,
    presenceChannel: `${prefix}presence`,
  };
  return {
    prefix,
    session: of(t.session),
    userSessions: of(t.userSessions),
    ipSessions: of(t.ipSessions),
    roomOnline: of(t.roomOnline),
    gatewayAlive: of(t.gatewayAlive),
    gatewaySessions: of(t.gatewaySessions),
    gatewayRooms: of(t.gatewayRooms),
    ...fixed,
    messageId: (nsid) => `${prefix}msgid:{${nsid}}`,
    rate: (scope, id) => `${prefix}${LIMITS_TAG}rl:${scope}:${id}`,
    connectRate: (kind, id) => `${prefix}${PRESENCE_TAG}rl:connect-${kind}:${id}`,
    presenceSlot: fixed.gateways,
    roomChannel: of(t.roomChannel),
    roomOfChannel: (channel) => (channel.startsWith(roomChannelPrefix) ? channel.slice(roomChannelPrefix.length) : undefined),
    typingChannel: `${prefix}typing`,
    scriptNames: [...SCRIPT_TEMPLATES.flatMap((n) => t[n]), ...SCRIPT_FIXED.map((n) => fixed[n])],
  };
}

/**
 * Lua prelude for scripts that build names while they run: `N.<member>(id)` and `N.<fixed>` spell exactly what the
 * RedisKeys member of that name does, from the templates in ARGV[1..SCRIPT_NAME_COUNT]; the script's own arguments
 * follow and are read as `ARG[1..]`. Templates in ARGV rather than KEYS because the ids are only known inside the
 * script (it reads a gateway's sessions, then touches `session:<id>`), and the transition must stay one atomic call.
 * On a Redis Cluster this holds because every such name is in the presence slot ({presence} tag) and every call names
 * `presenceSlot` (or another key of that slot) as KEYS, so it runs on the master that owns all of them.
 */
export const SCRIPT_NAMES_LUA = `
local N = {}
${SCRIPT_TEMPLATES.map((n, i) => `N.${n} = function(id) return ARGV[${i * 2 + 1}] .. id .. ARGV[${i * 2 + 2}] end`).join('\n')}
${SCRIPT_FIXED.map((n, i) => `N.${n} = ARGV[${SCRIPT_TEMPLATES.length * 2 + i + 1}]`).join('\n')}
local ARG = {}
for i = ${SCRIPT_NAME_COUNT + 1}, #ARGV do ARG[i - ${SCRIPT_NAME_COUNT}] = ARGV[i] end
`;
