import { blockFieldSuggestionsPlugin } from '@escape.tech/graphql-armor-block-field-suggestions';
import { costLimitPlugin } from '@escape.tech/graphql-armor-cost-limit';
import { maxAliasesPlugin } from '@escape.tech/graphql-armor-max-aliases';
import { maxDepthPlugin } from '@escape.tech/graphql-armor-max-depth';
import { maxTokensPlugin } from '@escape.tech/graphql-armor-max-tokens';
import { getOperationAST, GraphQLError, GraphQLScalarType, Kind, printSchema, type DocumentNode, type ExecutionResult, type FieldNode, type FragmentDefinitionNode, type SelectionSetNode, type ValueNode } from 'graphql';
import { compileQuery, isCompiledQuery, type CompiledQuery } from 'graphql-jit';
import { createSchema, createYoga, type Plugin, type YogaServerInstance } from 'graphql-yoga';
import * as auditGraphql from '../audit/graphql.ts';
import type { AuditPorts } from '../audit/graphql.ts';
import * as authGraphql from '../auth/graphql.ts';
import * as basedataGraphql from '../basedata/graphql.ts';
import type { ReadLimiter } from '../basedata/rate-limit.ts';
import type { AuthPorts } from '../auth/graphql.ts';
import * as connectorsGraphql from '../connectors/graphql.ts';
import type { ConnectorPorts } from '../connectors/graphql.ts';
import * as directoryGraphql from '../directory/graphql.ts';
import * as licenceGraphql from '../licence/graphql.ts';
import * as resolutionGraphql from '../resolution/graphql.ts';
import { licenceStore } from '../resolution/licence-source.ts';
import type { LicenceSource } from '../resolution/resolve.ts';
import type { LicenceRuntime } from '../licence/runtime.ts';
import type { DirectoryPorts } from '../directory/graphql.ts';
import type { HubContext, Principal } from '../core/context.ts';
import type { Logger } from '../core/logger.ts';
import type { Db } from '../db/index.ts';
import type { HubMetrics } from './metrics.ts';

/** What the node:http layer hands yoga for each request, after it authenticated the caller. */
export interface ServerContext {
  principal: Principal;
  requestId: string;
  log: Logger;
}

const baseTypeDefs = /* GraphQL */ `
  "Arbitrary JSON (照面信息, evidence, extension data)"
  scalar JSON

  type Query {
    "The hub's version and the time on its clock"
    hub: HubInfo!
  }

  type HubInfo {
    version: String!
    time: String!
  }
`;

function parseLiteral(ast: ValueNode): unknown {
  switch (ast.kind) {
    case Kind.STRING:
    case Kind.BOOLEAN:
      return ast.value;
    case Kind.INT:
    case Kind.FLOAT:
      return Number(ast.value);
    case Kind.OBJECT:
      return Object.fromEntries(ast.fields.map((f) => [f.name.value, parseLiteral(f.value)]));
    case Kind.LIST:
      return ast.values.map(parseLiteral);
    case Kind.NULL:
      return null;
    default:
      throw new GraphQLError('variables are not allowed inside a JSON literal');
  }
}

const JSONScalar = new GraphQLScalarType({
  name: 'JSON',
  serialize: (v) => v,
  parseValue: (v) => v,
  parseLiteral,
});

const rooms = [authGraphql, directoryGraphql, connectorsGraphql, auditGraphql, basedataGraphql, licenceGraphql, resolutionGraphql];

export function buildSchema() {
  return createSchema<HubContext>({
    typeDefs: [baseTypeDefs, ...rooms.map((r) => r.typeDefs)],
    resolvers: [
      {
        JSON: JSONScalar,
        Query: { hub: () => ({ version: process.env.npm_package_version ?? '0.1.0', time: new Date().toISOString() }) },
      },
      ...rooms.map((r) => r.resolvers),
    ],
  });
}

/** The SDL as committed in gateway/schema.graphql (a test keeps the two equal). */
export function printHubSchema(): string {
  return `${printSchema(buildSchema())}\n`;
}

/**
 * HubError is a GraphQLError and passes as it is; anything else (a driver error, a bug) is logged and reaches the
 * caller as INTERNAL_SERVER_ERROR with a generic message: never a stack, a SQL text or a secret.
 */
export function maskError(error: unknown, message: string, logger: Logger): GraphQLError {
  const original = (error as GraphQLError).originalError;
  if (error instanceof GraphQLError && (!original || original instanceof GraphQLError)) return error;
  logger.error({ err: original ?? error }, 'unexpected error in a resolver');
  return new GraphQLError(message, { extensions: { code: 'INTERNAL_SERVER_ERROR' } });
}

