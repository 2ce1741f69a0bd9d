import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import ipaddr from 'ipaddr.js';
import { RequestFilteringHttpAgent, RequestFilteringHttpsAgent } from 'request-filtering-agent';
import { StartupError } from './errors.ts';

/** Why the egress policy refused a target; stable codes for run reports and BAD_USER_INPUT messages. */
export type EgressReason = 'SCHEME' | 'USERINFO' | 'OWN_LISTENER' | 'ADDRESS' | 'UNRESOLVED' | 'REDIRECT' | 'TOO_LARGE';

export class EgressRefused extends Error {
  constructor(
    readonly reason: EgressReason,
    message: string,
  ) {
    super(message);
    this.name = 'EgressRefused';
  }
}

/** One entry of HUB_EGRESS_ALLOW: a host name, an IP address or a CIDR, each optionally with a port. */
interface AllowEntry {
  host?: string;
  /** an IP address or a CIDR, as request-filtering-agent's allowIPAddressList takes it */
  ip?: string;
  cidr?: [ipaddr.IPv4 | ipaddr.IPv6, number];
  port?: number;
}

const HOST_NAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** A host name as DNS means it: lower case, without the trailing dot of a fully qualified name. */
const normalHost = (host: string) => host.toLowerCase().replace(/\.+$/, '');

function parseEntry(raw: string): AllowEntry {
  const text = normalHost(raw.trim());
  let rest = text;
  let port: number | undefined;
  // host:port and [v6]:port; a bare IPv6 address or CIDR has colons of its own
  const bracket = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(text);
  if (bracket) {
    rest = bracket[1]!;
    if (bracket[2]) port = Number(bracket[2]);
  } else if (!text.includes('::') && text.split(':').length === 2) {
    const [h, p] = text.split(':') as [string, string];
    if (!/^\d{1,5}$/.test(p)) throw new Error(`"${raw}": the port must be a number`);
    rest = h;
    port = Number(p);
  }
  if (port !== undefined && (port < 1 || port > 65535)) throw new Error(`"${raw}": the port must be from 1 to 65535`);
  if (rest.includes('/')) {
    if (port !== undefined) throw new Error(`"${raw}": a CIDR takes no port`);
    try {
      const cidr = ipaddr.parseCIDR(rest);
      return { ip: rest, cidr };
    } catch {
      throw new Error(`"${raw}" is not a CIDR`);
    }
  }
  if (net.isIP(rest)) return { ip: rest, ...(port !== undefined ? { port } : {}) };
  if (!HOST_NAME.test(rest)) throw new Error(`"${raw}" is neither a host name, an IP address nor a CIDR`);
  return { host: rest, ...(port !== undefined ? { port } : {}) };
}

/** What a request through the policy answers: status, headers and the whole body (bounded). */
export interface EgressResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** the URL that answered (after same-origin redirects) */
  url: string;
}

export interface EgressRequest {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  timeoutMs?: number;
  signal?: AbortSignal;
  /** the largest body accepted; a larger one fails TOO_LARGE (default 64 MiB) */
  maxBytes?: number;
  /** redirects followed, each checked again by the policy (default 3); credentials go to the first origin only */
  maxRedirects?: number;
}

const DEFAULT_PORTS: Record<string, number> = { 'http:': 80, 'https:': 443 };
const LOOPBACK_NAMES = new Set(['localhost', 'localhost.localdomain', 'ip6-localhost', 'ip6-loopback']);

/**
 * 出站策略: every address the hub calls on someone's behalf (connector sources, webhooks, relayed resources) goes
 * through here. Loopback, private, link-local, carrier-grade NAT (where cloud metadata services live), unspecified
 * and other non-unicast ranges are refused after DNS resolution, by request-filtering-agent at the moment of
 * connecting, unless the operator listed the host, the address or its CIDR in HUB_EGRESS_ALLOW. The hub's own
 * listeners are refused whatever the list says: nothing configured from outside may make the hub call itself.
 */
export class EgressPolicy {
  private entries: AllowEntry[];
  private readonly agents = new Map<string, http.Agent>();

  private constructor(
    entries: AllowEntry[],
    private readonly own: { ports: number[]; hosts: Set<string> },
  ) {
    this.entries = entries;
  }

  /**
   * The policy of HUB_EGRESS_ALLOW (comma-separated; empty: nothing but public addresses). `own` names the hub's
   * listening ports and its public issuer URL, refused as targets.
   */
  static fromConfig(allow: string | undefined, own: { ports: number[]; issuer?: string | undefined }): EgressPolicy {
    const entries: AllowEntry[] = [];
    for (const raw of (allow ?? '').split(',')) {
      if (!raw.trim()) continue;
      try {
        entries.push(parseEntry(raw));
      } catch (error) {
        throw new StartupError(`HUB_EGRESS_ALLOW: ${(error as Error).message}`);
      }
    }
    const hosts = new Set<string>();
    if (own.issuer) {
      const u = new URL(own.issuer);
      hosts.add(`${normalHost(u.hostname)}:${u.port || DEFAULT_PORTS[u.protocol] || ''}`);
    }
    return new EgressPolicy(entries, { ports: own.ports.filter((p) => p > 0), hosts });
  }

