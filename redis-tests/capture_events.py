#!/usr/bin/env python3
"""Prints the keyspace events a redis-server raises for commands, as the
`check` call of tests/notifications.rs that expects them.

    python3 redis-tests/capture_events.py PORT CLASSES 'CMD 1' 'CMD 2' ...

It runs FLUSHALL and CONFIG SET notify-keyspace-events CLASSES on the server at
127.0.0.1:PORT, then the commands in order on one connection (each split at
spaces, as the test splits them) beside a PSUBSCRIBE __keyevent@* subscriber,
and prints the events that arrived. Standard library only."""
import socket, sys
port=int(sys.argv[1]); classes=sys.argv[2]; cmds=sys.argv[3:]
def enc(args):
    out=b"*%d\r\n"%len(args)
    for a in args:
        a=a.encode(); out+=b"$%d\r\n%s\r\n"%(len(a),a)
    return out
class R:
    def __init__(s,sock): s.s=sock; s.buf=b""
    def line(s):
        while b"\r\n" not in s.buf: s.buf+=s.s.recv(65536)
        l,s.buf=s.buf.split(b"\r\n",1); return l
    def read(s):
        l=s.line(); t=l[:1]
        if t==b"*":
            n=int(l[1:]); return None if n<0 else [s.read() for _ in range(n)]
        if t==b"$":
            n=int(l[1:])
            if n<0: return None
            while len(s.buf)<n+2: s.buf+=s.s.recv(65536)
            d=s.buf[:n]; s.buf=s.buf[n+2:]; return d
        return l
c=socket.create_connection(("127.0.0.1",port)); rc=R(c)
sub=socket.create_connection(("127.0.0.1",port)); rs=R(sub)
c.sendall(enc(["FLUSHALL"])+enc(["CONFIG","SET","notify-keyspace-events",classes])); rc.read(); rc.read()
sub.sendall(enc(["PSUBSCRIBE","__keyevent@*"])); rs.read()
for cmd in cmds:
    c.sendall(enc(cmd.split(' '))); r=rc.read(); print("//", cmd, "->", r, file=sys.stderr)
c.sendall(enc(["PUBLISH","__keyevent@0__:end","x"])); rc.read()
out=[]
while True:
    m=rs.read(); ev=m[2].decode().split(":",1)[1]; db=m[2].decode().split("@")[1].split("_")[0]
    if ev=="end": break
    k=m[3].decode()
    out.append(f'("{ev}", "{k}")' if db=="0" else f'("{ev}@{db}", "{k}")')
cmdlist=", ".join('"%s"' % c for c in cmds)
print('check(&server, "%s", &[%s], &[%s]).await;' % (classes, cmdlist, ", ".join(out)))
