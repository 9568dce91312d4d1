#!/usr/bin/env python3
"""Writes redis-tests/dump_streams.txt from template.tpl: each @name@ becomes a
stream DUMP payload redis-server 7.0 gave (it must listen on 127.0.0.1:6401),
or one of those payloads with a few bytes changed and the CRC64 made right
again (hostile payloads that redis-server refuses even without deep
sanitization). Then: record.py dump_streams.txt.

    python3 generate.py template.tpl ../dump_streams.txt
"""
import re, socket, sys
POLY = 0x95AC9329AC4BC9B5


def crc64(data, crc=0):
    # reflected Jones CRC64 (Redis)
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ POLY if crc & 1 else crc >> 1
    return crc


s = socket.create_connection(("127.0.0.1", 6401))
f = s.makefile('rb')


def cmd(*a):
    a = [x if isinstance(x, bytes) else str(x).encode() for x in a]
    s.sendall(b"*%d\r\n" % len(a) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in a))
    l = f.readline()
    if l[:1] == b'$':
        n = int(l[1:])
        if n < 0:
            return None
        d = f.read(n + 2)
        return d[:-2]
    if l[:1] == b'*':
        for _ in range(int(l[1:])):
            skip()
    return l.strip()


def skip():
    l = f.readline()
    if l[:1] == b'$' and int(l[1:]) >= 0:
        f.read(int(l[1:]) + 2)
    elif l[:1] == b'*':
        for _ in range(max(int(l[1:]), 0)):
            skip()


def esc(b):
    out = ''
    for c in b:
        ch = chr(c)
        if ch == '"':
            out += '\\"'
        elif ch == '\\':
            out += '\\\\'
        elif 0x20 <= c < 0x7f:
            out += ch
        else:
            out += '\\x%02x' % c
    return '"' + out + '"'


def reseal(body):
    return body + crc64(body).to_bytes(8, 'little')


def idkey(ms, seq):
    return ms.to_bytes(8, 'big') + seq.to_bytes(8, 'big')


cmd("flushall")
# Entries of several shapes, one deleted; a group with pending entries of
# two consumers (one claimed, delivered twice), one without; a group at the end.
for c in ["XADD s 1-1 a 1 b 2", "XADD s 1-2 a 3 b 4", "XADD s 2-0 c hello",
          "XADD s 3-5 a -7 b 99999999999", "XADD s 4-0 a x b " + "y" * 100,
          "XDEL s 1-2", "XGROUP CREATE s g1 0", "XGROUP CREATE s g2 $",
          "XREADGROUP GROUP g1 alice COUNT 2 STREAMS s >",
          "XREADGROUP GROUP g1 bob COUNT 2 STREAMS s >",
          "XCLAIM s g1 carol 0 2-0", "XACK s g1 1-1"]:
    cmd(*c.split(' '))
# Three nodes, an exact trim inside the first, a group part way.
for i in range(1, 251):
    cmd("XADD", "big", "%d-0" % i, "f", "v%d" % i)
for c in ["XTRIM big MAXLEN 140", "XGROUP CREATE big g 150-0",
          "XGROUP CREATE e g $ MKSTREAM", "XADD e 5-0 f v", "XDEL e 5-0"]:
    cmd(*c.split(' '))
pay = {k: cmd("dump", k) for k in ["s", "big", "e"]}
cmd("flushall")

p = pay["s"][:-8]
# bob's pending ID (3-5) made one the group has not.
at = p.index(b"\x03bob") + 4 + 8 + 1
assert p[at:at + 16] == idkey(3, 5)
notpel = p[:at] + idkey(9, 9) + p[at + 16:]
# carol renamed alice: a consumer twice.
dupcons = p.replace(b"\x05carol", b"\x05alice")
# The node key one byte short.
assert p[1:3] == b"\x01\x10"
shortkey = p[:2] + b"\x0f" + p[3:18] + p[19:]
# Cut inside the groups.
cut = p[:len(p) - 30] + p[-2:]
hostile = dict(notpel=notpel, dupcons=dupcons, shortkey=shortkey, cut=cut)

table = {k: esc(v) for k, v in pay.items()}
table.update({k: esc(reseal(v)) for k, v in hostile.items()})
# One pass: a payload's own bytes may look like a placeholder.
tpl = re.sub(r"@(\w+)@", lambda m: table[m.group(1)], open(sys.argv[1]).read())
open(sys.argv[2], 'w').write(tpl)
