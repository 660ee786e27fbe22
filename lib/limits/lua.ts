// The GCRA of gcra.ts in Lua, so that a limit is checked and charged in one atomic step on Redis, on the server's
// clock (TIME): gateways on different hosts share one budget and one notion of time.

/**
 * `gcra_charge(now, KEYS, ARGV, from)` reads groups of five ARGV from index `from`: KEYS index, hash field, emission
 * interval (ms per unit), burst (units), cost. All pass or none is charged; returns 0, or the wait in ms (rounded up).
 * A key holds one hash field per limit (messages, bytes) and expires when its state would be "empty" again.
 */
export const GCRA_LUA = `
local function gcra_charge(now, keys, argv, from)
  local wait = 0
  local upd = {}
  for i = from, #argv, 5 do
    local key = keys[tonumber(argv[i])]
    local t = tonumber(argv[i + 2])
    local tat = tonumber(redis.call('HGET', key, argv[i + 1]))
    if tat == nil or tat < now then tat = now end
    local nxt = tat + t * tonumber(argv[i + 4])
    local w = nxt - t * tonumber(argv[i + 3]) - now
    if w > wait then wait = w end
    upd[#upd + 1] = { key, argv[i + 1], nxt }
  end
  if wait > 0 then return math.ceil(wait) end
  local ttl = {}
  for _, u in ipairs(upd) do
    redis.call('HSET', u[1], u[2], string.format('%.3f', u[3]))
    local left = math.ceil(u[3] - now) + 1
    if left > (ttl[u[1]] or 0) then ttl[u[1]] = left end
  end
  for key, left in pairs(ttl) do redis.call('PEXPIRE', key, left) end
  return 0
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
`;

/**
 * Connection admission (admission.ts), for the script that registers the session: `admit_connection(us, is, KEYS,
 * argv, from)` with the user's and the address's session sets, reading from `from`: maxPerUser, maxPerIp, force ('1'
 * admits without a check), then GCRA groups for the connect-rate keys KEYS[1] (user) and KEYS[2] (ip). Returns
 * 1, 0 admitted; 0, 0 too many for the user; -1, 0 too many for the address; -2, wait too many attempts.
 */
export const ADMIT_CONNECTION_LUA = `
local function admit_connection(us, is, keys, argv, from)
  if argv[from + 2] == '1' then return 1, 0 end
  local wait = gcra_charge(now_ms(), keys, argv, from + 3)
  if wait > 0 then return -2, wait end
  local maxu, maxi = tonumber(argv[from]), tonumber(argv[from + 1])
  if maxu > 0 and redis.call('SCARD', us) >= maxu then return 0, 0 end
  if maxi > 0 and redis.call('SCARD', is) >= maxi then return -1, 0 end
  return 1, 0
end
`;

/** KEYS: the limit keys; ARGV: groups of (key index, field, emission ms, burst, cost). Returns 0 or the wait in ms. */
export const RATE_LIMIT_LUA = `${GCRA_LUA}
return gcra_charge(now_ms(), KEYS, ARGV, 1)
`;

/** The limit scripts by name, for lib/redis `loadScripts`. */
export const LIMIT_SCRIPTS = { rateLimit: RATE_LIMIT_LUA } as const;
