/**
 * The values a pickle is read into, and their conversion to plain data once the stream is
 * read: limits on depth, cycles and shared references are checked on the whole graph
 * first, then well-known Python types become plain values (see {@link pickleLoads}).
 *
 * @module
 */
import type { DecodeContext } from './decode-limits.js';
import { limitError } from './decode-limits.js';

/** A Python global (class or function) named by a pickle. Never resolved nor called. */
export class GlobalRef {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}

  /** `module.name`. */
  get qualified(): string {
    return `${this.module}.${this.name}`;
  }
}

/** A Python dict as read: keys of any type, in order. */
export class PyDict {
  readonly keys: unknown[] = [];
  readonly values: unknown[] = [];
}

/** A Python set or frozenset as read. */
export class PySet {
  constructor(readonly items: unknown[]) {}
}

/** An object the pickle asked to create (REDUCE, NEWOBJ, OBJ, INST), recorded only. */
export class PickleInstance {
  /** Keyword arguments (NEWOBJ_EX). */
  kwargs: PyDict | undefined;
  /** BUILD state. */
  state: unknown = undefined;
  /** Items appended to the object (APPEND/APPENDS on a list subclass). */
  items: unknown[] | undefined;
  /** Items set on the object (SETITEM/SETITEMS on a dict subclass). */
  dictItems: PyDict | undefined;

  constructor(
    readonly cls: GlobalRef,
    readonly args: unknown[],
  ) {}
}

/**
 * An inert stand-in for a Python object that has no plain-data equivalent: the class it
 * names and what the pickle gave to build it. Nothing of it was ever imported or run.
 *
 * @example
 * ```ts
 * const value = loads(body, PICKLE_CONTENT_TYPE, 'binary', { accept: ['pickle'] });
 * if (value instanceof PickledObject) console.log(`${value.__module__}.${value.__name__}`, value.args);
 * ```
 */
export class PickledObject {
  /** The Python module of the class, e.g. `fractions`. */
  readonly __module__: string;
  /** The class (qualified) name, e.g. `Fraction`. */
  readonly __name__: string;
  /** The positional arguments it was built with; `null` for a bare reference to the class. */
  readonly args: readonly unknown[] | null;
  /** The state it was given (its `__dict__` or `__setstate__` argument); `null` for none. */
  readonly state: unknown;
  /** Keyword arguments (protocol 4 `__getnewargs_ex__`), when there were any. */
  declare readonly kwargs?: Readonly<Record<string, unknown>>;
  /** Items appended or set on it (a list or dict subclass); set items are `[key, value]` pairs. */
  declare readonly items?: readonly unknown[];

  constructor(
    module: string,
    name: string,
    args: readonly unknown[] | null,
    state: unknown,
    extra: { kwargs?: Record<string, unknown>; items?: unknown[] } = {},
  ) {
    this.__module__ = module;
    this.__name__ = name;
    this.args = args;
    this.state = state;
    if (extra.kwargs !== undefined) this.kwargs = extra.kwargs;
    if (extra.items !== undefined) this.items = extra.items;
    Object.freeze(this);
  }
}

type Node = unknown[] | PyDict | PySet | PickleInstance;

function isNode(value: unknown): value is Node {
  return (
    Array.isArray(value) ||
    value instanceof PyDict ||
    value instanceof PySet ||
    value instanceof PickleInstance
  );
}

function childrenOf(node: Node): readonly unknown[] {
  if (Array.isArray(node)) return node;
  if (node instanceof PyDict) return [...node.keys, ...node.values];
  if (node instanceof PySet) return node.items;
  const out: unknown[] = [...node.args, node.state];
  if (node.kwargs !== undefined) out.push(node.kwargs);
  if (node.items !== undefined) out.push(...node.items);
  if (node.dictItems !== undefined) out.push(node.dictItems);
  return out;
}

interface Frame {
  node: Node;
  children: readonly unknown[];
  next: number;
  /** Levels of collections from this node down, itself included. */
  height: number;
  /** Collections under this node with every shared one counted each time, itself included. */
  size: number;
}

/**
 * Checks the graph read from a pickle (depth, cycles, shared-reference expansion) without
 * recursion, then converts it to plain data, children before parents.
 */
export function finalizePickle(root: unknown, ctx: DecodeContext): unknown {
  if (!isNode(root)) return convertLeaf(root, new Map());
  const order = walk(root, ctx);
  const out = new Map<unknown, unknown>();
  const refs = new Map<unknown, unknown>();
  const get = (value: unknown): unknown => (isNode(value) ? out.get(value) : convertLeaf(value, refs));
  for (const node of order) out.set(node, convertNode(node, get));
  return out.get(root);
}

