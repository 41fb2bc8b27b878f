/**
 * The worker's end of the remote-control mailbox (kombu's `pidbox.Node` with Celery's
 * `worker.pidbox.Pidbox`): consumes `<hostname>.celery.pidbox` without acks, acts on the
 * commands meant for this node and replies `{<hostname>: reply}` to the client's
 * `reply_to` with the command's ticket. Malformed commands are dropped with a log line.
 *
 * @module
 */
import type { Channel } from '../../kombu/channel.js';
import type { Connection } from '../../kombu/connection.js';
import { Consumer } from '../../kombu/consumer.js';
import { Exchange } from '../../kombu/exchange.js';
import type { Message } from '../../kombu/message.js';
import { Producer } from '../../kombu/producer.js';
import type { LamportClock } from '../clock.js';
import { isForNode, nodeQueue } from '../pidbox.js';
import type { PidboxSettings } from '../pidbox.js';
import { NO_REPLY, handleCommand } from './control-panel.js';
import type { PanelTarget } from './control-panel.js';

/** What a node logs and reports. */
export interface PidboxNodeHost {
  /** An error nobody else receives (a reply that could not be sent, a dropped command). */
  reportError(err: unknown): void;
  /** A debug line. */
  debug(text: string): void;
}

/** A command body, checked. */
interface Command {
  method: string;
  arguments: Record<string, unknown>;
  ticket: string | null;
  replyTo: { exchange: string; routingKey: string } | null;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Reads a command body, or returns null for one that is not a pidbox command. */
function readCommand(body: unknown): Command | null {
  if (!isRecord(body) || typeof body['method'] !== 'string' || body['method'].length > 255) return null;
  const args = body['arguments'];
  const replyTo = body['reply_to'];
  const ticket = body['ticket'];
  return {
    method: body['method'],
    arguments: isRecord(args) ? args : {},
    ticket: typeof ticket === 'string' ? ticket : null,
    replyTo:
      isRecord(replyTo) &&
      typeof replyTo['exchange'] === 'string' &&
      typeof replyTo['routing_key'] === 'string'
        ? { exchange: replyTo['exchange'], routingKey: replyTo['routing_key'] }
        : null,
  };
}

/** Answers remote-control commands for one worker. */
export class PidboxNode {
  readonly hostname: string;
  readonly #connection: Connection;
  readonly #settings: PidboxSettings;
  readonly #clock: LamportClock;
  readonly #target: PanelTarget;
  readonly #host: PidboxNodeHost;
  #channel: Channel | undefined;
  #consumer: Consumer | undefined;
  #producer: Producer | undefined;
  readonly #replyExchanges = new Map<string, Exchange>();

  constructor(
    connection: Connection,
    hostname: string,
    settings: PidboxSettings,
    clock: LamportClock,
    target: PanelTarget,
    host: PidboxNodeHost,
  ) {
    this.#connection = connection;
    this.hostname = hostname;
    this.#settings = settings;
    this.#clock = clock;
    this.#target = target;
    this.#host = host;
  }

  /** Declares the node's queue (and the fanout exchange) and starts consuming it. */
  async start(): Promise<void> {
    const channel = await this.#connection.channel();
    this.#channel = channel;
    this.#producer = new Producer(channel, { autoDeclare: false });
    const consumer = new Consumer(channel, {
      queues: [nodeQueue(this.hostname, this.#settings)],
      noAck: true,
      accept: ['json'],
      onMessage: (m) => this.#onMessage(m),
      tagPrefix: 'pidbox.',
    });
    this.#consumer = consumer;
    await consumer.consume();
  }

  #onMessage(message: Message): void {
    // Clients rarely send a valid clock: the node's clock moves forward either way.
    this.#clock.adjust(message.headers['clock']);
    let body: unknown;
    try {
      body = message.payload;
    } catch (err) {
      this.#host.reportError(err);
      return;
    }
    if (!isRecord(body) || !isForNode(body, this.hostname)) return;
    const command = readCommand(body);
    if (command === null) {
      this.#host.debug(`pidbox: dropped a message that is not a command`);
      return;
    }
    this.#host.debug(`pidbox received method ${command.method} [ticket:${String(command.ticket)}]`);
    this.#dispatch(command).catch((err: unknown) => this.#host.reportError(err));
  }

  async #dispatch(command: Command): Promise<void> {
    const reply = await handleCommand(this.#target, command.method, command.arguments);
    if (reply === NO_REPLY || command.replyTo === null) return;
    const producer = this.#producer;
    if (producer === undefined) return;
    const { exchange, routingKey } = command.replyTo;
    await producer.publish(
      { [this.hostname]: reply },
      {
        exchange,
        routingKey,
        serializer: 'json',
        deliveryMode: 1,
        headers: { ticket: command.ticket, clock: this.#clock.forward() },
        declare: [this.#replyExchange(exchange)],
      },
    );
  }

  /** kombu's `_publish_reply` declares the reply exchange: direct, not durable, transient. */
  #replyExchange(name: string): Exchange {
    let ex = this.#replyExchanges.get(name);
    if (ex === undefined) {
      ex = new Exchange(name, { type: 'direct', durable: false, deliveryMode: 1 });
      if (this.#replyExchanges.size < 16) this.#replyExchanges.set(name, ex);
    }
    return ex;
  }

  /** Stops consuming and closes the node's channel (the auto-delete queue then goes). */
  async close(): Promise<void> {
    const channel = this.#channel;
    this.#channel = undefined;
    await this.#consumer?.close().catch(() => undefined);
    this.#producer?.close();
    await channel?.close().catch(() => undefined);
  }
}