  /** Validates HUB_EGRESS_ALLOW without building a policy: the first bad entry's message, or null. */
  static problemOf(allow: string): string | null {
    for (const raw of allow.split(',')) {
      if (!raw.trim()) continue;
      try {
        parseEntry(raw);
      } catch (error) {
        return (error as Error).message;
      }
    }
    return null;
  }

  /** Adds entries the hub itself knows to be its own (the embedded demo's simulators). */
  allow(...entries: string[]): void {
    this.entries = [...this.entries, ...entries.map(parseEntry)];
    this.agents.clear();
  }

  /** Adds a listening port of this process (known once the server listens), refused as a target. */
  addOwnPort(port: number): void {
    if (port > 0 && !this.own.ports.includes(port)) this.own.ports.push(port);
    this.agents.clear();
  }

  /** The URL parsed and checked before any address is looked at: scheme, userinfo, the hub's own listeners. */
  private target(input: string | URL): { url: URL; host: string; port: number } {
    let url: URL;
    try {
      url = new URL(String(input));
    } catch {
      throw new EgressRefused('SCHEME', 'not an absolute URL');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new EgressRefused('SCHEME', `${url.protocol} URLs are not called; http(s) only`);
    if (url.username || url.password) throw new EgressRefused('USERINFO', 'a URL may not carry a user name or password; secrets are stored as source secrets');
    const host = normalHost(url.hostname.replace(/^\[|\]$/g, ''));
    const port = Number(url.port || DEFAULT_PORTS[url.protocol]);
    if (this.isOwn(host, port)) throw new EgressRefused('OWN_LISTENER', `${host}:${port} is the hub's own listener`);
    return { url, host, port };
  }

  private isOwn(host: string, port: number): boolean {
    if (this.own.hosts.has(`${host}:${port}`)) return true;
    if (!this.own.ports.includes(port)) return false;
    if (LOOPBACK_NAMES.has(host)) return true;
    return net.isIP(host) !== 0 && !isPublic(host);
  }

  /** Whether the operator listed this host name (for this port): then whatever it resolves to is allowed. */
  private hostListed(host: string, port: number): boolean {
    if (this.own.ports.includes(port)) return false;
    return this.entries.some((e) => e.host === host && (e.port === undefined || e.port === port));
  }

  /** The IPs and CIDRs listed for this port. None for a port of the hub's own: its listeners stay refused. */
  private ipsFor(port: number): string[] {
    if (this.own.ports.includes(port)) return [];
    return this.entries.filter((e) => e.ip && (e.port === undefined || e.port === port)).map((e) => e.ip!);
  }

  /** Whether an address the target resolved to may be called: listed, or public unicast. */
  addressAllowed(host: string, address: string, port: number): boolean {
    if (this.own.ports.includes(port) && !isPublic(address)) return false;
    if (this.hostListed(host, port)) return address !== '0.0.0.0' && address !== '::';
    const parsed = ipaddr.parse(address);
    for (const e of this.entries) {
      if (!e.ip || (e.port !== undefined && e.port !== port)) continue;
      if (e.cidr ? parsed.kind() === e.cidr[0].kind() && parsed.match(e.cidr) : e.ip === address) return true;
    }
    return isPublic(address);
  }

  /**
   * Checks a URL as a request would be checked, resolving its host now: for settings (a webhook, a connector's
   * source), so a refused target is refused when it is set and not only when it is first called.
   */
  async check(input: string | URL): Promise<void> {
    const { host, port } = this.target(input);
    await this.checkResolved(host, port);
  }

  /** Checks a socket target (a SQL source's host and port) as check() does a URL, resolving the name now. */
  async checkHost(hostInput: string, port: number): Promise<void> {
    const host = normalHost(hostInput);
    if (this.isOwn(host, port)) throw new EgressRefused('OWN_LISTENER', `${host}:${port} is the hub's own listener`);
    await this.checkResolved(host, port);
  }

  private async checkResolved(host: string, port: number): Promise<void> {
    let addresses: { address: string }[];
    if (net.isIP(host)) addresses = [{ address: host }];
    else {
      try {
        addresses = await dns.promises.lookup(host, { all: true });
      } catch {
        throw new EgressRefused('UNRESOLVED', `${host} does not resolve`);
      }
    }
    for (const { address } of addresses) {
      if (!this.addressAllowed(host, address, port)) throw refusedAddress(host, net.isIP(host) !== 0);
    }
  }

  /** A DNS lookup for sockets the hub opens itself (SQL sources): every address checked as an HTTP target's is. */
  lookupFor(host: string, port: number): net.LookupFunction {
    return ((hostname: string, options: dns.LookupOptions, callback: (err: Error | null, address: string | dns.LookupAddress[], family?: number) => void) => {
      dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
        if (err) return callback(err, '', 4);
        for (const a of addresses) if (!this.addressAllowed(normalHost(host), a.address, port)) return callback(refusedAddress(hostname, false), '', 4);
        if (options.all) return callback(null, addresses);
        callback(null, addresses[0]!.address, addresses[0]!.family);
      });
    }) as net.LookupFunction;
  }

  /** Checks a socket target (host and port) before connecting: a literal address at once, a name on lookup. */
  checkSocketTarget(host: string, port: number): void {
    if (typeof host !== 'string' || !host || host.startsWith('/')) throw new EgressRefused('ADDRESS', 'a socket path is not a network target');
    const h = normalHost(host);
    if (this.isOwn(h, port)) throw new EgressRefused('OWN_LISTENER', `${h}:${port} is the hub's own listener`);
    if (net.isIP(h) && !this.addressAllowed(h, h, port)) throw refusedAddress(h, true);
  }

  private agentFor(url: URL, host: string, port: number): http.Agent {
    const listed = this.hostListed(host, port);
    const ips = listed ? [] : this.ipsFor(port);
    const key = `${url.protocol}|${listed}|${ips.join(',')}`;
    let agent = this.agents.get(key);
    if (!agent) {
      const options = { keepAlive: true, maxSockets: 16, allowPrivateIPAddress: listed, allowMetaIPAddress: false, allowIPAddressList: ips, denyIPAddressList: [] };
      agent = url.protocol === 'https:' ? new RequestFilteringHttpsAgent(options) : new RequestFilteringHttpAgent(options);
      this.agents.set(key, agent);
    }
    return agent;
  }

  /**
   * One request through the policy. Redirects are followed up to `maxRedirects`, each hop checked again; headers
   * (credentials) go only to the first origin, so a source cannot redirect the hub's token elsewhere.
   */
  async request(input: string | URL, init: EgressRequest = {}): Promise<EgressResponse> {
    const first = this.target(input);
    let current = first;
    for (let hop = 0; ; hop++) {
      const sameOrigin = current.url.origin === first.url.origin;
      const res = await this.once(current, { ...init, headers: sameOrigin ? init.headers : {} });
      const location = res.headers.location;
      if (res.status >= 300 && res.status < 400 && res.status !== 304 && location) {
        const max = init.maxRedirects ?? 3;
        if (hop >= max) throw new EgressRefused('REDIRECT', max === 0 ? `the target answered a redirect (HTTP ${res.status}); it is called at its own address only` : `more than ${max} redirects`);
        current = this.target(new URL(location, current.url));
        continue;
      }
      return res;
    }
  }

  private once(t: { url: URL; host: string; port: number }, init: EgressRequest): Promise<EgressResponse> {
    const max = init.maxBytes ?? 64 * 1024 * 1024;
    const signals = [init.signal, init.timeoutMs ? AbortSignal.timeout(init.timeoutMs) : undefined].filter((s): s is AbortSignal => Boolean(s));
    const signal = signals.length ? AbortSignal.any(signals) : undefined;
    const client = t.url.protocol === 'https:' ? https : http;
    return new Promise<EgressResponse>((resolve, reject) => {
      const req = client.request(t.url, { method: init.method ?? 'GET', headers: init.headers ?? {}, agent: this.agentFor(t.url, t.host, t.port), ...(signal ? { signal } : {}) }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > max) {
            reject(new EgressRefused('TOO_LARGE', `the response is larger than ${max} bytes`));
            req.destroy();
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks, size), url: t.url.toString() }));
        res.on('error', reject);
      });
      req.on('error', (error: Error) => {
        // request-filtering-agent refuses an address with a plain Error naming it
        if (/is not allowed\. Because/.test(error.message)) reject(new EgressRefused('ADDRESS', `${t.host} resolves to an address the egress policy refuses (not listed in HUB_EGRESS_ALLOW)`));
        else reject(error);
      });
      if (init.body !== undefined) req.write(init.body);
      req.end();
    });
  }

  close(): void {
    for (const a of this.agents.values()) a.destroy();
    this.agents.clear();
  }
}

/** A refusal naming the target; for a name, not the address it resolved to (that would map the internal DNS). */
function refusedAddress(host: string, literal: boolean): EgressRefused {
  return new EgressRefused('ADDRESS', `${host} ${literal ? 'is' : 'resolves to'} an address the egress policy refuses (loopback, private, link-local or metadata range, not listed in HUB_EGRESS_ALLOW)`);
}

/** Public unicast only, as request-filtering-agent judges it (ipaddr.js ranges): no loopback, private, link-local … */
function isPublic(address: string): boolean {
  try {
    return ipaddr.parse(address).range() === 'unicast';
  } catch {
    return false;
  }
}
