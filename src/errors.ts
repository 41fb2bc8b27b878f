/**
 * The error hierarchy. Every error this library throws or rejects with is a
 * {@link CeleryAmqpError}: one root class with a machine-readable `code`, an optional
 * `cause`, and subclasses by domain so callers can `instanceof` what they handle.
 *
 * Severity is carried by {@link CeleryAmqpError.recoverable}: a recoverable error is one
 * that reconnecting (and redeclaring) may cure; `ensure()` retries only those.
 *
 * @module
 */

/** AMQP 0-9-1 reply codes by their spec names. */
export const AMQP_REPLY_CODES = {
  CONTENT_TOO_LARGE: 311,
  NO_ROUTE: 312,
  NO_CONSUMERS: 313,
  CONNECTION_FORCED: 320,
  INVALID_PATH: 402,
  ACCESS_REFUSED: 403,
  NOT_FOUND: 404,
  RESOURCE_LOCKED: 405,
  PRECONDITION_FAILED: 406,
  FRAME_ERROR: 501,
  SYNTAX_ERROR: 502,
  COMMAND_INVALID: 503,
  CHANNEL_ERROR: 504,
  UNEXPECTED_FRAME: 505,
  RESOURCE_ERROR: 506,
  NOT_ALLOWED: 530,
  NOT_IMPLEMENTED: 540,
  INTERNAL_ERROR: 541,
} as const;

/** The name of an AMQP reply code, e.g. `'PRECONDITION_FAILED'` for 406. */
export type AmqpReplyCode = keyof typeof AMQP_REPLY_CODES;

/** Codes raised by this client itself rather than by the broker. */
export type ClientErrorCode =
  | 'CONNECTION_CLOSED'
  | 'CONNECTION_REFUSED'
  | 'CHANNEL_CLOSED'
  | 'TIMEOUT'
  | 'ABORTED'
  | 'CONTENT_DISALLOWED'
  | 'ENCODE_ERROR'
  | 'DECODE_ERROR'
  | 'BODY_TOO_LARGE'
  | 'TOO_DEEP'
  | 'TOO_MANY_ALIASES'
  | 'MEMO_TOO_LARGE'
  | 'MESSAGE_STATE'
  | 'NOT_BOUND'
  | 'INVALID_ARGUMENT'
  | 'INVALID_URL'
  | 'UNROUTABLE'
  | 'PUBLISH_NACKED'
  | 'BACKLOG_LIMIT_EXCEEDED'
  | 'TASK_FAILED'
  | 'UNSUPPORTED'
  | 'CALLBACK_FAILED'
  | 'QUEUE_LOST';

/** Every value {@link CeleryAmqpError.code} can take. */
export type ErrorCode = AmqpReplyCode | ClientErrorCode;

/** Options accepted by every error constructor. */
export interface ErrorOptions {
  /** The underlying error, kept for diagnosis. */
  cause?: unknown;
  /** Overrides the subclass's default code. */
  code?: ErrorCode;
  /** Overrides the subclass's default {@link CeleryAmqpError.recoverable}. */
  recoverable?: boolean;
}

/**
 * Root of every error this library raises.
 *
 * @example
 * ```ts
 * try { await queue.declare(); } catch (err) {
 *   if (err instanceof CeleryAmqpError && err.code === 'PRECONDITION_FAILED') { ... }
 * }
 * ```
 */
export class CeleryAmqpError extends Error {
  /** Machine-readable code: an AMQP reply name or a client code. */
  readonly code: ErrorCode;
  /** True when reconnecting may cure the error (connection-level failures). @default false */
  readonly recoverable: boolean;

