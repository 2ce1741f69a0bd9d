import type { IncomingMessage, ServerResponse } from 'node:http';
import { getOperationAST, type DocumentNode, type ExecutionResult } from 'graphql';
import { processRegularResult } from 'graphql-yoga';

/**
 * GraphQL over HTTP for the common request, without yoga's fetch-API adapter.
 *
 * An approval system POSTs `{ query, variables }` as JSON and reads JSON back. For that request yoga's node adapter
 * builds a fetch Request (URL, Headers, body), runs it through its hook chain, builds a Response and copies it back
 * onto the node response, chunked, in two writes: on this machine about four fifths of a bare yoga `{ hello }`.
 * Here the same request goes through yoga's own engine (its envelop: parser and validation caches, armor limits,
 * masked errors, the hub's plugins) and its own result processor (status code and body per GraphQL over HTTP), and
 * is answered in one write with a Content-Length.
 *
 * Only a request whose answer cannot differ from yoga's takes this path: POST, a JSON content type, no Origin (CORS
 * stays yoga's), a body that is one plain params object, an Accept that yoga answers with a JSON media type, a query
 * that parses and validates to one query or mutation. Everything else, refusals included, is handed to yoga before
 * anything has run, and yoga answers it as it always did (the body already read is given to it).
 */

/** The params of a GraphQL POST, as yoga's checkGraphQLQueryParams admits them. */
export interface DirectParams {
  query: string;
  variables?: Record<string, unknown> | null;
  operationName?: string | null;
  extensions?: Record<string, unknown> | null;
}

const PARAMS = new Set(['query', 'variables', 'operationName', 'extensions']);

const isPlainObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** The body as params this path may answer, or null: anything yoga would refuse or treat otherwise (a batch) is yoga's. */
export function directParams(body: unknown): DirectParams | null {
  if (!isPlainObject(body)) return null;
  for (const key in body) if (body[key] != null && !PARAMS.has(key)) return null;
  const { query, variables, operationName, extensions } = body;
  if (typeof query !== 'string') return null;
  if (variables != null && !isPlainObject(variables)) return null;
  if (extensions != null && !isPlainObject(extensions)) return null;
  if (operationName != null && typeof operationName !== 'string') return null;
  return body as unknown as DirectParams;
}

/** Yoga's test of a request's JSON content type (the first of a list, with or without parameters). */
export function isJsonContentType(header: string | undefined): boolean {
  const type = header?.split(',')[0];
  if (!type) return false;
  return type === 'application/json' || type.startsWith('application/json;') || type === 'application/graphql+json' || type.startsWith('application/graphql+json;');
}

const REGULAR = ['application/graphql-response+json', 'application/json'] as const;

/**
 * The media type yoga's result processors answer a single (not streamed) result in, for this Accept header, when it
 * is one of the two JSON types; null when yoga would choose another processor or none (406). Yoga walks the
 * processors (event stream, multipart, then JSON) and the accepted types last-first, and the last match wins, so a
 * JSON match wins whenever there is one; the same walk here.
 */
export function regularMediaType(accept: string | undefined): string | null {
  // a client sends the same Accept on every request: the last answer is kept
  if (accept === lastAccept.header) return lastAccept.chosen;
  const chosen = chooseRegular(accept);
  lastAccept = { header: accept, chosen };
  return chosen;
}

let lastAccept: { header: string | undefined; chosen: string | null } = { header: undefined, chosen: chooseRegular(undefined) };

function chooseRegular(accept: string | undefined): string | null {
  const accepts = (accept || '*/*').replace(/\s/g, '').toLowerCase().split(',');
  let chosen: string | null = null;
  for (let i = accepts.length - 1; i >= 0; i--) {
    const [mediaType, ...params] = accepts[i]!.split(';');
    const charset = params.find((p) => p.includes('charset=')) ?? 'charset=utf-8';
    if (charset !== 'charset=utf-8' || mediaType === undefined) continue;
    const [pre, suf] = mediaType.split('/');
    for (const offered of REGULAR) {
      const [oPre, oSuf] = offered.split('/');
      if ((pre === '*' || pre === oPre) && (suf === '*' || suf === oSuf)) chosen = offered;
    }
  }
  return chosen;
}

/** The fetch Headers reading yoga's engine does, over the node request's headers (no closure per request). */
class NodeHeaders {
  constructor(private readonly req: IncomingMessage) {}

