// pino is the only logger; components take a child of the root logger, never create their own.
import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';
import { activeTraceIds } from './tracing.js';

export type Logger = PinoLogger;

export interface LoggerOptions {
  level: string;
  /** Service name bound once on the root logger (`parley all` runs several under one). */
  name: string;
  /** Log to stderr: for commands whose stdout is their answer (`parley dlq` prints JSON). */
  stderr?: boolean;
}

export function createLogger(opts: LoggerOptions, destination?: DestinationStream): Logger {
  const options = {
    name: opts.name,
    level: opts.level,
    base: { pid: process.pid },
    // Never let a token reach the logs, whatever a call site passes in.
    redact: { paths: ['token', '*.token', 'authorization', '*.authorization'], censor: '[redacted]' },
    // `trace_id` and `span_id` of the span active when the line is written (none without tracing: one lookup).
    mixin: activeTraceIds,
  };
  return pino(options, destination ?? (opts.stderr ? pino.destination(2) : undefined));
}
