"""Pickle peer for test/interop/pickle-python.test.ts.

Reads one JSON list of value descriptions on stdin, builds each Python value, and writes
one JSON line per value: its pickles (protocols 0, 2, 4, 5, hex) and the plain form the
Node reader must give, computed here with kombu's own JSON encoder for dates.
"""
import datetime
import decimal
import json
import math
import pickle
import sys
import uuid

import celery.exceptions
from kombu.utils.json import JSONEncoder

EXCEPTIONS = {
    'ValueError': ValueError,
    'KeyError': KeyError,
    'RuntimeError': RuntimeError,
    'Ignore': celery.exceptions.Ignore,
}
SAFE = 2 ** 53 - 1


def build(d):
    if d is None or isinstance(d, (bool, str, int, float)):
        return d
    if isinstance(d, list):
        return [build(x) for x in d]
    (tag, v), = [(k, d[k]) for k in d if k != 'tz' and k != 'args']
    if tag == 'int':
        return int(v)
    if tag == 'float':
        return float(v)
    if tag == 'bytes':
        return bytes.fromhex(v)
    if tag == 'bytearray':
        return bytearray.fromhex(v)
    if tag == 'list':
        return [build(x) for x in v]
    if tag == 'tuple':
        return tuple(build(x) for x in v)
    if tag == 'set':
        return set(build(x) for x in v)
    if tag == 'frozenset':
        return frozenset(build(x) for x in v)
    if tag == 'dict':
        return {build(k): build(x) for k, x in v}
    if tag == 'datetime':
        tz = d.get('tz')
        tzinfo = None if tz is None else datetime.timezone(datetime.timedelta(minutes=tz))
        return datetime.datetime(*v, tzinfo=tzinfo)
    if tag == 'date':
        return datetime.date(*v)
    if tag == 'time':
        return datetime.time(*v)
    if tag == 'timedelta':
        return datetime.timedelta(*v)
    if tag == 'decimal':
        return decimal.Decimal(v)
    if tag == 'uuid':
        return uuid.UUID(v)
    if tag == 'exc':
        return EXCEPTIONS[v](*[build(a) for a in d['args']])
    if tag == 'shared':
        x = build(v)
        return [x, x]
    raise ValueError(tag)


def expected(x):
    """The plain form: JSON, with markers for what JSON cannot say."""
    if x is None or isinstance(x, (bool, str)):
        return x
    if isinstance(x, int):
        return x if -SAFE <= x <= SAFE else {'$big': str(x)}
    if isinstance(x, float):
        if math.isnan(x):
            return {'$float': 'nan'}
        if math.isinf(x):
            return {'$float': 'inf' if x > 0 else '-inf'}
        if x == 0 and math.copysign(1, x) < 0:
            return {'$float': '-0'}
        return x
    if isinstance(x, (bytes, bytearray)):
        return {'$bytes': bytes(x).hex()}
    if isinstance(x, (list, tuple, set, frozenset)):
        return [expected(i) for i in x]
    if isinstance(x, dict):
        return {json.dumps(k) if not isinstance(k, str) else k: expected(v) for k, v in x.items()}
    if isinstance(x, BaseException):
        return {'exc_type': type(x).__qualname__, 'exc_message': [expected(a) for a in x.args],
                'exc_module': type(x).__module__}
    if isinstance(x, datetime.timedelta):
        return x.total_seconds()
    return JSONEncoder().default(x)


for d in json.load(sys.stdin):
    value = build(d)
    print(json.dumps({
        'pickles': {p: pickle.dumps(value, protocol=p).hex() for p in (0, 2, 4, 5)},
        'expected': expected(value),
    }, allow_nan=False))
