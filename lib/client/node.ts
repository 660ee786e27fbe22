// parley/client in Node: the same SDK with `ws` as its WebSocket (Node 20 has no global one).
import WebSocket from 'ws';
import { ParleyClient } from './client.js';
import type { ClientOptions } from './client.js';
import type { WebSocketConstructor } from './transport.js';

/** `ws`, typed as the SDK's socket (its event objects carry more than the SDK reads). */
export const NodeWebSocket = WebSocket as unknown as WebSocketConstructor;

/** Connects (and keeps reconnecting) to a Parley gateway, over `ws` unless options.WebSocket says otherwise. */
export function connect(options: ClientOptions): ParleyClient {
  return new ParleyClient({ ...options, WebSocket: options.WebSocket ?? NodeWebSocket });
}

export { ParleyClient, newId, ParleyError, closePolicy, reconnectDelay, decodeServerFrame, encodeFrame, openSocket } from './index.js';
export { CLOSE_CODES, ERROR_CODES, SUBPROTOCOL } from './index.js';
export type * from './index.js';
