// parley/client: the Parley client SDK for browsers and Node (ESM; no Node module is imported from here).
// In Node 20, which has no global WebSocket, import `parley/client` (it resolves to node.ts there) or pass `ws`.
import { ParleyClient } from './client.js';
import type { ClientOptions } from './client.js';

/** Connects (and keeps reconnecting) to a Parley gateway. */
export function connect(options: ClientOptions): ParleyClient {
  return new ParleyClient(options);
}

export { ParleyClient, newId } from './client.js';
export { ParleyError } from './errors.js';
export { closePolicy, reconnectDelay } from './reconnect.js';
export { decodeServerFrame, encodeFrame, openSocket } from './transport.js';
export { CLOSE_CODES, ERROR_CODES, SUBPROTOCOL } from '../protocol/codes.js';

export type {
  ClientEvents, ClientOptions, ConnectionState, DisconnectEvent, HistoryOptions, JoinOptions, ResetEvent, SendOptions, SendResult, TokenRequest,
} from './client.js';
export type { ClientErrorCode } from './errors.js';
export type { BackoffOptions, ClosePolicy } from './reconnect.js';
export type { SocketLike, WebSocketConstructor } from './transport.js';
export type { Unsubscribe } from './emitter.js';
export type { ErrorCode } from '../protocol/codes.js';
export type { RoomId } from '../protocol/frames.js';
export type {
  ServerFrame, WelcomeFrame, JoinedFrame, LeftFrame, MessageFrame, AckFrame, PresenceFrame, TypingEventFrame, HistoryPageFrame,
  RefreshedFrame, ErrorFrame,
} from '../protocol/server-types.js';
