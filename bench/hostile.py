#!/usr/bin/env python3
"""Hostile targets for the soak run, each on its own loopback port (printed as NAME=PORT):
black_hole accepts and never answers; slow_drip answers one byte a second; reset accepts and
resets; tls_garbage answers a TLS ClientHello with random bytes; endless_body sends a 200
with a body that never ends; ping_flood upgrades to a WebSocket and sends pings without end.
Runs until killed. Only binds 127.0.0.1."""
import asyncio
import base64
import hashlib
import os
import socket
import struct
import sys


async def black_hole(reader, writer):
    try:
        await reader.read(65536)
        await asyncio.sleep(3600)
    finally:
        writer.close()


async def slow_drip(reader, writer):
    try:
        await reader.read(65536)
        for b in b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100000:
            writer.write(bytes([b]))
            await writer.drain()
            await asyncio.sleep(1)
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def reset(reader, writer):
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()


async def tls_garbage(reader, writer):
    try:
        await reader.read(65536)
        writer.write(os.urandom(4096))
        await writer.drain()
        await asyncio.sleep(1)
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def endless_body(reader, writer):
    try:
        await reader.read(65536)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (65536, b"y" * 65536)
        while True:
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def ping_flood(reader, writer):
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        key = b""
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"sec-websocket-key:"):
                key = line.split(b":", 1)[1].strip()
        accept = base64.b64encode(
            hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
        )
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        while True:
            writer.write(b"\x89\x04ping")
            await writer.drain()
    except (ConnectionError, OSError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main():
    servers = []
    for handler in (black_hole, slow_drip, reset, tls_garbage, endless_body, ping_flood):
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        print(f"{handler.__name__}={port}", flush=True)
        servers.append(server)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
