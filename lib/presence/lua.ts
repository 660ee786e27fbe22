// The presence state machine, as Redis scripts. Each transition (first session or room member in, last one out,
// offline due) runs atomically and publishes its event from inside the script, so any number of gateways and
// presence instances can run them concurrently: an event is published by exactly the script that made the change.
//
// Keys (every name from lib/redis keys.ts: `N.<name>` of SCRIPT_NAMES_LUA; all in the {presence} slot, so a Redis
// Cluster runs each script on one master: callers name `presenceSlot` or the connect-rate keys as KEYS):
//   session:<sid>             hash user, gateway, ip, ua, connectedAt; TTL refreshed by the gateway heartbeat
//   user:<u>:sessions         set of sids            ip:<ip>:sessions   set of sids
//   room:<r>:online           hash user -> sessions of the user in the room, cluster-wide; 0 while offline is pending
//   gateways                  set of gateway ids     gateway:<gw>:alive  string with TTL (the heartbeat)
//   gateway:<gw>:sessions     hash sid -> "<ip> <user>"     gateway:<gw>:rooms  hash "<room> <user>" -> sessions
//   presence:pending          zset "<room> <user>" (room '' for global) -> when offline is due (Redis TIME, ms)
// The gateway:<gw>:* hashes have no TTL on purpose: they are how a dead gateway's sessions and room memberships are
// found and undone, however long the presence service was away; only a clean shutdown or a reap removes them.
// Every script but typing's takes `keys.scriptNames` as its first ARGV (then its own arguments, read as ARG below).
import { PRESENCE_EVENT_LUA } from '../fanout/index.js';
import { ADMIT_CONNECTION_LUA, GCRA_LUA } from '../limits/index.js';
import { SCRIPT_NAMES_LUA } from '../redis/index.js';

const COMMON = `${SCRIPT_NAMES_LUA}${GCRA_LUA}${ADMIT_CONNECTION_LUA}${PRESENCE_EVENT_LUA}
local PEND = N.presencePending
local CHAN = N.presenceChannel
-- A user comes into a scope (a room, or '' for global). Online is announced unless an offline was pending: then
-- the user never visibly left (a reconnect within the grace period).
local function announce_in(room, user)
  if redis.call('ZREM', PEND, room .. ' ' .. user) == 0 then
    redis.call('PUBLISH', CHAN, presence_event(room, user, 'online'))
  end
end
local function room_in(gw, room, user)
  redis.call('HINCRBY', N.gatewayRooms(gw), room .. ' ' .. user, 1)
  if redis.call('HINCRBY', N.roomOnline(room), user, 1) == 1 then announce_in(room, user) end
end
-- n of the user's sessions leave a room; at zero the user stays listed (count 0) until the offline is due.
local function room_out(room, user, n, due)
  local k = N.roomOnline(room)
  if redis.call('HINCRBY', k, user, -n) <= 0 then
    redis.call('HSET', k, user, 0)
    redis.call('ZADD', PEND, due, room .. ' ' .. user)
  end
end
local function gw_room_out(gw, room, user)
  local k = N.gatewayRooms(gw)
  if redis.call('HINCRBY', k, room .. ' ' .. user, -1) <= 0 then redis.call('HDEL', k, room .. ' ' .. user) end
end
local function session_out(sid, ip, user, due)
  redis.call('DEL', N.session(sid))
  redis.call('SREM', N.ipSessions(ip), sid)
  local us = N.userSessions(user)
  if redis.call('SREM', us, sid) == 1 and redis.call('SCARD', us) == 0 then redis.call('ZADD', PEND, due, ' ' .. user) end
end
local function split(s)
  local i = string.find(s, ' ', 1, true)
  return string.sub(s, 1, i - 1), string.sub(s, i + 1)
end
-- Undoes everything a gateway registered (its process is gone, or it is resynchronising). Returns its session count.
local function reap(gw, due)
  local rooms = redis.call('HGETALL', N.gatewayRooms(gw))
  for i = 1, #rooms, 2 do
    local room, user = split(rooms[i])
    room_out(room, user, tonumber(rooms[i + 1]), due)
  end
  local ss = redis.call('HGETALL', N.gatewaySessions(gw))
  for i = 1, #ss, 2 do
    local ip, user = split(ss[i + 1])
    session_out(ss[i], ip, user, due)
  end
  redis.call('DEL', N.gatewayRooms(gw), N.gatewaySessions(gw))
  redis.call('SREM', N.gateways, gw)
  return #ss / 2
end
`;

/**
 * Registers a session, unless connection admission (lib/limits admission.ts) refuses it, in the same atomic step.
 * ARGV: names, then gw, sid, user, ip, ua, connectedAt, sessionTtlMs, then admission's arguments (its scriptArgs,
 * with the connect-rate keys as KEYS). Returns { 1, 0 } admitted, else admission's { status, waitMs }.
 */