  constructor(message: string, code: ErrorCode, options: { cause?: unknown; recoverable?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.recoverable = options.recoverable ?? false;
  }

  /** The numeric AMQP reply code when {@link code} is a broker reply name, else undefined. */
  get replyCode(): number | undefined {
    return (AMQP_REPLY_CODES as Record<string, number>)[this.code];
  }
}

/**
 * The connection to the broker failed or was lost. Recoverable: `ensure()` reconnects.
 *
 * @example
 * ```ts
 * conn.on('error', (err) => { if (err instanceof ConnectionError) log(err.message); });
 * ```
 */
export class ConnectionError extends CeleryAmqpError {
  /** Recoverable unless told otherwise (wrong credentials or an unknown vhost are not). */
  constructor(message: string, options: ErrorOptions = {}) {
    super(message, options.code ?? 'CONNECTION_CLOSED', {
      ...options,
      recoverable: options.recoverable ?? true,
    });
  }
}

/**
 * The broker closed a channel (e.g. 406 PRECONDITION_FAILED on a mismatched declare,
 * 404 NOT_FOUND on a missing queue). Not recoverable by reconnecting: the request was wrong.
 *
 * @example
 * ```ts
 * await queue.declare().catch((err: ChannelError) => err.code); // 'PRECONDITION_FAILED'
 * ```
 */
export class ChannelError extends CeleryAmqpError {
  constructor(message: string, options: ErrorOptions = {}) {
    super(message, options.code ?? 'CHANNEL_CLOSED', options);
  }
}

/**
 * An application callback (a consumer callback, a listener) threw. It is reported, never
 * thrown into the transport; the original exception is the `cause`.
 *
 * @example
 * ```ts
 * conn.on('error', (err) => { if (err instanceof CallbackError) console.error(err.cause); });
 * ```
 */
export class CallbackError extends CeleryAmqpError {
  constructor(message: string, options: ErrorOptions = {}) {
    super(message, options.code ?? 'CALLBACK_FAILED', options);
  }
}

/**
 * A body could not be serialized or compressed.
 *
 * @example
 * ```ts
 * try { dumps(1n, 'json'); } catch (err) { err instanceof EncodeError; }
 * ```
 */
export class EncodeError extends CeleryAmqpError {
  constructor(message: string, options: ErrorOptions = {}) {
    super(message, options.code ?? 'ENCODE_ERROR', options);
  }
}

/**
 * A body could not be decompressed or deserialized, or is malformed.
 *
 * @example
 * ```ts
 * try { loads(Buffer.from('{'), 'application/json', 'utf-8'); } catch (err) { err instanceof DecodeError; }
 * ```
 */
export class DecodeError extends CeleryAmqpError {
  constructor(message: string, options: ErrorOptions = {}) {
    super(message, options.code ?? 'DECODE_ERROR', options);
  }
}

/**
 * A body crossed one of the decode limits (kombu `DecodeLimits`): too large compressed or
 * decompressed (`BODY_TOO_LARGE`), nested too deep or cyclic (`TOO_DEEP`), too many
 * repeated references once expanded (`TOO_MANY_ALIASES`: YAML aliases, pickle memo
 * references) or a pickle memo too large (`MEMO_TOO_LARGE`). The message names the limit,
 * and the task when the caller gave a label.
 *
 * @example
 * ```ts
 * try { message.decode(); } catch (err) {
 *   if (err instanceof DecodeLimitError) console.log(err.limit, err.max); // 'maxDepth' 1000
 * }
 * ```
 */
export class DecodeLimitError extends DecodeError {
  /** The name of the limit crossed, as spelled in `DecodeLimits` (e.g. `maxDepth`). */
  readonly limit: string;
  /** The value of that limit. */
  readonly max: number;

  constructor(message: string, limit: string, max: number, options: ErrorOptions = {}) {
    super(message, { ...options, code: options.code ?? 'BODY_TOO_LARGE' });
    this.limit = limit;
    this.max = max;
  }
}

/**
 * A value too deep (or cyclic: `TOO_DEEP`) or too large once written out (`BODY_TOO_LARGE`,
 * shared references counted each time they are written) to be encoded: refused before any
 * output is built, so a decoded alias bomb passed back out can never expand. The limits are
 * the `DecodeLimits` in force (a body a reader with the same limits would refuse is not
 * written).
 *
 * @example
 * ```ts
 * try { dumps(bomb, 'json'); } catch (err) {
 *   if (err instanceof EncodeLimitError) console.log(err.limit, err.max); // 'maxDecodedBytes' 67108864
 * }
 * ```
 */
export class EncodeLimitError extends EncodeError {
  /** The name of the limit crossed (`maxDepth`, `maxDecodedBytes`). */
  readonly limit: string;
  /** The value of that limit. */
  readonly max: number;