/** Depth-first walk: returns the nodes in post-order (children first). */
function walk(root: Node, ctx: DecodeContext): Node[] {
  const { maxDepth, maxAliasExpansion } = ctx.limits;
  const done = new Map<Node, { height: number; size: number }>();
  const onPath = new Set<Node>();
  const order: Node[] = [];
  const frame = (node: Node): Frame => {
    const w = weight(node);
    return { node, children: childrenOf(node), next: 0, height: w, size: w };
  };
  const stack: Frame[] = [frame(root)];
  onPath.add(root);
  let expansion = 0;
  const tooDeep = (what: string): Error => limitError(ctx, 'TOO_DEEP', 'maxDepth', what);
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    if (top === undefined) break;
    if (top.next < top.children.length) {
      const child = top.children[top.next++];
      if (!isNode(child)) continue;
      if (onPath.has(child)) throw tooDeep('pickle holds a reference cycle (infinitely deep)');
      const seen = done.get(child);
      if (seen !== undefined) {
        // A shared collection: everything under it is repeated once more when expanded.
        expansion += seen.size;
        if (expansion > maxAliasExpansion) {
          throw limitError(
            ctx,
            'TOO_MANY_ALIASES',
            'maxAliasExpansion',
            'pickle references shared collections too many times',
          );
        }
        top.height = Math.max(top.height, seen.height + weight(top.node));
        top.size += seen.size;
        if (stack.length + seen.height > maxDepth)
          throw tooDeep(`pickle nested more than ${maxDepth} levels deep`);
        continue;
      }
      if (stack.length >= maxDepth) throw tooDeep(`pickle nested more than ${maxDepth} levels deep`);
      onPath.add(child);
      stack.push(frame(child));
      continue;
    }
    stack.pop();
    onPath.delete(top.node);
    done.set(top.node, { height: top.height, size: top.size });
    order.push(top.node);
    const parent = stack[stack.length - 1];
    if (parent !== undefined) {
      parent.height = Math.max(parent.height, top.height + weight(parent.node));
      parent.size += top.size;
    }
  }
  return order;
}

function convertLeaf(value: unknown, refs: Map<unknown, unknown>): unknown {
  if (value instanceof GlobalRef) {
    let placeholder = refs.get(value);
    if (placeholder === undefined) {
      placeholder = new PickledObject(value.module, value.name, null, null);
      refs.set(value, placeholder);
    }
    return placeholder;
  }
  return value;
}

type Get = (value: unknown) => unknown;

function convertNode(node: Node, get: Get): unknown {
  if (Array.isArray(node)) return node.map(get);
  if (node instanceof PySet) return node.items.map(get);
  if (node instanceof PyDict) return dictToObject(node, get);
  return convertInstance(node, get);
}

/**
 * A dict as an object whose keys are strings, as Python's json.dumps writes them (ints as
 * digits, True/False/None as true/false/null; any other key as its JSON text). Keys are
 * defined, never assigned, so `__proto__` stays a plain key.
 */
export function dictToObject(
  dict: PyDict,
  get: Get,
  into: Record<string, unknown> = {},
): Record<string, unknown> {
  for (let i = 0; i < dict.keys.length; i++) {
    const key = keyText(get(dict.keys[i]));
    const value = get(dict.values[i]);
    if (key === '__proto__') {
      Object.defineProperty(into, key, { value, enumerable: true, writable: true, configurable: true });
    } else {
      into[key] = value;
    }
  }
  return into;
}

function keyText(key: unknown): string {
  switch (typeof key) {
    case 'string':
      return key;
    case 'number':
    case 'bigint':
    case 'boolean':
      return String(key);
    default:
      if (key === null || key === undefined) return 'null';
      if (Buffer.isBuffer(key)) return key.toString('latin1');
      return JSON.stringify(key, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)) ?? 'null';
  }
}

/** Value types with a plain equivalent, keyed by `module.qualname`. */
type Converter = (node: PickleInstance, get: Get) => unknown;

let converters: ReadonlyMap<string, Converter> = new Map();
let scalarTypes: ReadonlySet<string> = new Set();

/**
 * Registers the converters of pickle-types.ts (kept apart to keep each file short).
 * `scalars` names the types that become a single value (a date, a number): they add no
 * depth and no collection.
 */
export function setPickleConverters(map: ReadonlyMap<string, Converter>, scalars: ReadonlySet<string>): void {
  converters = map;
  scalarTypes = scalars;
}

/** 0 for an object that becomes a scalar (a datetime), else 1. */
function weight(node: Node): number {
  return node instanceof PickleInstance && scalarTypes.has(node.cls.qualified) ? 0 : 1;
}

/** Exception classes of these modules all are exceptions. */
const EXCEPTION_MODULES: ReadonlySet<string> = new Set([
  'celery.exceptions',
  'billiard.exceptions',
  'kombu.exceptions',
  'amqp.exceptions',
]);

const EXCEPTION_NAME =
  /(Error|Exception|Warning|Exit|Interrupt|ExceptionGroup|Exceeded|StopIteration|StopAsyncIteration)$/;

/**
 * Whether a class name is an exception's: every class of Celery/kombu/billiard/amqp's
 * exception modules, and any class whose name ends like Python's exception names do
 * (`...Error`, `...Exception`, `...Warning`, `SystemExit`, `KeyboardInterrupt`, ...).
 */
export function isExceptionClass(module: string, name: string): boolean {
  if (EXCEPTION_MODULES.has(module)) return true;
  const last = name.slice(name.lastIndexOf('.') + 1);
  return EXCEPTION_NAME.test(last);
}

function convertInstance(node: PickleInstance, get: Get): unknown {
  const convert = converters.get(node.cls.qualified);
  if (convert !== undefined) {
    const value = convert(node, get);
    if (value !== undefined) return value;
  }
  const args = node.args.map(get);
  if (isExceptionClass(node.cls.module, node.cls.name)) {
    // Celery's JSON form of an exception, so both paths give the same TaskError.
    return { exc_type: node.cls.name, exc_message: args, exc_module: node.cls.module };
  }
  const extra: { kwargs?: Record<string, unknown>; items?: unknown[] } = {};
  if (node.kwargs !== undefined) extra.kwargs = dictToObject(node.kwargs, get);
  if (node.items !== undefined || node.dictItems !== undefined) {
    const items = (node.items ?? []).map(get);
    const dict = node.dictItems;
    if (dict !== undefined)
      for (let i = 0; i < dict.keys.length; i++) items.push([get(dict.keys[i]), get(dict.values[i])]);
    extra.items = items;
  }
  const state = node.state === undefined ? null : get(node.state);
  return new PickledObject(node.cls.module, node.cls.name, args, state, extra);
}
