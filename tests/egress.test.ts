import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EgressPolicy, EgressRefused } from '../core/egress.ts';
import { StartupError } from '../core/errors.ts';

/** A catcher on loopback: it records every request that reaches it. */
async function catcher(handler?: (req: http.IncomingMessage, res: http.ServerResponse) => void) {
  const seen: { url: string; headers: http.IncomingHttpHeaders }[] = [];
  const server = http.createServer((req, res) => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    if (handler) handler(req, res);
    else res.end('caught');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { seen, port, url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(r)) };
}

const refusal = async (p: Promise<unknown>) => {
  const error = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(EgressRefused);
  return (error as EgressRefused).reason;
};

describe('the egress policy', () => {
  let a: Awaited<ReturnType<typeof catcher>>;
  let b: Awaited<ReturnType<typeof catcher>>;
  beforeAll(async () => {
    a = await catcher();
    b = await catcher();
  });
  afterAll(async () => {
    await a.close();
    await b.close();
  });

  it('refuses loopback by address, by name and in IPv6 forms, and nothing reaches the catcher', async () => {
    const policy = EgressPolicy.fromConfig('', { ports: [] });
    for (const url of [a.url, `http://localhost:${a.port}/`, `http://[::1]:${a.port}/`, `http://[::ffff:127.0.0.1]:${a.port}/`, `http://0.0.0.0:${a.port}/`, `http://2130706433:${a.port}/`]) {
      expect(await refusal(policy.request(url)), url).toBe('ADDRESS');
      expect(await refusal(policy.check(url)), url).toBe('ADDRESS');
    }
    expect(a.seen).toHaveLength(0);
  });

  it('refuses private, link-local, metadata and carrier-grade NAT ranges without connecting', async () => {
    const policy = EgressPolicy.fromConfig('', { ports: [] });
    // checked, never requested: no traffic goes to a private address even if the check were wrong
    for (const url of ['http://10.0.0.8/', 'http://172.16.4.4/', 'http://192.168.1.1/', 'http://169.254.169.254/latest/meta-data/', 'http://100.100.100.200/', 'http://[fd00:ec2::254]/', 'http://[fe80::1]/']) {
      expect(await refusal(policy.check(url)), url).toBe('ADDRESS');
    }
    expect(policy.addressAllowed('example.org', '93.184.215.14', 443)).toBe(true);
    for (const address of ['10.1.2.3', '127.0.0.53', '169.254.0.1', '::1', '::ffff:10.0.0.1', '224.0.0.1', '0.0.0.0']) expect(policy.addressAllowed('h', address, 80), address).toBe(false);
  });

  it('refuses other schemes and URLs with user information', async () => {
    const policy = EgressPolicy.fromConfig(`127.0.0.1:${a.port}`, { ports: [] });
    expect(await refusal(policy.check('file:///etc/passwd'))).toBe('SCHEME');
    expect(await refusal(policy.check('gopher://127.0.0.1/'))).toBe('SCHEME');
    expect(await refusal(policy.request(`http://user:pw@127.0.0.1:${a.port}/`))).toBe('USERINFO');
    expect(a.seen).toHaveLength(0);
  });

  it('allows what the operator listed, by address and port, CIDR or host name, and nothing beside it', async () => {
    const byPort = EgressPolicy.fromConfig(`127.0.0.1:${a.port}`, { ports: [] });
    expect((await byPort.request(`${a.url}/x`)).body.toString()).toBe('caught');
    expect(await refusal(byPort.request(`${b.url}/x`))).toBe('ADDRESS');
    expect(b.seen).toHaveLength(0);
    const byCidr = EgressPolicy.fromConfig('127.0.0.0/8', { ports: [] });
    expect((await byCidr.request(`${b.url}/y`)).status).toBe(200);
    const byName = EgressPolicy.fromConfig(`localhost:${a.port}`, { ports: [] });
    expect((await byName.request(`http://localhost:${a.port}/z`)).status).toBe(200);
    expect(await refusal(byName.request(`http://localhost:${b.port}/z`))).toBe('ADDRESS');
    byCidr.close();
    byPort.close();
    byName.close();
  });

  it("refuses the hub's own listener even when its address is listed", async () => {
    const policy = EgressPolicy.fromConfig('127.0.0.0/8,localhost', { ports: [a.port], issuer: 'https://hub.example.gov.cn' });
    const before = a.seen.length;
    expect(await refusal(policy.request(a.url))).toBe('OWN_LISTENER');
    expect(await refusal(policy.request(`http://localhost:${a.port}/`))).toBe('OWN_LISTENER');
    expect(await refusal(policy.check('https://hub.example.gov.cn/graphql'))).toBe('OWN_LISTENER');
    expect(a.seen.length).toBe(before);
  });

  it('checks every redirect hop and sends credentials to the first origin only', async () => {
    const hop = await catcher((req, res) => {
      res.statusCode = 302;
      res.setHeader('location', req.url === '/to-b' ? `${b.url}/landed` : `http://127.0.0.1:${a.port}/landed`);
      res.end();
    });
    try {
      const onlyHop = EgressPolicy.fromConfig(`127.0.0.1:${hop.port}`, { ports: [] });
      const seenB = b.seen.length;
      expect(await refusal(onlyHop.request(`${hop.url}/to-b`, { headers: { authorization: 'Bearer s3cret' } }))).toBe('ADDRESS');
      expect(b.seen.length).toBe(seenB);
      const both = EgressPolicy.fromConfig(`127.0.0.1:${hop.port},127.0.0.1:${a.port}`, { ports: [] });
      const res = await both.request(`${hop.url}/to-a`, { headers: { authorization: 'Bearer s3cret' } });
      expect(res.status).toBe(200);
      expect(a.seen.at(-1)?.headers.authorization).toBeUndefined();
      onlyHop.close();
      both.close();
    } finally {
      await hop.close();
    }
  });

  it('bounds the body it accepts', async () => {
    const policy = EgressPolicy.fromConfig(`127.0.0.1:${a.port}`, { ports: [] });
    expect(await refusal(policy.request(a.url, { maxBytes: 3 }))).toBe('TOO_LARGE');
  });

  it('refuses a malformed HUB_EGRESS_ALLOW at start with the entry named', () => {
    expect(() => EgressPolicy.fromConfig('10.0.0.0/33', { ports: [] })).toThrow(StartupError);
    expect(() => EgressPolicy.fromConfig('exa mple', { ports: [] })).toThrow(/HUB_EGRESS_ALLOW: "exa mple"/);
    expect(EgressPolicy.problemOf('127.0.0.1:99999')).toMatch(/port/);
    expect(EgressPolicy.problemOf('sim.local:8080, 10.0.0.0/8 ,[::1]:80')).toBeNull();
  });
});
