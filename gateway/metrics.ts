import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** One registry per app, so tests can build several apps in one process. */
export interface HubMetrics {
  registry: Registry;
  httpRequests: Counter<'method' | 'route' | 'status'>;
  httpDuration: Histogram<'route'>;
  graphqlDuration: Histogram<'operation'>;
  graphqlErrors: Counter<'code'>;
  /** GraphQL requests by what answered them: `direct` (gateway/direct.ts) or `yoga` (everything else) */
  graphqlRequests: Counter<'handler'>;
  /** GraphQL documents compiled by graphql-jit once they kept coming back, by outcome: `compiled` or `interpreted` (it could not) */
  graphqlCompiled: Counter<'outcome'>;
  /**
   * 减证便民: required materials resolved, by item and how each was settled: PROVIDED_BY_LICENCE, PROVIDED_BY_DATA,
   * COMMITMENT (告知承诺) no longer submitted; DEFERRED (容缺) and MUST_SUBMIT still brought.
   */
  materialOutcomes: Counter<'item' | 'outcome'>;
}

export function createMetrics(options: { defaultMetrics?: boolean } = {}): HubMetrics {
  const registry = new Registry();
  if (options.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: 'hub_' });
  const buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
  return {
    registry,
    httpRequests: new Counter({
      name: 'hub_http_requests_total',
      help: 'HTTP requests by method, route and status',
      labelNames: ['method', 'route', 'status'],
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'hub_http_request_duration_seconds',
      help: 'HTTP request latency by route',
      labelNames: ['route'],
      buckets,
      registers: [registry],
    }),
    graphqlDuration: new Histogram({
      name: 'hub_graphql_operation_duration_seconds',
      help: 'GraphQL execution latency by operation name',
      labelNames: ['operation'],
      buckets,
      registers: [registry],
    }),
    graphqlErrors: new Counter({
      name: 'hub_graphql_errors_total',
      help: 'GraphQL errors by extensions.code',
      labelNames: ['code'],
      registers: [registry],
    }),
    graphqlRequests: new Counter({
      name: 'hub_graphql_requests_total',
      help: 'Authenticated GraphQL requests by handler: direct (a JSON POST answered without the fetch adapter) or yoga',
      labelNames: ['handler'],
      registers: [registry],
    }),
    graphqlCompiled: new Counter({
      name: 'hub_graphql_documents_compiled_total',
      help: 'GraphQL documents (and operations) run often enough to be compiled, by outcome: compiled, or interpreted when graphql-jit could not',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    materialOutcomes: new Counter({
      name: 'hub_materials_total',
      help: 'Required materials of resolved applications (免提交), by item and outcome',
      labelNames: ['item', 'outcome'],
      registers: [registry],
    }),
  };
}

const KNOWN_ROUTES = new Set([
  '/graphql',
  '/oauth/token',
  '/.well-known/oauth-authorization-server',
  '/.well-known/jwks.json',
  '/healthz',
  '/readyz',
  '/metrics',
  '/audit/checkpoints',
  '/audit/export',
]);

/** A bounded route label: unknown paths collapse so a scanner cannot blow up the label set. */
export function routeLabel(pathname: string): string {
  return KNOWN_ROUTES.has(pathname) ? pathname : 'other';
}
