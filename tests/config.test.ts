import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { HUB_NODE_FLAGS, loadConfig } from '../core/config.ts';
import { StartupError } from '../core/errors.ts';

function startupError(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(StartupError);
    return (error as Error).message;
  }
  throw new Error('no error');
}

describe('configuration', () => {
  it('runs the hub, its workers and the benchmarks with the same node flags', () => {
    const scripts = (JSON.parse(fs.readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> }).scripts;
    for (const name of ['start', 'worker', 'bench']) expect(scripts[name]!.split(' ').slice(1, -1), name).toEqual([...HUB_NODE_FLAGS]);
  });

  it('defaults to the embedded database on port 4000, and treats empty values as absent', () => {
    const c = loadConfig({ DATABASE_URL: '', REDIS_URL: '', PORT: '' });
    expect(c.databaseUrl).toBeUndefined();
    expect(c.redisUrl).toBeUndefined();
    expect(c.port).toBe(4000);
    expect(c.issuer).toBe('http://localhost:4000');
    expect(c.dataDir).toMatch(/\.hub$/);
  });

  it('names the variable in one clear line', () => {
    expect(startupError({ PORT: 'abc' })).toBe('PORT: must be a number from 0 to 65535 (got "abc")');
    expect(startupError({ PORT: '70000' })).toMatch(/^PORT: must be a number from 0 to 65535/);
    expect(startupError({ DATABASE_URL: 'mysql://x' })).toBe('DATABASE_URL: must be a URL starting with postgres:// or postgresql://');
    expect(startupError({ HUB_MASTER_KEY: 'short' })).toBe('HUB_MASTER_KEY: must be 32 bytes as 64 hex characters or base64');
    expect(startupError({ NODE_ENV: 'production', DATABASE_URL: 'postgres://h/db' })).toBe(
      'HUB_MASTER_KEY: required when DATABASE_URL is set and NODE_ENV=production',
    );
    for (const m of [startupError({ HUB_LOG_LEVEL: 'loud' }), startupError({ REDIS_URL: 'http://x' })]) expect(m).not.toContain('\n');
  });

  it('stops the process with that one line and exit code 1', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'gateway/main.ts'], {
      env: { ...process.env, PORT: 'abc', NODE_ENV: '' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe('hub: PORT: must be a number from 0 to 65535 (got "abc")');
  });
});
