"""Pickle reader peer for test/interop/pickle-encoder-python.test.ts.

Reads one JSON list of hex pickles (written by the Node pickle writer) on stdin, loads each
with Python's own ``pickle.loads`` and writes one JSON line per pickle: the value described
in a form JSON can carry exactly (ints as text, floats as their IEEE bytes, bytes as hex,
dicts as key/value pairs, so key order and types are checked too).
"""
import json
import pickle
import struct
import sys


def describe(v):
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return {'int': str(v)}
    if isinstance(v, float):
        return {'float': struct.pack('>d', v).hex()}
    if isinstance(v, bytes):
        return {'bytes': v.hex()}
    if isinstance(v, list):
        return {'list': [describe(x) for x in v]}
    if isinstance(v, dict):
        return {'dict': [[describe(k), describe(x)] for k, x in v.items()]}
    return {'other': type(v).__module__ + '.' + type(v).__qualname__}


for body in json.load(sys.stdin):
    sys.stdout.write(json.dumps(describe(pickle.loads(bytes.fromhex(body)))) + '\n')
