/** Every room's tables, for drizzle-kit and for the typed handle. */
export * from '../directory/schema.ts';
export * from '../auth/schema.ts';
export * from '../basedata/schema.ts';
export * from '../connectors/schema.ts';
export * from '../audit/schema.ts';
export * from '../licence/schema.ts';
export * from '../resolution/schema.ts';
