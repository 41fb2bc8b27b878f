/**
 * Broker URL parsing and formatting, following kombu's conventions:
 * `amqp://user:password@host:port/vhost?heartbeat=10`, `;`-separated failover lists,
 * `amqp://h//` and `amqp://h/` both meaning the vhost `/`, percent-decoding of the user,
 * password and vhost, and `guest`/`guest`@`localhost` defaults.
 *
 * The parser is hand-written rather than built on WHATWG `URL`: `amqp:` is not a special
 * scheme there, so hosts stay opaque and `//` paths are ambiguous. Errors never carry the
 * password: every message quotes the input through {@link redactUrl}.
 *
 * @module
 */
import { ArgumentError } from '../errors.js';
import { schemeInfo, transportFor } from './registry.js';
import type { BrokerAddress, Transport } from './types.js';

/** The placeholder a redacted password is replaced with. */
const MASK = '****';

const SCHEME_RE = /^([a-z][a-z0-9+.-]*):\/\//i;

/** Splits a failover list on `;`, dropping empty entries (`a;;b`, trailing `;`). */
function splitList(url: string): string[] {
  return url
    .split(';')
    .map((part) => part.trim())
    .filter((part) => part.length > 0);
}

/** The parts of one `scheme://authority/path?query` string, still percent-encoded. */
interface RawParts {
  scheme: string;
  userinfo: string | undefined;
  hostport: string;
  path: string;
  query: string;
}

/** Splits one URL into raw parts, or returns undefined when it has no `scheme://`. */
function splitParts(url: string): RawParts | undefined {
  const match = SCHEME_RE.exec(url);
  if (match === null) return undefined;
  let rest = url.slice(match[0].length);
  // A fragment means nothing to a broker URL; drop it so it cannot leak into the vhost.
  const hash = rest.indexOf('#');
  if (hash >= 0) rest = rest.slice(0, hash);
  const authorityEnd = rest.search(/[/?]/);
  const authority = authorityEnd < 0 ? rest : rest.slice(0, authorityEnd);
  const tail = authorityEnd < 0 ? '' : rest.slice(authorityEnd);
  const q = tail.indexOf('?');
  const path = q < 0 ? tail : tail.slice(0, q);
  const query = q < 0 ? '' : tail.slice(q + 1);
  // The last `@` ends the userinfo, as in Python's urlsplit, so a raw `@` in a password
  // still parses the way kombu parses it.
  const at = authority.lastIndexOf('@');
  return {
    scheme: (match[1] ?? '').toLowerCase(),
    userinfo: at < 0 ? undefined : authority.slice(0, at),
    hostport: at < 0 ? authority : authority.slice(at + 1),
    path,
    query,
  };
}

/**
 * Replaces the password of every URL in a (possibly `;`-separated) broker URL with `****`.
 * Unlike the regex-based `redact()` in errors.ts, this walks each URL's structure, so a
 * password containing `@`, `:` or `;`-free oddities is still hidden.
 *
 * @param url - A broker URL or failover list.
 * @returns The same text with each password masked; URLs without a password are unchanged.
 * @example
 * ```ts
 * redactUrl('amqp://guest:secret@h//;amqp://u:p@h2//'); // 'amqp://guest:****@h//;amqp://u:****@h2//'
 * ```
 */
