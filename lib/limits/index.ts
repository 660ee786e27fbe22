export { LocalLimiter, gcraStep, emissionMs } from './gcra.js';
export { createSendLimiter, defineRateLimitCommand, pushCharge, rateKey } from './redis.js';
export { GCRA_LUA, RATE_LIMIT_LUA } from './lua.js';
export type { Charge, Rate } from './gcra.js';
export type { SendLimiter } from './redis.js';
