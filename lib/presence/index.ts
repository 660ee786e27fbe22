export { startGatewayPresence } from './gateway.js';
export { startPresenceService } from './service.js';
export { PRESENCE_SCRIPTS } from './lua.js';
export { Throttle } from './throttle.js';
export { offlineAmong } from './offline.js';
export type { GatewayPresence, SessionInfo } from './gateway.js';
export type { PresenceService } from './service.js';
export type { PresenceScript } from './lua.js';
