// Loads uWebSockets.js and refuses the slow JavaScript fallback it silently switches to when the native binary
// does not load: Parley's performance claims are about the native server.
import { createRequire } from 'node:module';
import type * as UWS from 'uWebSockets.js';

export class NativeUwsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NativeUwsError';
  }
}

export function loadNativeUws(): typeof UWS {
  const require = createRequire(import.meta.url);
  const uws = require('uWebSockets.js') as typeof UWS;
  if (!isNative(uws)) {
    throw new NativeUwsError(
      `uWebSockets.js loaded its JavaScript fallback, not the native binary for node ABI ${process.versions.modules} ` +
        `on ${process.platform}-${process.arch} (UWS_USE_FALLBACK=${process.env.UWS_USE_FALLBACK ?? ''}). ` +
        'Use Node.js 20 on linux/darwin x64 or arm64, and unset UWS_USE_FALLBACK.',
    );
  }
  return uws;
}

export function isNative(uws: { App: unknown }): boolean {
  return typeof uws.App === 'function' && Function.prototype.toString.call(uws.App).includes('[native code]');
}
