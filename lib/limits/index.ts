export { LocalLimiter, gcraStep, emissionMs } from './gcra.js';
export { createSendLimiter, pushCharge } from './redis.js';
export { createConnectionAdmission } from './admission.js';
export { ADMIT_CONNECTION_LUA, GCRA_LUA, LIMIT_SCRIPTS, RATE_LIMIT_LUA } from './lua.js';
export type { AdmissionConfig, ConnectionAdmission } from './admission.js';
export type { Charge, Rate } from './gcra.js';
export type { SendLimiter } from './redis.js';
