export { LocalLimiter, gcraStep, emissionMs } from './gcra.js';
export { createSendLimiter, pushCharge } from './redis.js';
export { GCRA_LUA, LIMIT_SCRIPTS, RATE_LIMIT_LUA } from './lua.js';
export type { Charge, Rate } from './gcra.js';
export type { SendLimiter } from './redis.js';
