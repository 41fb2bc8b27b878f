/**
 * Maps amqplib's errors onto this library's typed errors. amqplib reports broker closes as
 * plain `Error`s with a numeric `code` and a message like
 * `Channel closed by server: 406 (PRECONDITION-FAILED) with message "PRECONDITION_FAILED - ..."`,
 * socket failures as Node errors (`ECONNREFUSED`, ...), and handshake failures as text only.
 *
 * @module
 */
import {
  ArgumentError,
  ChannelError,
  ConnectionError,
  fromReply,
  redact,
  type CeleryAmqpError,
} from '../../errors.js';

/** The broker's reply text inside an amqplib close message, or the whole message. */
function replyText(message: string): string {
  const match = /with message "([\s\S]*)"\s*$/.exec(message);
  return match?.[1] ?? message;
}

function errorCode(err: unknown): unknown {
  return typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
}

function errorMessage(err: unknown): string {
  return redact(err instanceof Error ? err.message : String(err));
}

/**
 * The typed error for a broker close reported by amqplib (an error with a numeric `code`),
 * or undefined when the error is not one.
 *
 * @example
 * ```ts
 * fromAmqplibClose(err)?.code; // 'PRECONDITION_FAILED'
 * ```
 */
export function fromAmqplibClose(err: unknown): CeleryAmqpError | undefined {
  const code = errorCode(err);
  if (typeof code !== 'number') return undefined;
  return fromReply(code, replyText(errorMessage(err)), err);
}

/**
 * The typed error for an amqplib failure that is not a broker close: encoder complaints
 * (an over-long name, a value of the wrong type) become ArgumentError; anything else a
 * ChannelError carrying the original as `cause`.
 *
 * @example
 * ```ts
 * fromAmqplibFailure(new TypeError("Field 'queue' is the wrong type")).code; // 'INVALID_ARGUMENT'
 * ```
 */
export function fromAmqplibFailure(err: unknown): CeleryAmqpError {
  const closed = fromAmqplibClose(err);
  if (closed !== undefined) return closed;
  if (err instanceof TypeError || err instanceof RangeError) {
    return new ArgumentError(errorMessage(err), { code: 'INVALID_ARGUMENT', cause: err });
  }
  return new ChannelError(errorMessage(err), { cause: err });
}

/** Socket error codes meaning "nobody answered at that address". */
const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
]);

/**
 * The typed error for a failed connection attempt. `where` is the redacted URL.
 *
 * - ECONNREFUSED and other unreachable-address errors: CONNECTION_REFUSED (recoverable).
 * - A connect timeout: TIMEOUT (recoverable).
 * - Wrong credentials (403 during the handshake): ACCESS_REFUSED, not recoverable.
 * - Unknown vhost or no permission on it (530, or a close in place of open-ok): NOT_ALLOWED,
 *   not recoverable.
 * - TLS failures (certificate not trusted, wrong host name, TLS to a plain port):
 *   CONNECTION_REFUSED, not recoverable: retrying will meet the same certificate.
 * - Anything else (socket closed mid-handshake, ...): CONNECTION_CLOSED (recoverable).
 *
 * @example
 * ```ts
 * fromConnectFailure(err, 'amqp://guest:****@localhost:5672//').code; // 'CONNECTION_REFUSED'
 * ```
 */
export function fromConnectFailure(err: unknown, where: string): ConnectionError {
  const code = errorCode(err);
  const message = errorMessage(err);
  const cause = { cause: err };
  if (typeof code === 'string' && UNREACHABLE.has(code)) {
    return new ConnectionError(`cannot connect to ${where}: ${message}`, {
      ...cause,
      code: 'CONNECTION_REFUSED',
    });
  }
  if (code === 'ETIMEDOUT' || /ETIMEDOUT/.test(message)) {
    return new ConnectionError(`connecting to ${where} timed out`, { ...cause, code: 'TIMEOUT' });
  }
  if (typeof code === 'string' && /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_/.test(code)) {
    return new ConnectionError(`TLS handshake with ${where} failed: ${message} (${code})`, {
      ...cause,
      code: 'CONNECTION_REFUSED',
      recoverable: false,
    });
  }
  const handshake = /Handshake terminated by server: (\d+)/.exec(message);
  const reply = handshake?.[1] === undefined ? undefined : Number(handshake[1]);
  if (reply === 403 || /ACCESS[-_]REFUSED/.test(message)) {
    return new ConnectionError(`access refused by ${where}: ${replyText(message)}`, {
      ...cause,
      code: 'ACCESS_REFUSED',
      recoverable: false,
    });
  }
  // amqplib reports a close in answer to connection.open without its fields; RabbitMQ only
  // does that for a vhost that does not exist or that the user may not use (530).
  if (reply === 530 || /Expected ConnectionOpenOk; got <ConnectionClose/.test(message)) {
    return new ConnectionError(`vhost refused by ${where} (missing, or no permission for this user)`, {
      ...cause,
      code: 'NOT_ALLOWED',
      recoverable: false,
    });
  }
  if (reply !== undefined) {
    const typed = fromReply(reply, replyText(message), err);
    return typed instanceof ConnectionError
      ? typed
      : new ConnectionError(`${where}: ${typed.message}`, { ...cause, code: typed.code, recoverable: false });
  }
  return new ConnectionError(`connection to ${where} failed: ${message}`, {
    ...cause,
    code: 'CONNECTION_CLOSED',
  });
}

/**
 * The typed error for an established connection that amqplib reports closed with `err`:
 * a broker close (320 CONNECTION_FORCED from `rabbitmqctl close_connection`, 541, ...) maps
 * through `fromReply`; a lost socket or missed heartbeats become CONNECTION_CLOSED.
 *
 * @example
 * ```ts
 * fromConnectionLoss(err, displayUrl).recoverable; // true
 * ```
 */
export function fromConnectionLoss(err: unknown, where: string): CeleryAmqpError {
  const closed = fromAmqplibClose(err);
  if (closed !== undefined) return closed;
  return new ConnectionError(`connection to ${where} lost: ${errorMessage(err)}`, {
    cause: err,
    code: 'CONNECTION_CLOSED',
  });
}
