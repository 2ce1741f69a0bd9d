import http from 'node:http';
import { createSchema, createYoga } from 'graphql-yoga';
import { directRequest, type DirectOptions } from '../gateway/direct.ts';

/**
 * The stricter baseline: bare graphql-yoga `{ hello }` answered the way the hub answers a JSON POST (gateway/direct.ts:
 * yoga's engine from a plain node:http handler, without its fetch adapter). Prints its port.
 */
const yoga = createYoga({
  schema: createSchema({ typeDefs: 'type Query { hello: String! }', resolvers: { Query: { hello: () => 'world' } } }),
  logging: false,
  landingPage: false,
  graphiql: false,
  maskedErrors: false,
});
const options: DirectOptions = { yoga: yoga as unknown as DirectOptions['yoga'], finish: (r) => r, maskError: (e) => e as Error };
const server = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      body = undefined;
    }
    const answer = directRequest(options, req, body, {});
    if (answer) void answer(res);
    else {
      res.writeHead(400);
      res.end();
    }
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as { port: number }).port })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
