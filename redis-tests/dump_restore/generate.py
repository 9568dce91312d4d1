#!/usr/bin/env python3
"""Writes redis-tests/dump_restore.txt from template.tpl: each @name@ becomes a
DUMP payload redis-server gave (it must listen on 127.0.0.1:6401) or a hand-built
hostile payload sealed with the right CRC64. The old-encoding lines of the
template were made by old_encodings.py. Then: record.py dump_restore.txt.

    python3 generate.py template.tpl ../dump_restore.txt
"""
import socket, sys
POLY=0x95AC9329AC4BC9B5
def crc64(data, crc=0):
    # reflected Jones CRC64 (Redis)
    rpoly = POLY
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ rpoly if crc & 1 else crc >> 1
    return crc
s=socket.create_connection(("127.0.0.1",6401)); f=s.makefile('rb')
def cmd(*a):
    a=[x if isinstance(x,bytes) else str(x).encode() for x in a]
    s.sendall(b"*%d\r\n"%len(a)+b"".join(b"$%d\r\n%s\r\n"%(len(x),x) for x in a))
    l=f.readline()
    if l[:1]==b'$':
        n=int(l[1:]); 
        if n<0: return None
        d=f.read(n+2); return d[:-2]
    return l.strip()
def esc(b):
    out=''
    for c in b:
        ch=chr(c)
        if ch=='"' : out+='\\"'
        elif ch=='\\': out+='\\\\'
        elif 0x20<=c<0x7f: out+=ch
        else: out+='\\x%02x'%c
    return '"'+out+'"'
cmd("flushall")
# sanity: crc matches redis
cmd("set","n","12345"); p=cmd("dump","n")
assert crc64(p[:-8]).to_bytes(8,'little')==p[-8:], "crc"
L=[]
def w(x): L.append(x)
cmd("rpush","ql",*["element-%d"%i for i in range(300)])
cmd("set","lzf","x"*200)
cmd("sadd","hs",*["m%d"%i for i in range(200)])
cmd("hset","hh",*sum([["f%d"%i,"v%d"%i] for i in range(200)],[]))
cmd("zadd","zs",*sum([[str(i*1.5),"z%d"%i] for i in range(200)],[]))
cmd("rpush","bl","x"*10000, "small")
pay={k:cmd("dump",k) for k in ["ql","lzf","hs","hh","zs","bl"]}
cmd("flushall")
good=pay["lzf"]
body=b"\x00\x05hello"+b"\x0a\x00"
badlp=b"\x10\x0d\x0e\x00\x00\x00\x03\x00\x81f\x02\x81v\x02\xff"+b"\x0a\x00"  # count 3 vs 2
badtype=b"\x06\x05hello"+b"\x0a\x00"
trunc=b"\x00\x45hello"+b"\x0a\x00"
empty_set=b"\x02\x00"+b"\x0a\x00"
dupset=b"\x02\x02\x01a\x01a"+b"\x0a\x00"
newer=b"\x00\x05hello"+b"\x0c\x00"
def seal(b): return b+crc64(b).to_bytes(8,'little')
tpl=open(sys.argv[1]).read()
for k,v in pay.items(): tpl=tpl.replace("@"+k+"@", esc(v))
for k,v in dict(body=seal(body),badlp=seal(badlp),badtype=seal(badtype),trunc=seal(trunc),emptyset=seal(empty_set),dupset=seal(dupset),newer=seal(newer),badcrc=body+b"\x00"*8).items():
    tpl=tpl.replace("@"+k+"@", esc(v))
open(sys.argv[2],'w').write(tpl)