/**
 * What every answer passes through before it is written, on yoga's path (an onResultProcess hook) and the direct one
 * (gateway/direct.ts): request errors from parsing and validation (syntax, unknown fields, depth, alias and cost
 * limits) and variable coercion get a code like every other error (execution errors never arrive without one:
 * maskError gives them theirs), and every error is counted by code.
 */
export function finishResult<R extends { errors?: readonly GraphQLError[] }>(result: R, metrics: HubMetrics): R {
  if (!result.errors) return result;
  let out = result;
  if (!result.errors.every((e) => e.extensions?.code)) {
    out = {
      ...result,
      errors: result.errors.map((e) =>
        e.extensions?.code ? e : new GraphQLError(e.message, { nodes: e.nodes, extensions: { ...e.extensions, code: 'GRAPHQL_VALIDATION_FAILED' } }),
      ),
    };
  }
  for (const e of out.errors!) metrics.graphqlErrors.inc({ code: String(e.extensions?.code ?? 'INTERNAL_SERVER_ERROR') });
  return out;
}

function useFinishResult(metrics: HubMetrics): Plugin {
  return {
    onResultProcess({ result, setResult }) {
      if (!result || Array.isArray(result) || Symbol.asyncIterator in (result as object)) return;
      const r = result as { errors?: readonly GraphQLError[] };
      const finished = finishResult(r, metrics);
      if (finished !== r) setResult(finished as never);
    },
  };
}

/** The execution of a document (and operation) on which it is compiled. */
const COMPILE_AFTER = 3;

/**
 * Documents that keep coming back (an approval system sends the same few queries all day) are compiled to JavaScript
 * by graphql-jit and run that way: a batch of 100 persons spent 12% of the hub's time in graphql-js's interpreter.
 * A document is compiled on its third execution, not its first, so one-off queries run interpreted and a client
 * cannot make the hub compile for every request by varying its queries; one graphql-jit cannot compile keeps
 * running interpreted. Documents are the parser cache's, so their counts and compiled forms go when it drops them.
 */
function useCompiledExecution(logger: Logger, metrics: HubMetrics): Plugin {
  /** per document and operation name: the executions so far, then the compiled form (null: interpreted for good) */
  const byDocument = new WeakMap<DocumentNode, Map<string, number | CompiledQuery | null>>();
  return {
    onExecute({ args, setExecuteFn }) {
      let operations = byDocument.get(args.document);
      if (!operations) byDocument.set(args.document, (operations = new Map()));
      const name = args.operationName ?? '';
      const stored = operations.get(name);
      let entry = stored === undefined ? 0 : stored;
      if (typeof entry === 'number') {
        if (entry + 1 < COMPILE_AFTER) {
          operations.set(name, entry + 1);
          return;
        }
        const compiled = compileQuery(args.schema, args.document, args.operationName ?? undefined);
        entry = isCompiledQuery(compiled) ? compiled : null;
        metrics.graphqlCompiled.inc({ outcome: entry ? 'compiled' : 'interpreted' });
        if (!entry) logger.warn({ errors: (compiled as { errors?: readonly { message: string }[] }).errors?.map((e) => e.message) }, 'graphql-jit could not compile a query: it runs interpreted');
        operations.set(name, entry);
      }
      if (entry) {
        const query = entry;
        setExecuteFn(async (a) => located(a.document, a.operationName, await query.query(a.rootValue, a.contextValue, a.variableValues as Record<string, unknown> | undefined)));
      }
    },
  };
}

/**
 * graphql-jit's errors carry their path and locations but not the AST nodes graphql-js gives them, and yoga's error
 * handling makes errors again from their nodes (the locations went missing from answers): each is made again from
 * the fields its path leads to, as graphql-js makes it (message, nodes, path, original error, extensions).
 */
function located(document: DocumentNode, operationName: string | null | undefined, result: ExecutionResult): ExecutionResult {
  if (!result.errors?.length || result.errors.every((e) => e.nodes || !e.path)) return result;
  const operation = getOperationAST(document, operationName);
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
  const errors = result.errors.map((e) => {
    if (e.nodes || !e.path || !operation) return e;
    let sets: readonly SelectionSetNode[] = [operation.selectionSet];
    let nodes: FieldNode[] = [];
    for (const key of e.path) {
      if (typeof key === 'number') continue;
      nodes = [];
      for (const set of sets) fieldsAt(set, key, fragments, nodes);
      sets = nodes.flatMap((n) => (n.selectionSet ? [n.selectionSet] : []));
    }
    return new GraphQLError(e.message, { nodes: nodes.length ? nodes : undefined, path: e.path, originalError: e.originalError ?? undefined, extensions: e.extensions });
  });
  return { ...result, errors };
}

