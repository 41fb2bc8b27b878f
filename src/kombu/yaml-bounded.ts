/**
 * YAML decoding under {@link DecodeLimits}: js-yaml parses to events (with its own depth
 * limit set to `maxDepth`), the events are counted (collections, and the collections each
 * alias stands for once expanded) and only then constructed, so an alias bomb is refused
 * before anything walks it.
 *
 * @module
 */
import { CORE_SCHEMA, constructFromEvents, EVENT_ID, parseEvents, YAMLException } from 'js-yaml';
import type { Event } from 'js-yaml';
import { DecodeError } from '../errors.js';
import type { DecodeContext } from './decode-limits.js';
import { limitError } from './decode-limits.js';

/**
 * Loads one YAML document with the core schema (plain data only: a `!!python/...` tag is an
 * unknown tag and fails).
 *
 * @throws {@link DecodeLimitError} `TOO_DEEP` (nesting, or an alias inside its own anchor),
 * `TOO_MANY_ALIASES` (aliases expanding past `maxAliasExpansion` collections),
 * `BODY_TOO_LARGE` (more than `maxCollections`); js-yaml's error for malformed text.
 * @example
 * ```ts
 * yamlLoadBounded('a: [1, 2]\n', { limits: DEFAULT_DECODE_LIMITS }); // { a: [1, 2] }
 * ```
 */
export function yamlLoadBounded(text: string, ctx: DecodeContext): unknown {
  const { maxDepth } = ctx.limits;
  let events: Event[];
  try {
    // js-yaml counts the document and the scalar at the bottom as levels too: + 2 lets
    // exactly maxDepth collections through.
    events = parseEvents(text, {
      maxDepth: Number.isFinite(maxDepth) ? maxDepth + 2 : Number.MAX_SAFE_INTEGER,
    });
  } catch (err) {
    if (err instanceof YAMLException && /maxDepth/.test(err.message)) {
      throw limitError(
        ctx,
        'TOO_DEEP',
        'maxDepth',
        `YAML body nested more than ${maxDepth} levels deep`,
        err,
      );
    }
    throw err;
  }
  checkEvents(events, text, ctx);
  const documents = constructFromEvents(events, { source: text, schema: CORE_SCHEMA });
  if (documents.length !== 1) {
    throw new DecodeError(`expected a single YAML document, found ${documents.length}`);
  }
  return documents[0];
}

interface Open {
  /** The anchor of this collection, or null. */
  anchor: string | null;
  /** Collections under it, itself included, aliases expanded. */
  size: number;
}

function checkEvents(events: readonly Event[], text: string, ctx: DecodeContext): void {
  const { maxAliasExpansion, maxCollections } = ctx.limits;
  const anchors = new Map<string, number>();
  const open: Open[] = [];
  const openAnchors = new Set<string>();
  let collections = 0;
  let expansion = 0;
  const name = (start: number, end: number): string | null => (start < 0 ? null : text.slice(start, end));
  for (const event of events) {
    switch (event.type) {
      case EVENT_ID.DOCUMENT:
        open.push({ anchor: null, size: 0 });
        break;
      case EVENT_ID.SEQUENCE:
      case EVENT_ID.MAPPING: {
        if (++collections > maxCollections) {
          throw limitError(ctx, 'BODY_TOO_LARGE', 'maxCollections', 'YAML body holds too many lists/maps');
        }
        const anchor = name(event.anchorStart, event.anchorEnd);
        if (anchor !== null) openAnchors.add(anchor);
        open.push({ anchor, size: 1 });
        break;
      }
      case EVENT_ID.SCALAR: {
        const anchor = name(event.anchorStart, event.anchorEnd);
        if (anchor !== null) anchors.set(anchor, 0);
        break;
      }
      case EVENT_ID.ALIAS: {
        const anchor = text.slice(event.anchorStart, event.anchorEnd);
        if (openAnchors.has(anchor)) {
          throw limitError(ctx, 'TOO_DEEP', 'maxDepth', `YAML alias *${anchor} refers to itself (a cycle)`);
        }
        const size = anchors.get(anchor) ?? 0;
        expansion += size;
        if (expansion > maxAliasExpansion) {
          throw limitError(
            ctx,
            'TOO_MANY_ALIASES',
            'maxAliasExpansion',
            'YAML aliases expand to too many lists/maps',
          );
        }
        const parent = open[open.length - 1];
        if (parent !== undefined) parent.size += size;
        break;
      }
      case EVENT_ID.POP: {
        const closed = open.pop();
        if (closed === undefined) break;
        if (closed.anchor !== null) {
          openAnchors.delete(closed.anchor);
          anchors.set(closed.anchor, closed.size);
        }
        const parent = open[open.length - 1];
        if (parent !== undefined) parent.size += closed.size;
        break;
      }
      default:
        break;
    }
  }
}