  constructor(message: string, limit: string, max: number, options: ErrorOptions = {}) {
    super(message, { ...options, code: options.code ?? 'BODY_TOO_LARGE' });
    this.limit = limit;
    this.max = max;
  }
}

/**
 * A content type outside the accept list (kombu's ContentDisallowed); pickle is refused unless
 * the accept list names it.
 *
 * @example
 * ```ts
 * // "Refusing to deserialize untrusted content of type pickle (application/x-python-serialize)"
 * ```
 */
export class ContentDisallowedError extends DecodeError {
  constructor(message: string, options: ErrorOptions = {}) {
    super(message, { ...options, code: options.code ?? 'CONTENT_DISALLOWED' });
  }
}

/**
 * A message was acked, rejected or requeued twice (kombu's MessageStateError).
 *
 * @example
 * ```ts
 * message.ack(); message.ack(); // throws MessageStateError
 * ```
 */
export class MessageStateError extends CeleryAmqpError {
  constructor(message: string, options: ErrorOptions = {}) {
    super(message, options.code ?? 'MESSAGE_STATE', options);
  }
}

/**
 * An entity (Exchange, Queue) was used without being bound to a channel.
 *
 * @example
 * ```ts
 * await new Exchange('x').declare(); // throws NotBoundError
 * ```
 */
export class NotBoundError extends CeleryAmqpError {
  constructor(message: string, options: ErrorOptions = {}) {
    super(message, options.code ?? 'NOT_BOUND', options);
  }
}

/**
 * A wait reached its deadline. The message matches Python's socket.timeout text.
 *
 * @example
 * ```ts
 * await backend.waitFor(id, { timeout: 1000 }).catch((e) => e instanceof TimeoutError);
 * ```
 */
export class TimeoutError extends CeleryAmqpError {
  constructor(message = 'The operation timed out.', options: ErrorOptions = {}) {
    super(message, options.code ?? 'TIMEOUT', options);
  }
}

/**
 * A wait was cancelled through its AbortSignal.
 *
 * @example
 * ```ts
 * const ac = new AbortController(); ac.abort();
 * await backend.waitFor(id, { signal: ac.signal }).catch((e) => e instanceof AbortError);
 * ```
 */
export class AbortError extends CeleryAmqpError {
  constructor(message = 'The operation was aborted.', options: ErrorOptions = {}) {
    super(message, options.code ?? 'ABORTED', options);
  }
}

/**
 * A caller passed an argument the library cannot use (bad URL, empty task id, ...).
 *
 * @example
 * ```ts
 * new Connection('ftp://x'); // throws ArgumentError with code 'INVALID_URL'
 * ```
 */
export class ArgumentError extends CeleryAmqpError {
  constructor(message: string, options: ErrorOptions = {}) {
    super(message, options.code ?? 'INVALID_ARGUMENT', options);
  }
}

/**
 * A queue being consumed from was lost with whatever it held: its node went down, or it was
 * deleted (auto-delete after its consumer's connection died, or by someone else). The
 * library has declared it again, empty, and consumes from it again; a wait that was
 * pending on it fails with this error, since its result may have been in it. Waiting again
 * still receives a result stored after the recovery.
 *
 * @example
 * ```ts
 * await result.get({ timeout: 10_000 }).catch((err) => {
 *   if (err instanceof QueueLostError) return result.get({ timeout: 10_000 }); // or send the task again
 *   throw err;
 * });
 * ```
 */
export class QueueLostError extends CeleryAmqpError {
  /** The queue that was lost. */
  readonly queue: string;

  constructor(queue: string, message: string, options: ErrorOptions = {}) {
    super(message, options.code ?? 'QUEUE_LOST', options);
    this.queue = queue;
  }
}

/**
 * What to set so that no transient non-exclusive queue is declared, on both sides, for each
 * queue Celery declares that way (see {@link TransientQueueDeniedError}).
 */
export const TRANSIENT_QUEUE_FIXES =
  'rpc:// reply queue: RPCBackend option replyQueueDurable: true here, and Celery >= 5.7 on the ' +
  'Python side (its reply queue is durable=True, auto_delete=True since Celery commit 323f21d, ' +
  '"RabbitMQ 4.3.0 compatibility"); amqp:// result queues: result_persistent: true on both sides; ' +
  'remote control: control_queue_exclusive: true (Celery >= 5.6, the default from 5.7); events: ' +
  'event_queue_exclusive: true (likewise). Or permit the feature on the broker: ' +
  'deprecated_features.permit.transient_nonexcl_queues = true';

/**
 * RabbitMQ 4.3+ refused to create a transient (non-durable) non-exclusive queue: its
 * deprecated feature `transient_nonexcl_queues` is denied by default since 4.3 (and on
 * 3.13-4.2 when configured so). RabbitMQ closes the whole connection with 541 INTERNAL_ERROR
 * and a text cut before it says how to permit the feature; this error says what to set
 * instead ({@link hint}). Not recoverable: a reconnect would be refused the same way.
 *
 * @example
 * ```ts
 * await backend.ensureReplyQueue().catch((err) => {
 *   if (err instanceof TransientQueueDeniedError) console.error(err.hint);
 * });
 * ```
 */
export class TransientQueueDeniedError extends ConnectionError {
  /** The queue refused, when known (RabbitMQ's text does not name it). */
  readonly queue: string | undefined;
  /** What to set on both sides so the queue is declared durable or exclusive. */
  readonly hint: string;
  /** The broker's close text, as received. */
  readonly brokerText: string;

