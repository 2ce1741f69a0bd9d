import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'postgresql',
  schema: ['./directory/schema.ts', './auth/schema.ts', './basedata/schema.ts', './connectors/schema.ts', './audit/schema.ts', './licence/schema.ts', './resolution/schema.ts'],
  out: './db/migrations',
  strict: true,
});
