#!/usr/bin/python3
"""asyncio TCP peers for e2e.preload_python: run under dpm-run (the program under test) and
directly on the kernel (its counterpart in "wan"). Standard library only.

  asyncio_peer.py server ADDR PORT READY    asyncio.start_server echo server: every connection's
                                            bytes back until its EOF; writes READY when listening,
                                            and one line per connection to stdout:
                                            "served PEER_IP:PEER_PORT on LOCAL_IP:LOCAL_PORT BYTES"
  asyncio_peer.py client ADDR PORT SIZE...  one connection per SIZE, all at once: SIZE random bytes,
                                            EOF, read the echo to EOF, compare sha256; prints
                                            "client LOCAL_IP:LOCAL_PORT SIZE sha256-ok|MISMATCH"
                                            and the event loop's selector
  asyncio_peer.py refused ADDR PORT         open_connection to a closed port; prints what it raised
                                            and its errno
Exit status: 0 when every exchange matched (client) or the error was ConnectionRefusedError
(refused); 1 otherwise.
"""
import asyncio
import errno
import hashlib
import os
import sys


async def serve(addr, port, ready):
    async def handle(reader, writer):
        n = 0
        while True:
            data = await reader.read(65536)
            if not data:
                break
            n += len(data)
            writer.write(data)
            await writer.drain()
        peer = writer.get_extra_info("peername")
        local = writer.get_extra_info("sockname")
        print("served %s:%d on %s:%d %d" % (peer[0], peer[1], local[0], local[1], n), flush=True)
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(handle, addr, int(port))
    with open(ready + ".tmp", "w") as f:
        f.write("%s:%d\n" % server.sockets[0].getsockname())
    os.rename(ready + ".tmp", ready)
    async with server:
        await server.serve_forever()


async def exchange(addr, port, size):
    reader, writer = await asyncio.open_connection(addr, int(port))
    local = writer.get_extra_info("sockname")
    payload = os.urandom(size)

    async def send():
        # In pieces, so the event loop waits for writability on a full buffer.
        for i in range(0, size, 100000):
            writer.write(payload[i:i + 100000])
            await writer.drain()
        writer.write_eof()

    async def receive():
        got = hashlib.sha256()
        n = 0
        while True:
            data = await reader.read(65536)
            if not data:
                return got.hexdigest(), n
            got.update(data)
            n += len(data)

    _, (digest, n) = await asyncio.gather(send(), receive())
    writer.close()
    await writer.wait_closed()
    ok = digest == hashlib.sha256(payload).hexdigest() and n == size
    print("client %s:%d %d %s" % (local[0], local[1], size, "sha256-ok" if ok else "MISMATCH (%d bytes back)" % n),
          flush=True)
    return ok


async def clients(addr, port, sizes):
    print("selector %s" % type(asyncio.get_running_loop()._selector).__name__, flush=True)
    results = await asyncio.gather(*(exchange(addr, port, int(s)) for s in sizes))
    return 0 if all(results) else 1


async def refused(addr, port):
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(addr, int(port)), 30)
    except ConnectionRefusedError as e:
        print("refused ConnectionRefusedError errno %s" % errno.errorcode.get(e.errno, e.errno), flush=True)
        return 0 if e.errno == errno.ECONNREFUSED else 1
    except Exception as e:  # reported, and a failure
        print("refused %s %r" % (type(e).__name__, e), flush=True)
        return 1
    writer.close()
    print("refused: connected (nobody should listen there)", flush=True)
    return 1


def main(argv):
    if len(argv) >= 5 and argv[1] == "server":
        return asyncio.run(serve(argv[2], argv[3], argv[4])) or 0
    if len(argv) >= 5 and argv[1] == "client":
        return asyncio.run(clients(argv[2], argv[3], argv[4:]))
    if len(argv) == 4 and argv[1] == "refused":
        return asyncio.run(refused(argv[2], argv[3]))
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
