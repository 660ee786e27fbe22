// The one Redis layer: connections (node-redis), every key and channel name, scripts. Nothing else imports a client.
export { connectRedis, connectSubscriber, reconnectDelay } from './connection.js';
export { LIMITS_TAG, PRESENCE_TAG, SCRIPT_FIXED, SCRIPT_NAMES_LUA, SCRIPT_NAME_COUNT, SCRIPT_TEMPLATES, redisKeys } from './keys.js';
export { formatRedisTarget, parseRedisTarget } from './target.js';
export { loadScripts } from './scripts.js';
export type { RedisClient, RedisConnection, RedisConnectOptions, RedisProfile, RedisSubscriber } from './connection.js';
export type { RedisKeys } from './keys.js';
export type { RedisTarget } from './target.js';
export type { ScriptArg, ScriptBatch, Scripts } from './scripts.js';
