import http from 'node:http';
import { createSchema, createYoga } from 'graphql-yoga';

/** The baseline: bare graphql-yoga on node:http answering `{ hello }`. Prints its port. */
const yoga = createYoga({
  schema: createSchema({ typeDefs: 'type Query { hello: String! }', resolvers: { Query: { hello: () => 'world' } } }),
  logging: false,
  landingPage: false,
  graphiql: false,
});
const server = http.createServer({ keepAliveTimeout: 65_000 }, yoga);
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as { port: number }).port })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