  constructor(
    brokerText: string,
    options: ErrorOptions & { queue?: string | undefined; hint?: string | undefined } = {},
  ) {
    const hint = options.hint ?? TRANSIENT_QUEUE_FIXES;
    const what = options.queue === undefined ? 'a transient non-exclusive queue' : `queue '${options.queue}'`;
    super(
      `RabbitMQ refused to declare ${what} (non-durable and non-exclusive: denied by default ` +
        `since RabbitMQ 4.3, deprecated feature transient_nonexcl_queues). Set ${hint}. Broker: ${brokerText}`,
      { ...options, code: 'INTERNAL_ERROR', recoverable: false },
    );
    this.queue = options.queue;
    this.hint = hint;
    this.brokerText = brokerText;
  }
}

const REPLY_NAMES = new Map<number, AmqpReplyCode>(
  Object.entries(AMQP_REPLY_CODES).map(([name, value]) => [value, name as AmqpReplyCode]),
);

/**
 * The reply name for a numeric AMQP code, or undefined when the number is not one.
 *
 * @example
 * ```ts
 * replyCodeName(406); // 'PRECONDITION_FAILED'
 * ```
 */
export function replyCodeName(code: number): AmqpReplyCode | undefined {
  return REPLY_NAMES.get(code);
}

/** Connection-level reply codes: the broker closes the whole connection for these. */
const CONNECTION_LEVEL = new Set<number>([320, 402, 501, 502, 503, 504, 505, 506, 530, 540, 541]);

/**
 * The connection-level codes a reconnect can cure (py-amqp's RecoverableConnectionError):
 * 320 CONNECTION_FORCED (a broker shutting down or an operator) and 506 RESOURCE_ERROR.
 * The others (503 COMMAND_INVALID for an unknown exchange type, 530 NOT_ALLOWED, 540, 541,
 * the frame errors) answer the request itself: retrying it would fail the same way, forever.
 */
const RECOVERABLE_CONNECTION_LEVEL = new Set<number>([320, 506]);

/**
 * Turns a broker close (code + text) into the matching typed error: connection-level codes
 * (320 CONNECTION_FORCED, 5xx) give a {@link ConnectionError}, channel-level ones
 * (403, 404, 405, 406, ...) a {@link ChannelError}.
 *
 * @example
 * ```ts
 * fromReply(406, 'PRECONDITION_FAILED - inequivalent arg ...'); // ChannelError, code 'PRECONDITION_FAILED'
 * ```
 */
export function fromReply(replyCode: number, replyText: string, cause?: unknown): CeleryAmqpError {
  const name = replyCodeName(replyCode);
  const message = `${replyCode} ${replyText}`;
  const options: ErrorOptions = cause === undefined ? {} : { cause };
  if (name === undefined) return new ChannelError(message, options);
  if (replyCode === AMQP_REPLY_CODES.INTERNAL_ERROR && replyText.includes('transient_nonexcl_queues')) {
    return new TransientQueueDeniedError(message, options);
  }
  if (CONNECTION_LEVEL.has(replyCode)) {
    const recoverable = RECOVERABLE_CONNECTION_LEVEL.has(replyCode);
    return new ConnectionError(message, { ...options, code: name, recoverable });
  }
  return new ChannelError(message, { ...options, code: name });
}

/**
 * Removes the password from every `scheme://user:password@host` in a text, so that
 * credentials never reach an error message, a log or CLI output.
 *
 * @example
 * ```ts
 * redact('amqp://guest:secret@h//'); // 'amqp://guest:****@h//'
 * ```
 */
export function redact(text: string): string {
  // The check first: the worker's log redacts every line, and most hold no URL.
  return text.includes('://')
    ? text.replace(/([a-z][a-z0-9+.-]*:\/\/[^:/@\s;]*):[^@\s;]*@/gi, '$1:****@')
    : text;
}

/**
 * Formats the stack of an error and of its causes now. Until its `stack` is first read, V8
 * keeps an error's frames, and with them the objects they ran on: an error from a decoder
 * holds the message and its body, or the decompressor's buffers, megabytes each. An error
 * kept for later (a reply's error waiting for its id) is settled first.
 *
 * @returns the same error.
 * @example
 * ```ts
 * kept.set(id, settleStack(err));
 * ```
 */
export function settleStack<E>(error: E): E {
  let current: unknown = error;
  for (let depth = 0; depth < 8 && current instanceof Error; depth++) {
    void current.stack;
    current = current.cause;
  }
  return error;
}
