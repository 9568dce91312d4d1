#!/usr/bin/env python3
"""Appends RESTOREs of hand-built payloads in Redis's pre-7.0 encodings (ziplist,
zipmap, quicklist v1, ZSET v1, LIST) to a template: python3 old_encodings.py FILE."""
import sys
sys.path.insert(0,'/tmp/rdbgen')
POLY=0x95AC9329AC4BC9B5
def crc64(data, crc=0):
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ POLY if crc & 1 else crc >> 1
    return crc
def seal(b, ver=9):
    b=b+ver.to_bytes(2,'little'); return b+crc64(b).to_bytes(8,'little')
def rstr(s):
    assert len(s)<64; return bytes([len(s)])+s
def zl_entry(v, prev):
    p = bytes([prev]) if prev<254 else b"\xfe"+prev.to_bytes(4,'little')
    if isinstance(v,int):
        if 0<=v<=12: e=bytes([0xF1+v])
        elif -128<=v<128: e=b"\xfe"+v.to_bytes(1,'little',signed=True)
        elif -32768<=v<32768: e=b"\xc0"+v.to_bytes(2,'little',signed=True)
        elif -(1<<23)<=v<(1<<23): e=b"\xf0"+v.to_bytes(3,'little',signed=True)
        elif -(1<<31)<=v<(1<<31): e=b"\xd0"+v.to_bytes(4,'little',signed=True)
        else: e=b"\xe0"+v.to_bytes(8,'little',signed=True)
    else:
        assert len(v)<64; e=bytes([len(v)])+v
    return p+e
def ziplist(items):
    body=b""; prev=0; tail=10
    for it in items:
        tail=10+len(body)
        ent=zl_entry(it,prev); body+=ent; prev=len(ent)
    total=10+len(body)+1
    return total.to_bytes(4,'little')+tail.to_bytes(4,'little')+len(items).to_bytes(2,'little')+body+b"\xff"
def zipmap(pairs):
    b=bytes([len(pairs)])
    for f,v in pairs: b+=bytes([len(f)])+f+bytes([len(v)])+b"\x00"+v
    return b+b"\xff"
def esc(b):
    out=''
    for c in b:
        ch=chr(c)
        if ch=='"' : out+='\\"'
        elif ch=='\\': out+='\\\\'
        elif 0x20<=c<0x7f: out+=ch
        else: out+='\\x%02x'%c
    return '"'+out+'"'
P={}
P['zllist']=seal(b"\x0a"+rstr(ziplist([b"a",5,-100,1000,100000,-10000000,5000000000,b"tail"])))
P['zlhash']=seal(b"\x0d"+rstr(ziplist([b"f1",b"v1",b"n",42])))
P['zlzset']=seal(b"\x0c"+rstr(ziplist([b"a",1,b"b",b"2.5",b"c",b"inf"])))
P['zipmap']=seal(b"\x09"+rstr(zipmap([(b"f",b"v"),(b"g",b"hello")])))
P['qlv1']=seal(b"\x0e\x02"+rstr(ziplist([b"a",b"b"]))+rstr(ziplist([1,2,3])))
P['zsetv1']=seal(b"\x03\x02\x01a\x031.5\x01b\xfe")
P['listv0']=seal(b"\x01\x02\x01x\xc0\x07")
P['zlbadtail']=seal(b"\x0a"+rstr(bytearray(ziplist([b"a",b"b"]))[:4]+b"\x00\x00\x00\x00"+ziplist([b"a",b"b"])[8:]))
P['zlbadprev']=seal(b"\x0a"+rstr(ziplist([b"a",b"b"])[:13]+b"\x05"+ziplist([b"a",b"b"])[14:]))
lines=["# Encodings of older Redis versions (RDB 9): ziplist list, hash and zset,",
"# zipmap, quicklist of ziplists, ZSET with text scores, LIST of strings.",
"> RESTORE zllist 0 %s"%esc(P['zllist']),"> LRANGE zllist 0 -1",
"> RESTORE zlhash 0 %s"%esc(P['zlhash']),"> HGET zlhash n","> HGET zlhash f1","> OBJECT ENCODING zlhash",
"> RESTORE zlzset 0 %s"%esc(P['zlzset']),"> ZRANGE zlzset 0 -1 WITHSCORES","> OBJECT ENCODING zlzset",
"> RESTORE zipmap 0 %s"%esc(P['zipmap']),"> HGET zipmap g","> HLEN zipmap",
"> RESTORE qlv1 0 %s"%esc(P['qlv1']),"> LRANGE qlv1 0 -1",
"> RESTORE zsetv1 0 %s"%esc(P['zsetv1']),"> ZRANGE zsetv1 0 -1 WITHSCORES",
"> RESTORE listv0 0 %s"%esc(P['listv0']),"> LRANGE listv0 0 -1",
"# A ziplist whose tail offset or previous-entry length is wrong.",
"> RESTORE zlbadtail 0 %s"%esc(P['zlbadtail']),
"> RESTORE zlbadprev 0 %s"%esc(P['zlbadprev']),
]
open(sys.argv[1],'a').write("\n".join(lines)+"\n")
