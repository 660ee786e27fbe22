export { startGateway } from './app.js';
export { loadNativeUws, isNative, NativeUwsError } from './uws.js';
export { credentialsFrom } from './auth.js';
export { RoomFeed } from './rooms.js';
export type { Gateway, GatewayDeps } from './deps.js';
