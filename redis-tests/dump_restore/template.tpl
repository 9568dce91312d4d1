# DUMP and RESTORE: payloads of every type and encoding compared byte for
# byte with redis-server 7.0.15's (where its encoding is deterministic),
# RESTORE of redis-server's own payloads, the options and every error.
# Generated from a template by a script that DUMPs redis-server's values.
> DUMP nokey
> SET s hello
> DUMP s
> SET n 12345
> DUMP n
> SET neg -7
> DUMP neg
> SET big 123456789012
> DUMP big
> SET raw21 abcdefghijklmnopqrstuvwxyz0123456789
> DUMP raw21
> SET empty ""
> DUMP empty
> RPUSH l a 1 -5 300 70000 hello -4096 4095 -32769 8388608 -2147483649 9223372036854775807
> DUMP l
> SADD i16 3 1 2
> DUMP i16
> SADD i32 100000 -1
> DUMP i32
> SADD i64 5000000000 1
> DUMP i64
> HSET h f v num 42 long abcdefghijklmnopqrstuvwxyzabcd
> DUMP h
# A hashtable's order is its own: one pair keeps the bytes comparable.
> HSET ht long abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz
> OBJECT ENCODING ht
> DUMP ht
> SADD one hello
> DUMP one
> ZADD z 1 a 2.5 b -3 c 0.1 d 1e20 e inf f -inf g 4503599627370496 h
> DUMP z
> CONFIG SET zset-max-listpack-entries 2
> ZADD zl 1 a 2 b 3 c 1.5 d
> OBJECT ENCODING zl
> DUMP zl
> CONFIG SET zset-max-listpack-entries 128
> CONFIG SET list-max-listpack-size 3
> RPUSH q a b c d e f g
> DUMP q
> CONFIG SET list-max-listpack-size -2
# RESTORE of what DUMP gave, under another name, and of redis-server's
# payloads for big values (quicklist, LZF, hashtable encodings, plain node).
> RESTORE s2 0 @body@
> GET s2
> RESTORE ql 0 @ql@
> LLEN ql
> LINDEX ql 299
> RESTORE lzf 0 @lzf@
> STRLEN lzf
> GETRANGE lzf 0 4
> RESTORE hs 0 @hs@
> SCARD hs
> SISMEMBER hs m199
> OBJECT ENCODING hs
> RESTORE hh 0 @hh@
> HLEN hh
> HGET hh f150
> OBJECT ENCODING hh
> RESTORE zs 0 @zs@
> ZCARD zs
> ZSCORE zs z3
> ZRANGE zs 0 2 WITHSCORES
> OBJECT ENCODING zs
> RESTORE bl 0 @bl@
> LLEN bl
> STRLEN bl
> LINDEX bl 1
> DUMP zs
# Options and errors.
> RESTORE s2 0 @body@
> RESTORE s2 0 @body@ REPLACE
> GET s2
> RESTORE t 100000 @body@
> TTL t
> RESTORE t2 4102444800000 @body@ ABSTTL
> PEXPIRETIME t2
> RESTORE gone 1 @body@ ABSTTL
> EXISTS gone
> RESTORE s2 1 @body@ ABSTTL REPLACE
> EXISTS s2
> RESTORE idle 0 @body@ IDLETIME 1000
> OBJECT IDLETIME idle
> RESTORE fq 0 @body@ FREQ 5
> EXISTS fq
> RESTORE x 0 @body@ IDLETIME -1
> RESTORE x 0 @body@ IDLETIME abc
> RESTORE x 0 @body@ FREQ 256
> RESTORE x 0 @body@ FREQ -1
> RESTORE x 0 @body@ IDLETIME 1 FREQ 1
> RESTORE x 0 @body@ FREQ 1 IDLETIME 1
> RESTORE x 0 @body@ IDLETIME
> RESTORE x 0 @body@ BOGUS
> RESTORE x -1 @body@
> RESTORE x abc @body@
> RESTORE x 0 @badcrc@
> RESTORE x 0 @newer@
> RESTORE x 0 short
> RESTORE x 0 ""
# A listpack whose total-bytes header is wrong (latchkey validates deeper than
# Redis's default shallow check: counts, back-lengths, encodings).
> RESTORE x1 0 @badlp@
> RESTORE x2 0 @badtype@
> RESTORE x3 0 @trunc@
> RESTORE x4 0 @emptyset@
> RESTORE x5 0 @dupset@
> EXISTS x x1 x2 x3 x4 x5
> SET busy 1
> RESTORE busy 0 @badcrc@
> RESTORE busy -1 @body@ REPLACE
> GET busy
> RESTORE
> DUMP a b
# Encodings of older Redis versions (RDB 9): ziplist list, hash and zset,
# zipmap, quicklist of ziplists, ZSET with text scores, LIST of strings.
> RESTORE zllist 0 "\x0a22\x00\x00\x00+\x00\x00\x00\x08\x00\x00\x01a\x03\xf6\x02\xfe\x9c\x03\xc0\xe8\x03\x04\xf0\xa0\x86\x01\x05\xd0\x80ig\xff\x06\xe0\x00\xf2\x05*\x01\x00\x00\x00\x0a\x04tail\xff\x09\x00\x09,\x16\xa6\xed\xa4'\xc1"
> LRANGE zllist 0 -1
> RESTORE zlhash 0 "\x0d\x19\x19\x00\x00\x00\x15\x00\x00\x00\x04\x00\x00\x02f1\x04\x02v1\x04\x01n\x03\xfe*\xff\x09\x00\xcf\x8d\xd6\xfc\x16\x92f@"
> HGET zlhash n
> HGET zlhash f1
> OBJECT ENCODING zlhash
> RESTORE zlzset 0 "\x0c  \x00\x00\x00\x1a\x00\x00\x00\x06\x00\x00\x01a\x03\xf2\x02\x01b\x03\x032.5\x05\x01c\x03\x03inf\xff\x09\x00>\xa8\xf0:\xe4[\x88\x07"
> ZRANGE zlzset 0 -1 WITHSCORES
> OBJECT ENCODING zlzset
> RESTORE zipmap 0 "\x09\x10\x02\x01f\x01\x00v\x01g\x05\x00hello\xff\x09\x00\xbc/\xd1T\xcdl\xad\x03"
> HGET zipmap g
> HLEN zipmap
> RESTORE qlv1 0 "\x0e\x02\x11\x11\x00\x00\x00\x0d\x00\x00\x00\x02\x00\x00\x01a\x03\x01b\xff\x11\x11\x00\x00\x00\x0e\x00\x00\x00\x03\x00\x00\xf2\x02\xf3\x02\xf4\xff\x09\x00\xbf#m\x0c\xda\xb7y/"
> LRANGE qlv1 0 -1
> RESTORE zsetv1 0 "\x03\x02\x01a\x031.5\x01b\xfe\x09\x00\xd5\x1fV\xa3\xb0Sk["
> ZRANGE zsetv1 0 -1 WITHSCORES
> RESTORE listv0 0 "\x01\x02\x01x\xc0\x07\x09\x00Xq\xe3\xccl\x10z~"
> LRANGE listv0 0 -1
# A ziplist whose tail offset or previous-entry length is wrong.
> RESTORE zlbadtail 0 "\x0a\x11\x11\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x01a\x03\x01b\xff\x09\x00\x0d\xe5\xb4a\xe8\xad\xc2Y"
> RESTORE zlbadprev 0 "\x0a\x11\x11\x00\x00\x00\x0d\x00\x00\x00\x02\x00\x00\x01a\x05\x01b\xff\x09\x00\x9c\xd4\x807G\x0e?\x82"
