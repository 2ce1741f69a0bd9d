#!/usr/bin/env node
// `npx hub …`: runs the TypeScript CLI through tsx's loader, so it works right after `npm ci`.
import { register } from 'tsx/esm/api';

register();
await import('./main.ts');
