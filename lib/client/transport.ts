// The socket the SDK speaks through: the WHATWG WebSocket shape (browsers, Node 22, `ws` in Node 20), so one state
// machine runs everywhere and unit tests hand in a fake. Nothing here imports a Node module.
import { SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX } from '../protocol/codes.js';
import type { ClientFrame } from '../protocol/frames.js';
import type { ServerFrame } from '../protocol/server-types.js';

/** What the SDK uses of a WebSocket. Browsers' WebSocket and `ws`'s WebSocket both have it. */
export interface SocketLike {
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => SocketLike;

/**
 * Opens a socket that authenticates with `Sec-WebSocket-Protocol: parley.v1, token.<jwt>`: the one way that works
 * in browsers (they cannot set Authorization) and keeps the token out of URLs and access logs.
 */
export function openSocket(WS: WebSocketConstructor, url: string, token: string): SocketLike {
  return new WS(url, [SUBPROTOCOL, `${TOKEN_SUBPROTOCOL_PREFIX}${token}`]);
}

export function encodeFrame(f: ClientFrame): string {
  return JSON.stringify(f);
}

/** One server frame, or undefined for anything that is not a JSON object with a string `type`. */
export function decodeServerFrame(data: unknown): ServerFrame | undefined {
  if (typeof data !== 'string') return undefined;
  let v: unknown;
  try {
    v = JSON.parse(data);
  } catch {
    return undefined;
  }
  return typeof v === 'object' && v !== null && typeof (v as { type?: unknown }).type === 'string' ? v as ServerFrame : undefined;
}
