/**
 * The stall probe of the worker bench (`--worker-probe`): while a Python client's send phase
 * runs, `rabbitmqctl list_connections` is asked again and again for every connection's
 * state, so a connection that RabbitMQ's credit flow holds (`flow`, or `blocked` by an
 * alarm) shows up. One rabbitmqctl call takes seconds and costs the broker CPU: the probe
 * is for the stall diagnosis, never for the figures.
 *
 * @module
 */
import { execFile } from 'node:child_process';

/** One answer of rabbitmqctl during a send phase. */
export interface ProbeSample {
  /** The worker whose queue the client was sending to. */
  target: string;
  /** ms since the send phase started, when the answer came. */
  at_ms: number;
  /** Every connection's state (`running`, `flow`, `blocking`, `blocked`). */
  states: string[];
  /** Connections not running: `name state product` lines (py-amqp: a Python client or worker). */
  not_running: string[];
}

/**
 * Samples connection states during the phases it is told about.
 *
 * @example
 * ```ts
 * const probe = new FlowProbe(); probe.phase('node-events', 'start'); ...; await probe.done();
 * ```
 */
export class FlowProbe {
  readonly #samples: ProbeSample[] = [];
  #active: { target: string; t0: number } | undefined;
  #loop: Promise<void> = Promise.resolve();

  /** A send phase starts or ends. */
  phase(target: string, phase: 'start' | 'end'): void {
    if (phase === 'end') {
      this.#active = undefined;
      return;
    }
    const state = { target, t0: performance.now() };
    // Set before the loop starts: the loop runs while this phase is the active one.
    this.#active = state;
    this.#loop = (async () => {
      while (this.#active === state) await this.#sample(state.target, state.t0);
    })();
  }

  async #sample(target: string, t0: number): Promise<void> {
    const out = await new Promise<string>((done) => {
      execFile(
        'rabbitmqctl',
        ['-q', 'list_connections', 'name', 'state', 'client_properties'],
        { timeout: 30_000 },
        (_err, stdout) => done(String(stdout)),
      );
    });
    const rows = out
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('name'));
    // client_properties is an Erlang term list: keep its product (py-amqp, amqplib, ...).
    const parsed = rows.map((r) => {
      const [name = '', state = '', props = ''] = r.split('\t');
      const product = /product","([^"]*)"/.exec(props)?.[1] ?? '?';
      return { line: `${name} ${state} ${product}`, state };
    });
    const states = parsed.map((p) => p.state);
    this.#samples.push({
      target,
      at_ms: Math.round(performance.now() - t0),
      states,
      not_running: parsed.filter((p) => p.state !== 'running').map((p) => p.line),
    });
  }

  /** Ends sampling and returns every sample. */
  async done(): Promise<ProbeSample[]> {
    this.#active = undefined;
    await this.#loop;
    return this.#samples;
  }
}
