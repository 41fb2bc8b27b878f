/**
 * The real-RabbitMQ transport, over amqplib.
 *
 * @module
 */
import { connect as amqplibConnect, credentials, type ChannelModel } from 'amqplib';
import { AbortError, ArgumentError } from '../../errors.js';
import type { BrokerAddress, ConnectOptions, Transport } from '../types.js';
import { formatBrokerUrl } from '../url.js';
import { AmqpConnection } from './amqp-connection.js';
import { fromConnectFailure } from './amqp-errors.js';

/** Default heartbeat, as kombu/Celery: 60 s. */
const DEFAULT_HEARTBEAT_MS = 60_000;
/** Default TCP connect (and handshake) timeout. */
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/** A non-negative finite number from a query parameter, or undefined when absent or invalid. */
function queryNumber(query: Record<string, string>, key: string): number | undefined {
  const raw = query[key];
  if (raw === undefined || raw.trim() === '') return undefined;
  const value = Number(raw);
  return Number.isFinite(value) && value >= 0 ? value : undefined;
}

/**
 * The heartbeat in amqplib's unit (whole seconds; 0 disables). The `heartbeat` option is in
 * milliseconds and wins over the URL's `heartbeat` query parameter, which is in seconds as
 * in kombu and Celery URLs.
 */
function heartbeatSeconds(address: BrokerAddress, options: ConnectOptions): number {
  const ms =
    options.heartbeat ?? (queryNumber(address.query, 'heartbeat') ?? DEFAULT_HEARTBEAT_MS / 1000) * 1000;
  if (ms <= 0) return 0;
  // A sub-second interval cannot be expressed; 1 s is the closest the protocol allows.
  return Math.max(1, Math.round(ms / 1000));
}

/**
 * The connect timeout in ms: the option, else kombu's `connect_timeout` /
 * `connection_timeout` query parameter (seconds), else 10 s.
 */
function connectTimeoutMs(address: BrokerAddress, options: ConnectOptions): number {
  const seconds =
    queryNumber(address.query, 'connect_timeout') ?? queryNumber(address.query, 'connection_timeout');
  return options.connectTimeout ?? (seconds === undefined ? DEFAULT_CONNECT_TIMEOUT_MS : seconds * 1000);
}

/**
 * The {@link Transport} for `amqp://` and `amqps://` brokers (RabbitMQ), over amqplib.
 *
 * Connections are opened from a parsed address, never from a URL string, so any character
 * in a password is safe. Every socket has TCP_NODELAY set: without it a declare-then-publish
 * loop stalls about 40 ms per message on Nagle's algorithm and delayed ACKs.
 *
 * Failures reject with a typed ConnectionError: `CONNECTION_REFUSED` (nothing listening;
 * also, not recoverable, a TLS certificate failure), `ACCESS_REFUSED` (wrong credentials,
 * not recoverable), `NOT_ALLOWED` (unknown vhost, not recoverable), `TIMEOUT`, or
 * `CONNECTION_CLOSED`; an aborted signal rejects with AbortError. Messages never contain
 * the password.
 *
 * @example
 * ```ts
 * const transport = new AmqpTransport();
 * const [address] = parseBrokerUrl('amqp://guest:guest@127.0.0.1:5672//?heartbeat=30');
 * const conn = await transport.connect(address!, { connectTimeout: 5000 });
 * ```
 */
export class AmqpTransport implements Transport {
  /** Always `'amqp'` (serves both `amqp` and `amqps` addresses). */
  readonly name: string = 'amqp';

  /**
   * Opens a connection to one address.
   *
   * @param address - An `amqp` or `amqps` address from `parseBrokerUrl`. Query parameters
   *   read: `heartbeat` (s), `connect_timeout`/`connection_timeout` (s), `frame_max`,
   *   `channel_max`.
   * @param options - Heartbeat (ms, default 60000, 0 disables), connect timeout (ms,
   *   default 10000), TLS options for amqps, client properties, AbortSignal.
   * @example
   * ```ts
   * const conn = await new AmqpTransport().connect(address, { tls: { ca: readFileSync('ca.pem') } });
   * ```
   */
  async connect(address: BrokerAddress, options: ConnectOptions = {}): Promise<AmqpConnection> {
    if (address.protocol !== 'amqp' && address.protocol !== 'amqps') {
      throw new ArgumentError(`the amqp transport cannot serve ${address.protocol}:// addresses`, {
        code: 'INVALID_URL',
      });
    }
    const displayUrl = formatBrokerUrl(address);
    const signal = options.signal;
    if (signal?.aborted === true) throw new AbortError(`connecting to ${displayUrl} was aborted`);

    const frameMax = queryNumber(address.query, 'frame_max');
    const channelMax = queryNumber(address.query, 'channel_max');
    const tls = options.tls ?? {};
    const target = {
      protocol: address.protocol,
      hostname: address.hostname,
      port: address.port,
      // amqplib unescapes the vhost it is given (querystring.unescape): escape it first so
      // a vhost containing `%` arrives unchanged.
      vhost: encodeURIComponent(address.vhost),
      heartbeat: heartbeatSeconds(address, options),
      ...(frameMax === undefined ? {} : { frameMax }),
      ...(channelMax === undefined ? {} : { channelMax }),
    };
    const socketOptions = {
      noDelay: true,
      keepAlive: true,
      timeout: connectTimeoutMs(address, options),
      credentials: credentials.plain(address.username, address.password),
      clientProperties: { connection_name: 'celery-amqp-backend', ...options.clientProperties },
      ...(tls.ca === undefined ? {} : { ca: tls.ca }),
      ...(tls.cert === undefined ? {} : { cert: tls.cert }),
      ...(tls.key === undefined ? {} : { key: tls.key }),
      ...(tls.passphrase === undefined ? {} : { passphrase: tls.passphrase }),
      ...(tls.servername === undefined ? {} : { servername: tls.servername }),
      ...(tls.rejectUnauthorized === undefined ? {} : { rejectUnauthorized: tls.rejectUnauthorized }),
    };

    let opening: Promise<ChannelModel>;
    try {
      opening = amqplibConnect(target, socketOptions);
    } catch (err) {
      throw fromConnectFailure(err, displayUrl);
    }
    if (signal === undefined) {
      return new AmqpConnection(await opening.catch(rethrowTyped(displayUrl)), displayUrl);
    }

    // amqplib cannot cancel a connect in progress: reject at once, and close the
    // connection should it open after all.
    return new Promise<AmqpConnection>((resolve, reject) => {
      const onAbort = (): void => reject(new AbortError(`connecting to ${displayUrl} was aborted`));
      signal.addEventListener('abort', onAbort, { once: true });
      opening.then(
        (model) => {
          signal.removeEventListener('abort', onAbort);
          if (signal.aborted) {
            model.on('error', () => undefined);
            model.close().catch(() => undefined);
            return;
          }
          resolve(new AmqpConnection(model, displayUrl));
        },
        (err: unknown) => {
          signal.removeEventListener('abort', onAbort);
          reject(fromConnectFailure(err, displayUrl));
        },
      );
    });
  }
}

/**
 * The one instance the registry hands out for `amqp://` and `amqps://` (it keeps no state).
 *
 * @example
 * ```ts
 * const conn = await amqpTransport.connect(parseBrokerUrl('amqp://localhost//')[0]!);
 * ```
 */
export const amqpTransport = new AmqpTransport();

function rethrowTyped(displayUrl: string): (err: unknown) => never {
  return (err) => {
    throw fromConnectFailure(err, displayUrl);
  };
}
