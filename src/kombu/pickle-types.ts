/**
 * The Python value types a pickle turns into plain data, each as kombu's JSON encoder
 * writes it (`kombu.utils.json.JSONEncoder`) so that a result reads the same whichever
 * serializer the worker used:
 *
 * - `datetime.datetime` → ISO 8601 text (`2024-01-02T03:04:05.000006Z`; `+00:00` written
 *   `Z`; other offsets as `+05:30`; naive without offset). Time zones: `datetime.timezone`,
 *   `pytz` (UTC and zones with their pickled offset), `zoneinfo.ZoneInfo` (offset looked
 *   up with Intl). A datetime with another tzinfo stays a {@link PickledObject}.
 * - `datetime.date` → `YYYY-MM-DDT00:00:00` (kombu writes a date as midnight).
 * - `datetime.time` → `HH:MM:SS[.ffffff][+HH:MM]`.
 * - `datetime.timedelta` → its total seconds, a number (kombu's JSON has no form for it).
 * - `decimal.Decimal`, `uuid.UUID` → their text.
 * - `collections.OrderedDict`, `collections.defaultdict` → an object; `collections.deque` → an array.
 * - `celery.utils.serialization.UnpickleableExceptionWrapper` → the exception it wraps,
 *   as `{exc_type, exc_message, exc_module}`.
 *
 * @module
 */
import { dictToObject, PickleInstance, PyDict, setPickleConverters } from './pickle-values.js';

type Get = (value: unknown) => unknown;

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

function stateBytes(value: unknown, length: number): Uint8Array | undefined {
  return value instanceof Uint8Array && value.length === length ? value : undefined;
}

function micros(us: number): string {
  return us === 0 ? '' : `.${pad(us, 6)}`;
}

/** Python's `utcoffset` text: `+HH:MM[:SS[.ffffff]]`. */
function offsetText(seconds: number): string {
  const sign = seconds < 0 ? '-' : '+';
  const total = Math.abs(seconds);
  const whole = Math.floor(total);
  const us = Math.round((total - whole) * 1e6);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = whole % 60;
  return `${sign}${pad(h)}:${pad(m)}${s !== 0 || us !== 0 ? `:${pad(s)}${micros(us)}` : ''}`;
}

function timedeltaSeconds(value: unknown): number | undefined {
  if (!(value instanceof PickleInstance) || value.cls.qualified !== 'datetime.timedelta') return undefined;
  const [days = 0, seconds = 0, us = 0] = value.args;
  if (typeof days !== 'number' || typeof seconds !== 'number' || typeof us !== 'number') return undefined;
  // One division of the whole microseconds, as Python's total_seconds() rounds.
  return ((days * 86400 + seconds) * 1e6 + us) / 1e6;
}

const zoneFormats = new Map<string, Intl.DateTimeFormat | null>();

/** The UTC offset in seconds of an IANA zone at a wall-clock time (fold 0), via Intl. */
function zoneOffset(zone: string, wallMs: number): number | undefined {
  let format = zoneFormats.get(zone);
  if (format === undefined) {
    try {
      format = new Intl.DateTimeFormat('en-US', {
        timeZone: zone,
        hourCycle: 'h23',
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        second: 'numeric',
      });
    } catch {
      format = null;
    }
    if (zoneFormats.size < 1000) zoneFormats.set(zone, format);
  }
  if (format === null) return undefined;
  const fmt = format;
  const offsetAt = (utcMs: number): number => {
    const parts = new Map(fmt.formatToParts(new Date(utcMs)).map((p) => [p.type, Number(p.value)]));
    const asUtc = Date.UTC(
      parts.get('year') ?? 1970,
      (parts.get('month') ?? 1) - 1,
      parts.get('day') ?? 1,
      parts.get('hour') ?? 0,
      parts.get('minute') ?? 0,
      parts.get('second') ?? 0,
    );
    return Math.round((asUtc - Math.floor(utcMs / 1000) * 1000) / 1000);
  };
  const first = offsetAt(wallMs);
  return offsetAt(wallMs - first * 1000);
}

/**
 * The offset in seconds of a pickled tzinfo at a wall-clock time: `null` for none (naive),
 * `undefined` for a tzinfo this reader does not know.
 */
function tzOffset(tz: unknown, wallMs: number | undefined): number | null | undefined {
  if (tz === undefined || tz === null) return null;
  if (!(tz instanceof PickleInstance)) return undefined;
  const [first, second] = tz.args;
  switch (tz.cls.qualified) {
    case 'datetime.timezone':
      return timedeltaSeconds(first);
    case 'pytz._UTC':
    case 'dateutil.tz.tz.tzutc':
      return 0;
    case 'pytz._p':
      if (typeof second === 'number') return second;
      if (first === 'UTC') return 0;
      return typeof first === 'string' && wallMs !== undefined ? zoneOffset(first, wallMs) : undefined;
    case 'zoneinfo.ZoneInfo._unpickle':
      return typeof first === 'string' && wallMs !== undefined ? zoneOffset(first, wallMs) : undefined;
    default:
      return undefined;
  }
}

