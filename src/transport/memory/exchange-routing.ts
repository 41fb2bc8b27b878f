/**
 * Exchange storage and routing for the embedded broker: direct, topic, fanout and headers
 * matching as RabbitMQ does it, with an index on direct bindings so that routing to one of
 * ten thousand per-task queues stays O(1).
 *
 * @module
 */
import type { ExchangeType, FieldTable } from '../types.js';

/** What a binding points at. */
export type BindingDestinationKind = 'queue' | 'exchange';

/** One binding from an exchange to a queue or to another exchange. */
export interface MemoryBinding {
  readonly source: string;
  readonly destination: string;
  readonly destinationKind: BindingDestinationKind;
  readonly routingKey: string;
  readonly arguments: FieldTable;
  /** Identity: two binds with the same key are one binding (bind is idempotent). */
  readonly key: string;
  /** Pre-split binding key for topic exchanges. */
  readonly words: readonly string[];
}

const EXCHANGE_TYPES: ReadonlySet<string> = new Set<ExchangeType>(['direct', 'topic', 'fanout', 'headers']);

/**
 * True for the exchange types the embedded broker routes.
 *
 * @example
 * ```ts
 * isExchangeType('topic'); // true
 * ```
 */
export function isExchangeType(type: string): type is ExchangeType {
  return EXCHANGE_TYPES.has(type);
}

/**
 * A stable string form of a field table: keys sorted, Buffers as hex, so equal tables
 * (whatever their key order) give equal strings.
 *
 * @example
 * ```ts
 * canonicalTable({ b: 1, a: 2 }) === canonicalTable({ a: 2, b: 1 }); // true
 * ```
 */
export function canonicalTable(table: FieldTable | undefined): string {
  return JSON.stringify(table ?? {}, (_key, value: unknown) => {
    if (Buffer.isBuffer(value)) return { $buffer: value.toString('hex') };
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      const sorted: Record<string, unknown> = {};
      const entries = Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      for (const [k, v] of entries) sorted[k] = v;
      return sorted;
    }
    if (typeof value === 'bigint') return { $bigint: value.toString() };
    return value;
  });
}

/**
 * Topic matching: `*` is exactly one word, `#` zero or more words; words split on `.`.
 *
 * @example
 * ```ts
 * topicMatches(['a', '#'], ['a', 'b', 'c']); // true
 * topicMatches(['a', '*'], ['a']); // false
 * ```
 */
export function topicMatches(pattern: readonly string[], words: readonly string[]): boolean {
  // Iterative matcher with a single backtrack point for the last '#', as glob matchers do:
  // linear in practice and never exponential.
  let p = 0;
  let w = 0;
  let starP = -1;
  let starW = 0;
  while (w < words.length) {
    const token = pattern[p];
    if (token === '#') {
      starP = p;
      starW = w;
      p++;
    } else if (token !== undefined && (token === '*' || token === words[w])) {
      p++;
      w++;
    } else if (starP >= 0) {
      p = starP + 1;
      starW++;
      w = starW;
    } else {
      return false;
    }
  }
  while (pattern[p] === '#') p++;
  return p === pattern.length;
}

/**
 * Splits a topic routing or binding key into words; the empty key is zero words.
 *
 * @example
 * ```ts
 * topicWords('a.b'); // ['a', 'b']
 * topicWords(''); // []
 * ```
 */
export function topicWords(key: string): string[] {
  return key === '' ? [] : key.split('.');
}

function valuesEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a === 'number' && typeof b === 'bigint') return BigInt(a) === b;
  if (typeof a === 'bigint' && typeof b === 'number') return a === BigInt(b);
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return a.equals(b);
  if (Buffer.isBuffer(a) && typeof b === 'string') return a.toString() === b;
  if (typeof a === 'string' && Buffer.isBuffer(b)) return b.toString() === a;
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object') {
    return canonicalTable({ v: a } as FieldTable) === canonicalTable({ v: b } as FieldTable);
  }
  return false;
}

/**
 * Headers-exchange matching: `x-match` is `all` (default) or `any` (RabbitMQ 3.10 adds
 * `all-with-x`/`any-with-x`); binding arguments starting with `x-` take no part unless the
 * `-with-x` forms ask for them. A binding value of `undefined`/`null` matches on presence.
 *
 * @example
 * ```ts
 * headersMatch({ 'x-match': 'any', a: 1, b: 2 }, { b: 2 }); // true
 * ```
 */
export function headersMatch(bindingArgs: FieldTable, headers: FieldTable | undefined): boolean {
  const mode = bindingArgs['x-match'];
  const modeText = Buffer.isBuffer(mode) ? mode.toString() : typeof mode === 'string' ? mode : 'all';
  const any = modeText === 'any' || modeText === 'any-with-x';
  const withX = modeText.endsWith('-with-x');
  const message = headers ?? {};
  for (const [name, expected] of Object.entries(bindingArgs)) {
    if (name.startsWith('x-') && !withX) continue;
    if (name === 'x-match') continue;
    const present = Object.prototype.hasOwnProperty.call(message, name);
    const ok =
      present && (expected === undefined || expected === null || valuesEqual(expected, message[name]));
    if (any && ok) return true;
    if (!any && !ok) return false;
  }
  // all over nothing is true; any over nothing is false (as rabbit_exchange_type_headers).
  return !any;
}

