/**
 * Structured logs (pino, JSON on stderr). Field names are stable so that tests
 * and log pipelines can match on them: `ns`, `key`, `chainId`, `layer`, `image`.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export interface LogOptions {
  level?: string;
  /** Written to instead of stderr; tests pass a stream to assert on fields. */
  destination?: NodeJS.WritableStream;
}

export function createLogger(component: string, options: LogOptions = {}): Logger {
  const level = options.level ?? process.env.INTEGRITY_LOG_LEVEL ?? 'info';
  const destination = options.destination ?? pino.destination({ fd: 2, sync: true });
  return pino({ level, base: { component }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}

/** A logger that drops everything: the default for library calls that were given none. */
export const silentLogger: Logger = pino({ level: 'silent' });