function datetimeText(node: PickleInstance): string | undefined {
  const b = stateBytes(node.args[0], 10);
  if (b === undefined) return undefined;
  const [y1 = 0, y2 = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, u1 = 0, u2 = 0, u3 = 0] = b;
  const year = y1 * 256 + y2;
  const month = mo & 0x7f; // the high bit is `fold`
  const us = (u1 << 16) | (u2 << 8) | u3;
  const wall = Date.UTC(year, month - 1, d, h, mi, s);
  const offset = tzOffset(node.args[1], wall);
  if (offset === undefined) return undefined;
  const text = `${pad(year, 4)}-${pad(month)}-${pad(d)}T${pad(h)}:${pad(mi)}:${pad(s)}${micros(us)}`;
  if (offset === null) return text;
  return offset === 0 ? `${text}Z` : `${text}${offsetText(offset)}`;
}

function dateText(node: PickleInstance): string | undefined {
  const b = stateBytes(node.args[0], 4);
  if (b === undefined) return undefined;
  const [y1 = 0, y2 = 0, mo = 0, d = 0] = b;
  return `${pad(y1 * 256 + y2, 4)}-${pad(mo)}-${pad(d)}T00:00:00`;
}

function timeText(node: PickleInstance): string | undefined {
  const b = stateBytes(node.args[0], 6);
  if (b === undefined) return undefined;
  const [h = 0, mi = 0, s = 0, u1 = 0, u2 = 0, u3 = 0] = b;
  // A time's utcoffset() has no date: zones that need one give no offset, as in Python.
  const offset = tzOffset(node.args[1], undefined);
  const text = `${pad(h & 0x7f)}:${pad(mi)}:${pad(s)}${micros((u1 << 16) | (u2 << 8) | u3)}`;
  return offset === null || offset === undefined ? text : `${text}${offsetText(offset)}`;
}

function uuidText(node: PickleInstance): string | undefined {
  // State: {'int': n} (Python 3.11's __getstate__) or (None, {'int': n}) for slots.
  let state = node.state;
  if (Array.isArray(state) && state.length === 2) state = state[1];
  let n: unknown = node.args[0];
  if (state instanceof PyDict) n = state.values[state.keys.indexOf('int')];
  if (typeof n !== 'number' && typeof n !== 'bigint') return undefined;
  const hex = BigInt(n).toString(16).padStart(32, '0');
  if (hex.length !== 32) return undefined;
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function mappingObject(node: PickleInstance, get: Get): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  // Older pickles pass the items as a list of pairs; newer ones SETITEMS them.
  for (const arg of node.args) {
    const pairs = get(arg);
    if (!Array.isArray(pairs)) continue;
    const dict = new PyDict();
    for (const pair of pairs) {
      if (Array.isArray(pair) && pair.length === 2) {
        dict.keys.push(pair[0]);
        dict.values.push(pair[1]);
      }
    }
    dictToObject(dict, (v) => v, out);
  }
  if (node.dictItems !== undefined) dictToObject(node.dictItems, get, out);
  return out;
}

function dequeArray(node: PickleInstance, get: Get): unknown[] | undefined {
  const first = node.args.length === 0 ? [] : get(node.args[0]);
  if (!Array.isArray(first)) return undefined;
  return [...first, ...(node.items ?? []).map(get)];
}

function wrappedException(node: PickleInstance, get: Get): unknown {
  const [module, name, args] = node.args;
  if (typeof module !== 'string' || typeof name !== 'string') return undefined;
  const excArgs = get(args);
  return { exc_type: name, exc_message: Array.isArray(excArgs) ? excArgs : [], exc_module: module };
}

const SCALARS: ReadonlyMap<string, (node: PickleInstance) => unknown> = new Map<
  string,
  (node: PickleInstance) => unknown
>([
  ['datetime.datetime', datetimeText],
  ['datetime.date', dateText],
  ['datetime.time', timeText],
  ['datetime.timedelta', timedeltaSeconds],
  ['decimal.Decimal', (node) => (typeof node.args[0] === 'string' ? node.args[0] : undefined)],
  ['uuid.UUID', uuidText],
]);

setPickleConverters(
  new Map<string, (node: PickleInstance, get: Get) => unknown>([
    ...SCALARS,
    ['collections.OrderedDict', mappingObject],
    // defaultdict's argument is its default factory, skipped as it is not a list of pairs.
    ['collections.defaultdict', mappingObject],
    ['collections.deque', dequeArray],
    ['celery.utils.serialization.UnpickleableExceptionWrapper', wrappedException],
  ]),
  new Set(SCALARS.keys()),
);