/** The fields of a selection set answering under `key` (their alias, or their name), through fragments. */
function fieldsAt(set: SelectionSetNode, key: string, fragments: Map<string, FragmentDefinitionNode>, out: FieldNode[]): void {
  for (const s of set.selections) {
    if (s.kind === Kind.FIELD) {
      if ((s.alias ?? s.name).value === key) out.push(s);
    } else if (s.kind === Kind.INLINE_FRAGMENT) fieldsAt(s.selectionSet, key, fragments, out);
    else {
      const fragment = fragments.get(s.name.value);
      if (fragment) fieldsAt(fragment.selectionSet, key, fragments, out);
    }
  }
}

/** Every audited answer carries `extensions.auditIds`, so a case file can cite the hub's record of the read. */
function useAuditIds(): Plugin {
  return {
    onExecute({ args }) {
      return {
        onExecuteDone({ result, setResult }) {
          const ids = (args.contextValue as { auditIds?: string[] }).auditIds;
          if (!ids?.length || !result || Symbol.asyncIterator in (result as object)) return;
          // the result is this request's own: extended in place (a spread copy costs more than the whole rest here)
          const r = result as { extensions?: Record<string, unknown> };
          r.extensions = r.extensions ? Object.assign({}, r.extensions, { auditIds: ids }) : { auditIds: ids };
          setResult(r as never);
        },
      };
    },
  };
}

/** Latency by operation name, into the app's own registry (errors are counted by finishResult). */
function useMetrics(metrics: HubMetrics): Plugin {
  return {
    onExecute({ args }) {
      const started = process.hrtime.bigint();
      const operation = args.operationName ?? getOperationAST(args.document)?.name?.value ?? 'anonymous';
      return {
        onExecuteDone() {
          metrics.graphqlDuration.observe({ operation }, Number(process.hrtime.bigint() - started) / 1e9);
        },
      };
    },
  };
}

/** Everything resolvers of every room receive. */
export type GatewayContext = HubContext & DirectoryPorts & ConnectorPorts & AuditPorts & AuthPorts & { auditIds: string[]; limiter: ReadLimiter; licence: LicenceRuntime; licenceSource: LicenceSource; materialsCounter: HubMetrics['materialOutcomes'] };

export function buildYoga(
  options: { db: Db; logger: Logger; metrics: HubMetrics; graphiql?: boolean; limiter: ReadLimiter; licence: LicenceRuntime } & DirectoryPorts & ConnectorPorts & AuditPorts & AuthPorts,
): YogaServerInstance<ServerContext, GatewayContext> {
  const licenceSource = licenceStore(options.licence.pki);
  return createYoga<ServerContext, GatewayContext>({
    schema: buildSchema() as never,
    graphqlEndpoint: '/graphql',
    landingPage: false,
    // the node:http layer reads the body itself and refuses one over its limit (413), before yoga sees it
    maxRequestBodySize: false,
    graphiql: options.graphiql ?? false,
    logging: false,
    // HubError is a GraphQLError and passes unmasked; anything else becomes INTERNAL_SERVER_ERROR without detail.
    maskedErrors: { maskError: (error, message) => maskError(error, message, options.logger) },
    context: ({ principal, requestId, log }) => ({ principal, requestId, log, db: options.db, grants: options.grants, masterKey: options.masterKey, egress: options.egress, oidcIssuer: options.oidcIssuer, jobs: options.jobs, audit: options.audit, keys: options.keys, issuer: options.issuer, auditIds: [], limiter: options.limiter, licence: options.licence, licenceSource, materialsCounter: options.metrics.materialOutcomes }),
    plugins: [
      maxTokensPlugin({ n: 2000 }),
      // 15 admits the standard introspection query (GraphiQL's) and nothing much deeper.
      maxDepthPlugin({ n: 15, ignoreIntrospection: false, flattenFragments: true }),
      maxAliasesPlugin({ n: 20 }),
      costLimitPlugin({ maxCost: 5000 }),
      blockFieldSuggestionsPlugin(),
      useCompiledExecution(options.logger, options.metrics),
      useFinishResult(options.metrics),
      useAuditIds(),
      useMetrics(options.metrics),
    ],
  });
}
