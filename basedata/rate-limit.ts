import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { HubError } from '../core/errors.ts';

/** Per-client limits on reads of personal and company data: points are subjects read, per second. */
export interface ReadLimiter {
  /** Resolves when the client may read `points` subjects now; throws RATE_LIMITED with `retryAfter` (seconds) if not. */
  consume(clientId: string, points: number): Promise<void>;
}

/**
 * A token budget per client per second, shared by every hub process through Redis when it is configured (so N
 * gateways enforce one limit), kept in this process otherwise.
 */
export function createReadLimiter(options: { pointsPerSecond: number; redis?: Redis | undefined }): ReadLimiter {
  const common = { points: options.pointsPerSecond, duration: 1, keyPrefix: 'hub:rl:read' };
  const limiter: RateLimiterAbstract = options.redis ? new RateLimiterRedis({ ...common, storeClient: options.redis }) : new RateLimiterMemory(common);
  return {
    async consume(clientId, points) {
      try {
        await limiter.consume(clientId, points);
      } catch (error) {
        if (error instanceof RateLimiterRes) {
          const retryAfter = Math.max(1, Math.ceil(error.msBeforeNext / 1000));
          throw new HubError('RATE_LIMITED', `too many reads: at most ${options.pointsPerSecond} subjects a second for this client`, { retryAfter });
        }
        throw error; // Redis unavailable: refuse rather than read unlimited
      }
    },
  };
}