/** The words of a binding on a non-topic exchange (never matched on). */
const NO_WORDS: readonly string[] = Object.freeze([]);

/**
 * One exchange: its declaration and its outgoing bindings.
 *
 * @example
 * ```ts
 * const x = new MemoryExchange('logs', 'fanout', { durable: true, autoDelete: false, internal: false, arguments: {} });
 * ```
 */
export class MemoryExchange {
  readonly name: string;
  readonly type: ExchangeType;
  readonly durable: boolean;
  readonly autoDelete: boolean;
  readonly internal: boolean;
  readonly arguments: FieldTable;
  private readonly bindings = new Map<string, MemoryBinding>();
  /** Direct exchanges: routing key → bindings, so routing is a map lookup. */
  // Arrays, not Sets: a result exchange has one binding per key, and 100,000 one-entry
  // Sets cost ~300 bytes each (bindings are unique by `key` already).
  private readonly byKey = new Map<string, MemoryBinding[]>();

  constructor(
    name: string,
    type: ExchangeType,
    options: { durable: boolean; autoDelete: boolean; internal: boolean; arguments: FieldTable },
  ) {
    this.name = name;
    this.type = type;
    this.durable = options.durable;
    this.autoDelete = options.autoDelete;
    this.internal = options.internal;
    this.arguments = options.arguments;
  }

  /** Number of bindings whose source is this exchange. */
  get bindingCount(): number {
    return this.bindings.size;
  }

  /** Every binding whose source is this exchange. */
  allBindings(): IterableIterator<MemoryBinding> {
    return this.bindings.values();
  }

  /** Adds a binding; returns undefined when an identical one already exists. */
  addBinding(binding: Omit<MemoryBinding, 'key' | 'words' | 'source'>): MemoryBinding | undefined {
    const key = bindingKey(
      binding.destinationKind,
      binding.destination,
      binding.routingKey,
      binding.arguments,
    );
    if (this.bindings.has(key)) return undefined;
    // Only topic exchanges match on words: the others need no split per binding.
    const words = this.type === 'topic' ? topicWords(binding.routingKey) : NO_WORDS;
    const full: MemoryBinding = { ...binding, source: this.name, key, words };
    this.bindings.set(key, full);
    const list = this.byKey.get(full.routingKey);
    if (list === undefined) this.byKey.set(full.routingKey, [full]);
    else list.push(full);
    return full;
  }

  /** Removes one binding by identity; returns it, or undefined when there was none. */
  removeBinding(
    destinationKind: BindingDestinationKind,
    destination: string,
    routingKey: string,
    args: FieldTable,
  ): MemoryBinding | undefined {
    const key = bindingKey(destinationKind, destination, routingKey, args);
    const found = this.bindings.get(key);
    if (found !== undefined) this.forget(found);
    return found;
  }

  /**
   * The bindings a message matches.
   *
   * @param words The routing key pre-split for topic exchanges (computed once per publish).
   */
  match(
    routingKey: string,
    words: readonly string[],
    headers: FieldTable | undefined,
  ): Iterable<MemoryBinding> {
    switch (this.type) {
      case 'direct':
        return this.byKey.get(routingKey) ?? [];
      case 'fanout':
        return this.bindings.values();
      case 'topic': {
        const out: MemoryBinding[] = [];
        for (const b of this.bindings.values()) if (topicMatches(b.words, words)) out.push(b);
        return out;
      }
      case 'headers': {
        const out: MemoryBinding[] = [];
        for (const b of this.bindings.values()) if (headersMatch(b.arguments, headers)) out.push(b);
        return out;
      }
    }
  }

  /** Removes one binding object (found through the broker's reverse index). */
  forget(binding: MemoryBinding): void {
    this.bindings.delete(binding.key);
    const list = this.byKey.get(binding.routingKey);
    if (list !== undefined) {
      removeFrom(list, binding);
      if (list.length === 0) this.byKey.delete(binding.routingKey);
    }
  }
}

function bindingKey(
  kind: BindingDestinationKind,
  destination: string,
  routingKey: string,
  args: FieldTable,
): string {
  // x-match aside, RabbitMQ treats the argument table as part of a binding's identity.
  return `${kind}\u0000${destination}\u0000${routingKey}\u0000${canonicalTable(args)}`;
}

/** Removes one element (by identity) from a small array, keeping the order. */
export function removeFrom<T>(list: T[], item: T): void {
  const i = list.indexOf(item);
  if (i >= 0) list.splice(i, 1);
}
