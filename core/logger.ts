import pino, { type Logger, type DestinationStream } from 'pino';
import { maskIdNumbers } from './ids.ts';

export type { Logger };

/**
 * The hub's JSON logger. Every line passes through maskIdNumbers before it is written, so a 公民身份号码 never
 * appears whole in a log line, whichever code logged it. Secrets are also redacted by path.
 */
export function createLogger(options: { level?: string; name?: string } = {}, destination?: DestinationStream): Logger {
  return pino(
    {
      name: options.name ?? 'hub',
      level: options.level ?? 'info',
      base: { pid: process.pid },
      redact: {
        paths: [
          'req.headers.authorization',
          'req.headers.cookie',
          '*.client_assertion',
          '*.privateKey',
          '*.private_jwk',
          '*.jwk.d',
          '*.password',
          '*.secret',
        ],
        censor: '[redacted]',
      },
      hooks: { streamWrite: (s: string) => maskIdNumbers(s) },
    },
    destination ?? pino.destination({ dest: 2, sync: false }),
  );
}

/**
 * A child logger made on first use: each request gets one with its request id, and most requests never log, so
 * the child's bindings are serialised (and redacted) only for those that do.
 */
export function lazyChild(logger: Logger, bindings: Record<string, unknown>): Logger {
  let child: Logger | undefined;
  const made = () => (child ??= logger.child(bindings));
  return new Proxy(logger, {
    get(_target, key) {
      const value: unknown = Reflect.get(made(), key, child);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(child) : value;
    },
    set: (_target, key, value) => Reflect.set(made(), key, value, child),
  });
}