export function redactUrl(url: string): string {
  return url
    .split(';')
    .map((part) => {
      const match = SCHEME_RE.exec(part.trimStart());
      if (match === null) {
        // Not a URL we understand: hide anything that looks like userinfo wholesale.
        const at = part.lastIndexOf('@');
        return at < 0 ? part : `${MASK}${part.slice(at)}`;
      }
      const lead = part.length - part.trimStart().length;
      const start = lead + match[0].length;
      const rest = part.slice(start);
      const end = rest.search(/[/?#]/);
      const authority = end < 0 ? rest : rest.slice(0, end);
      const at = authority.lastIndexOf('@');
      if (at < 0) return part;
      const userinfo = authority.slice(0, at);
      const colon = userinfo.indexOf(':');
      if (colon < 0) return part;
      return `${part.slice(0, start)}${userinfo.slice(0, colon)}:${MASK}${rest.slice(at)}`;
    })
    .join(';');
}

/** An INVALID_URL error whose message quotes the input with its password hidden. */
function invalid(url: string, reason: string): ArgumentError {
  return new ArgumentError(`invalid broker URL ${JSON.stringify(redactUrl(url))}: ${reason}`, {
    code: 'INVALID_URL',
  });
}

/** `decodeURIComponent` that reports malformed escapes as INVALID_URL instead of URIError. */
function decode(text: string, url: string, what: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw invalid(url, `malformed percent-encoding in the ${what}`);
  }
}

/** Parses one URL of a failover list. */
function parseOne(url: string): BrokerAddress {
  const parts = splitParts(url);
  if (parts === undefined) throw invalid(url, 'expected scheme://host');
  // Any scheme a transport is registered for (kombu's aliases included).
  const scheme = schemeInfo(parts.scheme);
  if (scheme === undefined) throw invalid(url, `unsupported scheme ${JSON.stringify(parts.scheme)}`);
  const protocol = scheme.protocol;

  let username = 'guest';
  let password = 'guest';
  if (parts.userinfo !== undefined) {
    const colon = parts.userinfo.indexOf(':');
    const user = colon < 0 ? parts.userinfo : parts.userinfo.slice(0, colon);
    const pass = colon < 0 ? '' : parts.userinfo.slice(colon + 1);
    // kombu falls back to the default for an empty user or password, not only a missing one.
    if (user !== '') username = decode(user, url, 'user name');
    if (pass !== '') password = decode(pass, url, 'password');
  }

  let hostname: string;
  let portText: string;
  if (parts.hostport.startsWith('[')) {
    const close = parts.hostport.indexOf(']');
    if (close < 0) throw invalid(url, 'unterminated IPv6 address');
    hostname = parts.hostport.slice(1, close);
    const after = parts.hostport.slice(close + 1);
    if (after !== '' && !after.startsWith(':')) throw invalid(url, 'unexpected text after the IPv6 address');
    portText = after.slice(1);
  } else {
    const colon = parts.hostport.lastIndexOf(':');
    hostname = decode(colon < 0 ? parts.hostport : parts.hostport.slice(0, colon), url, 'host');
    portText = colon < 0 ? '' : parts.hostport.slice(colon + 1);
  }
  if (hostname === '') hostname = 'localhost';

  let port = scheme.defaultPort;
  if (portText !== '') {
    if (!/^\d{1,5}$/.test(portText)) throw invalid(url, 'the port is not a number');
    port = Number(portText);
    if (port < 1 || port > 65535) throw invalid(url, 'the port is outside 1-65535');
  }

  // kombu strips the leading `/` and unquotes the rest: `//` -> `/`, `/%2F` -> `/`, `/foo` -> `foo`.
  const vhostRaw = parts.path.slice(1);
  const vhost = vhostRaw === '' ? '/' : decode(vhostRaw, url, 'vhost');

  const query: Record<string, string> = {};
  for (const pair of parts.query.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const key = decode(eq < 0 ? pair : pair.slice(0, eq), url, 'query');
    // Defined, not assigned: a `__proto__` key would otherwise set the object's prototype.
    Object.defineProperty(query, key, {
      value: decode(eq < 0 ? '' : pair.slice(eq + 1), url, 'query'),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }

  return { protocol, hostname, port, username, password, vhost, query };
}

/**
 * Parses a broker URL, or a failover list of them (kombu's `;`-separated string, or an array
 * of URLs, each of which may itself be a `;` list), into addresses.
 *
 * Schemes: every one registered with `registerTransport`; built in are `amqp` (port 5672;
 * `pyamqp` and `librabbitmq` are aliases), `amqps` (5671) and `memory` (the embedded broker;
 * `memory://` means host `localhost`, vhost `/`). User and
 * password default to `guest`, the host to `localhost`. The vhost comes from the path:
 * empty, `/`, `//` and `/%2F` all mean `/`; `/foo` means `foo`. Query parameters are kept
 * as (decoded) strings for the transport to interpret, e.g. `heartbeat` in seconds.
 *
 * @param url - e.g. `amqp://guest:guest@localhost:5672//?heartbeat=10`, or
 *   `['amqp://h1:5681//', 'amqp://h2:5682//']`.
 * @returns One address per list entry, in order.
 * @throws ArgumentError with code `INVALID_URL` on malformed input; the message never
 *   contains the password.
 * @example
 * ```ts
 * const [primary, backup] = parseBrokerUrl('amqp://u:p%40ss@r1//;amqp://u:p%40ss@r2:5673/prod');
 * primary!.password; // 'p@ss'
 * backup!.vhost; // 'prod'
 * ```
 */
export function parseBrokerUrl(url: string | readonly string[]): BrokerAddress[] {
  const list = typeof url === 'string' ? [url] : url;
  if (!Array.isArray(list) || !list.every((u) => typeof u === 'string')) {
    throw new ArgumentError('broker URL must be a string or an array of strings', { code: 'INVALID_URL' });
  }
  const parts = list.flatMap(splitList);
  if (parts.length === 0) throw new ArgumentError('broker URL is empty', { code: 'INVALID_URL' });
  return parts.map(parseOne);
}

/** Options for {@link formatBrokerUrl}. */
export interface FormatBrokerUrlOptions {
  /** Replace the password with `****`. @default true */
  redact?: boolean;
}

/**
 * Formats an address back into a URL that {@link parseBrokerUrl} reads as the same address.
 * The vhost `/` is written kombu-style as `//`; everything else is percent-encoded.
 *
 * @param address - The address to format.
 * @param options - `redact` (default true) masks the password, for logs and errors.
 * @example
 * ```ts
 * formatBrokerUrl(parseBrokerUrl('amqp://u:s3cret@h//')[0]!); // 'amqp://u:****@h:5672//'
 * formatBrokerUrl(address, { redact: false }); // 'amqp://u:s3cret@h:5672//'
 * ```
 */
export function formatBrokerUrl(address: BrokerAddress, options: FormatBrokerUrlOptions = {}): string {
  const redact = options.redact ?? true;
  const user = encodeURIComponent(address.username);
  const pass = redact ? MASK : encodeURIComponent(address.password);
  const host = address.hostname.includes(':')
    ? `[${address.hostname}]`
    : encodeURIComponent(address.hostname);
  // Port 0 is a transport without a socket (memory://): no port to write.
  const port = address.port === 0 ? '' : `:${address.port}`;
  const vhost = address.vhost === '/' ? '/' : encodeURIComponent(address.vhost);
  const query = Object.entries(address.query)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join('&');
  return `${address.protocol}://${user}:${pass}@${host}${port}/${vhost}${query === '' ? '' : `?${query}`}`;
}

/** The broker Celery uses when nothing names one (kombu's default transport and host). */
export const DEFAULT_BROKER_URL = 'amqp://guest:guest@localhost:5672//';

/**
 * The broker URL to use, by Celery's rule: the explicit one when given (an empty string counts
 * as not given), else the `CELERY_BROKER_URL` environment variable, else
 * {@link DEFAULT_BROKER_URL}. The embedded broker (`memory://`) is only ever used when named.
 *
 * @param explicit - The URL from an option or flag. @default undefined
 * @param env - The environment to read. @default process.env
 * @example
 * ```ts
 * resolveBrokerUrl(undefined); // process.env.CELERY_BROKER_URL ?? 'amqp://guest:guest@localhost:5672//'
 * ```
 */
export function resolveBrokerUrl(
  explicit?: string | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env,
): string {
  if (explicit !== undefined && explicit !== '') return explicit;
  const fromEnv = env['CELERY_BROKER_URL'];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  return DEFAULT_BROKER_URL;
}

/**
 * Parses a broker URL (or a failover list: a `;`-separated string or an array) and pairs each address with the
 * transport registered for its scheme.
 *
 * @throws ArgumentError (INVALID_URL) as {@link parseBrokerUrl} does.
 * @example
 * ```ts
 * const [{ transport, address }] = resolveBroker('amqp://guest:guest@127.0.0.1:5672//');
 * ```
 */
export function resolveBroker(
  url: string | readonly string[],
): Array<{ transport: Transport; address: BrokerAddress }> {
  return parseBrokerUrl(url).map((address) => ({ transport: transportFor(address), address }));
}

/**
 * How the failover list is walked when connecting or reconnecting, as kombu's
 * `failover_strategy` (Celery's `broker_failover_strategy`):
 * - `'round-robin'` (kombu's default): the addresses in list order, starting over after the last.
 * - `'shuffle'`: every pass over the list in a fresh random order. kombu's shuffle draws one
 *   address at random for each attempt, so it may try a dead node twice in a row while a
 *   live one waits; here a pass still tries every address once. The first connection is
 *   shuffled too (kombu always starts with the first URL), so that clients spread over the
 *   nodes of a cluster.
 */
export type FailoverStrategy = 'round-robin' | 'shuffle';

/** The strategies {@link FailoverCycle} knows, by kombu's names. */
export const FAILOVER_STRATEGIES: readonly FailoverStrategy[] = Object.freeze(['round-robin', 'shuffle']);

/**
 * The strategy named by `value` (kombu's names; `undefined` means round-robin).
 *
 * @throws ArgumentError (INVALID_ARGUMENT) for any other value.
 * @example
 * ```ts
 * parseFailoverStrategy('shuffle'); // 'shuffle'
 * ```
 */
export function parseFailoverStrategy(value: unknown): FailoverStrategy {
  if (value === undefined || value === null) return 'round-robin';
  const found = FAILOVER_STRATEGIES.find((s) => s === value);
  if (found === undefined) {
    throw new ArgumentError(
      `unknown failover strategy ${JSON.stringify(value)}: expected one of ${FAILOVER_STRATEGIES.join(', ')}`,
    );
  }
  return found;
}

/**
 * The walk over a failover list of `size` addresses: which one to try now, and when a pass
 * over all of them is complete (a connection loop backs off only then: kombu's
 * `completes_cycle`, so that a dead node costs no sleep while another may be up).
 *
 * @example
 * ```ts
 * const cycle = new FailoverCycle(3);
 * cycle.current; // 0
 * cycle.advance(); // false: 1 is next, the pass goes on
 * cycle.advance(); // false: 2
 * cycle.advance(); // true: back at 0, every address was tried once
 * ```
 */
export class FailoverCycle {
  /** The strategy. @default 'round-robin' */
  readonly strategy: FailoverStrategy;
  readonly #size: number;
  readonly #random: () => number;
  /** The order of the current pass (indices into the list). */
  #order: number[];
  /** Position in {@link #order} of the address in use. */
  #pos = 0;
  /** Addresses tried in the current pass, the current one included. */
  #tried = 1;

  /**
   * @param size - Number of addresses (at least 1).
   * @param strategy - @default 'round-robin'
   * @param random - Source of randomness for `'shuffle'`, in [0, 1). @default Math.random
   */
  constructor(size: number, strategy: FailoverStrategy = 'round-robin', random: () => number = Math.random) {
    if (!Number.isSafeInteger(size) || size < 1) {
      throw new ArgumentError(`a failover list needs at least one address, got ${String(size)}`);
    }
    this.#size = size;
    this.strategy = parseFailoverStrategy(strategy);
    this.#random = random;
    this.#order = this.#newOrder(undefined);
  }

  /** Index (in the list) of the address to use now. */
  get current(): number {
    return this.#order[this.#pos] ?? 0;
  }

  /**
   * Moves to the next address after a failed attempt.
   *
   * @returns True when every address has now been tried once in this pass: the caller
   *   sleeps its backoff before the next attempt, which starts a new pass.
   */
  advance(): boolean {
    this.#step();
    if (this.#tried < this.#size) {
      this.#tried += 1;
      return false;
    }
    this.#tried = 1;
    return true;
  }

  /**
   * Moves to the next address and starts a new pass there: after losing an established
   * connection, the node just lost is tried last (kombu retries it first).
   */
  moveOn(): void {
    this.#step();
    this.#tried = 1;
  }

  /** A connection succeeded: the next failure starts a new pass from the current address. */
  connected(): void {
    this.#tried = 1;
  }

  #step(): void {
    const last = this.current;
    this.#pos += 1;
    if (this.#pos < this.#order.length) return;
    this.#order = this.#newOrder(last);
    this.#pos = 0;
  }

  /** A pass: list order, or a fresh shuffle that does not start with `last` (when avoidable). */
  #newOrder(last: number | undefined): number[] {
    const order = Array.from({ length: this.#size }, (_, i) => i);
    if (this.strategy === 'round-robin') {
      // Round robin continues after `last`, whatever position the pass started from.
      return last === undefined ? order : order.map((_, i) => (last + 1 + i) % this.#size);
    }
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(this.#random() * (i + 1));
      [order[i], order[j]] = [order[j] ?? 0, order[i] ?? 0];
    }
    if (last !== undefined && order.length > 1 && order[0] === last) order.push(order.shift() ?? 0);
    return order;
  }
}
