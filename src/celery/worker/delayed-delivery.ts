/**
 * The worker's native delayed delivery step (Celery 5.5's `DelayedDelivery` bootstep): when
 * the app has a quorum queue, declare the `celery_delayed_*` ladder with
 * `broker_native_delayed_delivery_queue_type` and bind the consumed queues to
 * `celery_delayed_delivery`, so countdown/eta tasks sent through the ladder reach them when
 * due. Direct queue exchanges cannot take part: a warning, as Celery logs it.
 *
 * Differences from Celery, on purpose: Celery binds every queue of its routing table (and
 * logs an error for those that were never declared); this binds the queues the worker
 * consumes, each one also when `add_consumer` adds it. As in Celery, a failure is reported
 * (the worker's 'error' path) and the worker keeps serving: eta tasks then wait in the
 * worker for their eta.
 *
 * @module
 */
import type { Queue } from '../../kombu/queue.js';
import {
  bindQueueToNativeDelayedDelivery,
  declareNativeDelayedDelivery,
} from '../../kombu/native-delayed-delivery.js';
import type { Celery } from '../app.js';

/** Where the step writes. */
export interface DelayedDeliveryLog {
  warning(text: string): void;
  debug(text: string): void;
}

/**
 * Sets up and extends the delay ladder for one worker.
 *
 * @example
 * ```ts
 * const step = new DelayedDelivery(app, log);
 * if (step.enabled) await step.start(queues);
 * ```
 */
export class DelayedDelivery {
  readonly #app: Celery;
  readonly #log: DelayedDeliveryLog;
  #declared = false;

  constructor(app: Celery, log: DelayedDeliveryLog) {
    this.#app = app;
    this.#log = log;
  }

  /** True when the app has a quorum queue (Celery's `include_if`). */
  get enabled(): boolean {
    return this.#app.quorumQueue() !== undefined;
  }

  /**
   * Declares the ladder (once) and binds `queues` to it, on a channel of its own.
   *
   * @throws the broker's error for a refused declaration or binding.
   */
  async start(queues: readonly Queue[]): Promise<void> {
    const channel = await this.#app.connection.channel();
    try {
      if (!this.#declared) {
        const queueType = this.#app.conf.broker_native_delayed_delivery_queue_type;
        this.#log.debug(`Setting up delayed delivery with queue type '${queueType}'`);
        await declareNativeDelayedDelivery(channel, { queueType });
        this.#declared = true;
      }
      for (const queue of queues) {
        this.#log.debug(`Binding queue '${queue.name}' to delayed delivery exchange`);
        for (const exchange of await bindQueueToNativeDelayedDelivery(channel, queue)) {
          this.#log.warning(
            `Exchange ${exchange} is a direct exchange and native delayed delivery do not support ` +
              'direct exchanges.\nETA tasks published to this exchange will block the worker until the ETA arrives.',
          );
        }
      }
    } finally {
      await channel.close().catch(() => undefined);
    }
  }
}