export const SESSION_OPEN_LUA = `${COMMON}
local gw, sid, user, ip = ARG[1], ARG[2], ARG[3], ARG[4]
local us = N.userSessions(user)
local is = N.ipSessions(ip)
local status, wait = admit_connection(us, is, KEYS, ARG, 8)
if status ~= 1 then return { status, wait } end
local sk = N.session(sid)
redis.call('HSET', sk, 'user', user, 'gateway', gw, 'ip', ip, 'ua', ARG[5], 'connectedAt', ARG[6])
redis.call('PEXPIRE', sk, ARG[7])
redis.call('SADD', is, sid)
redis.call('HSET', N.gatewaySessions(gw), sid, ip .. ' ' .. user)
if redis.call('SADD', us, sid) == 1 and redis.call('SCARD', us) == 1 then announce_in('', user) end
return { 1, 0 }
`;

/** ARGV: names, gw, sid, graceMs, rooms... A no-op (returns 0) for a session not registered, e.g. reaped meanwhile. */
export const SESSION_CLOSE_LUA = `${COMMON}
local gw, sid = ARG[1], ARG[2]
local gs = N.gatewaySessions(gw)
local v = redis.call('HGET', gs, sid)
if not v then return 0 end
redis.call('HDEL', gs, sid)
local ip, user = split(v)
local due = now_ms() + tonumber(ARG[3])
for i = 4, #ARG do
  gw_room_out(gw, ARG[i], user)
  room_out(ARG[i], user, 1, due)
end
session_out(sid, ip, user, due)
return 1
`;

/** ARGV: names, gw, sid, room, 'in' | 'out', graceMs. A no-op (0) for a session not registered. */
export const ROOM_LUA = `${COMMON}
local gw, sid, room = ARG[1], ARG[2], ARG[3]
local v = redis.call('HGET', N.gatewaySessions(gw), sid)
if not v then return 0 end
local _, user = split(v)
if ARG[4] == 'in' then
  room_in(gw, room, user)
else
  gw_room_out(gw, room, user)
  room_out(room, user, 1, now_ms() + tonumber(ARG[5]))
end
return 1
`;

/** ARGV: names, gw, graceMs. A gateway undoing its own registrations (shutdown, or before re-registering). */
export const GATEWAY_RESET_LUA = `${COMMON}
redis.call('DEL', N.gatewayAlive(ARG[1]))
return reap(ARG[1], now_ms() + tonumber(ARG[2]))
`;

/** ARGV: names, graceMs. Reaps every registered gateway whose alive key has expired; returns their ids. */
export const REAP_LUA = `${COMMON}
local due = now_ms() + tonumber(ARG[1])
local dead = {}
for _, gw in ipairs(redis.call('SMEMBERS', N.gateways)) do
  if redis.call('EXISTS', N.gatewayAlive(gw)) == 0 then
    reap(gw, due)
    dead[#dead + 1] = gw
  end
end
return dead
`;

/**
 * ARGV: names, max. Announces offline for pending entries that are due and still offline (a user who came back had the
 * entry removed by announce_in). Returns how many entries it handled, to call again while it is max.
 */
export const SWEEP_LUA = `${COMMON}
local due = redis.call('ZRANGEBYSCORE', PEND, '-inf', now_ms(), 'LIMIT', 0, tonumber(ARG[1]))
for _, m in ipairs(due) do
  redis.call('ZREM', PEND, m)
  local room, user = split(m)
  if room == '' then
    if redis.call('SCARD', N.userSessions(user)) == 0 then
      redis.call('PUBLISH', CHAN, presence_event('', user, 'offline'))
    end
  else
    local k = N.roomOnline(room)
    if redis.call('HGET', k, user) == '0' then
      redis.call('HDEL', k, user)
      redis.call('PUBLISH', CHAN, presence_event(room, user, 'offline'))
    end
  end
end
return #due
`;

/** KEYS[1]: the throttle key. ARGV: intervalMs, channel, payload. Publishes at most once per interval. */
export const TYPING_LUA = `
if redis.call('SET', KEYS[1], '1', 'PX', ARGV[1], 'NX') then
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 1
end
return 0
`;

/** The presence scripts by name, for lib/redis `loadScripts`. */
export const PRESENCE_SCRIPTS = {
  sessionOpen: SESSION_OPEN_LUA,
  sessionClose: SESSION_CLOSE_LUA,
  room: ROOM_LUA,
  gatewayReset: GATEWAY_RESET_LUA,
  reap: REAP_LUA,
  sweep: SWEEP_LUA,
  typing: TYPING_LUA,
} as const;
export type PresenceScript = keyof typeof PRESENCE_SCRIPTS;
