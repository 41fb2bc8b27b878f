"""Compression peer for test/interop/compression-kombu.test.ts: kombu.compression itself.

    compression_peer.py compress NAME     stdin: JSON list of hex bodies
    compression_peer.py decompress MIME   stdin: JSON list of hex bodies

Prints one JSON object: {"content_type": ..., "bodies": [hex, ...]}. Needs python3-kombu,
python3-zstandard and python3-brotli (kombu registers zstd and brotli only when importable).
"""
import json
import sys

from kombu import compression

command, name = sys.argv[1], sys.argv[2]
bodies = [bytes.fromhex(h) for h in json.load(sys.stdin)]
if command == 'compress':
    out = [compression.compress(b, name) for b in bodies]
    content_type = out[0][1] if out else compression.get_encoder(name)[1]
    print(json.dumps({'content_type': content_type, 'bodies': [b.hex() for b, _ in out]}))
elif command == 'decompress':
    print(json.dumps({'content_type': name, 'bodies': [compression.decompress(b, name).hex() for b in bodies]}))
else:
    raise SystemExit(f'unknown command {command}')