  get(name: string): string | null {
    const v = this.req.headers[name.toLowerCase()];
    return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
  }
}

/** What the direct path needs of a yoga instance: its engine. */
export interface YogaEngine {
  getEnveloped(initialContext: Record<string, unknown>): {
    parse(source: string): DocumentNode;
    validate(schema: unknown, document: DocumentNode): readonly unknown[];
    contextFactory(): unknown;
    execute(args: { schema: unknown; document: DocumentNode; contextValue: unknown; variableValues?: Record<string, unknown> | null; operationName?: string | null }): unknown;
    schema: unknown;
  };
}

/** A Response stand-in for processRegularResult: the body text and the status and headers it chose. */
class Captured {
  constructor(
    readonly body: string | null,
    readonly init: { status: number; headers: Record<string, string> },
  ) {}
}
const CAPTURE = { Response: Captured } as unknown as Parameters<typeof processRegularResult>[1];

export interface DirectOptions {
  yoga: YogaEngine;
  /** the hub's result finish (error codes, error metrics), which yoga runs as an onResultProcess hook */
  finish(result: ExecutionResult): ExecutionResult;
  /** the error a throw outside the resolvers becomes (what yoga's masked errors make of it) */
  maskError(error: unknown): Error;
}

/** A throw outside the resolvers as yoga's handleError makes it a result: each error of an aggregate masked. */
function thrown(options: DirectOptions, error: unknown): ExecutionResult {
  const errors = error !== null && typeof error === 'object' && 'errors' in error && Array.isArray(error.errors) ? (error.errors as unknown[]) : [error];
  return { errors: errors.map((e) => options.maskError(e) as never) };
}

/** The result finished as the hub finishes every result, then status, headers and body as yoga's processor makes them. */
function answerOf(options: DirectOptions, result: ExecutionResult, mediaType: string): Captured {
  return processRegularResult(options.finish(result), CAPTURE, mediaType) as unknown as Captured;
}

/**
 * Prepares the direct answer of a request: null when the request is yoga's (nothing has run then), else a function
 * that executes it and writes the answer.
 */
export function directRequest(
  options: DirectOptions,
  req: IncomingMessage,
  body: unknown,
  /** the context yoga would have been given (made by an object literal), which becomes the context of the request */
  serverContext: Record<string, unknown>,
): ((res: ServerResponse) => Promise<void>) | null {
  // the bare path only: yoga's engine never reads the URL, but its adapter does (a query string ending in /health is
  // its health check)
  if (req.method !== 'POST' || req.url !== '/graphql' || req.headers.origin !== undefined || !isJsonContentType(req.headers['content-type'])) return null;
  const params = directParams(body);
  if (!params) return null;
  const mediaType = regularMediaType(req.headers.accept);
  if (!mediaType) return null;
  // what yoga's engine reads of the fetch Request it would have had: the method (a parse error is marked as yoga marks
  // it, and a mutation is allowed, as for any POST) and the headers
  const request = { method: 'POST', url: req.url, headers: new NodeHeaders(req) };
  // the context object is extended with the hub's context by envelop (Object.assign): an object made by a spread
  // takes about 10 µs for that in V8, one made by a literal (the caller's) well under one, so it is extended in place
  serverContext.request = request;
  serverContext.params = params;
  const enveloped = options.yoga.getEnveloped(serverContext);
  let document: DocumentNode;
  try {
    document = enveloped.parse(params.query);
    if (enveloped.validate(enveloped.schema, document).length > 0) return null;
  } catch {
    return null; // yoga answers the syntax error, the invalid query or the armor limit in its own words
  }
  const operation = getOperationAST(document, params.operationName ?? undefined);
  if (!operation || operation.operation === 'subscription') return null;
  return async (res) => {
    let result: ExecutionResult;
    try {
      const contextValue = await enveloped.contextFactory();
      result = (await enveloped.execute({ schema: enveloped.schema, document, contextValue, variableValues: params.variables, operationName: params.operationName })) as ExecutionResult;
    } catch (error) {
      result = thrown(options, error);
    }
    let answer: Captured;
    try {
      answer = answerOf(options, result, mediaType);
    } catch (error) {
      // as yoga does when its result processing throws (a value JSON cannot write): the error masked, answered as a result
      answer = answerOf(options, thrown(options, error), mediaType);
    }
    const text = answer.body ?? '';
    res.writeHead(answer.init.status, { ...answer.init.headers, 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
}
