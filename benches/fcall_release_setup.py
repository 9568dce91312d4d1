#!/usr/bin/env python3
"""Setup for benches/callgrind_cmd.sh: the lock-release script as a function
(`release`, FCALL) and as a cached script (EVALSHA), and a lock `k` held by
another owner, so every release finds `other` and returns 0, leaving `k` in
place for the next request. Prints RESP for `redis-cli --pipe`.

  benches/callgrind_cmd.sh "python3 benches/fcall_release_setup.py" 20000 FCALL release 1 k token
  benches/callgrind_cmd.sh "python3 benches/fcall_release_setup.py" 20000 \
      EVALSHA "$(python3 benches/fcall_release_setup.py --sha)" 1 k token
"""
import hashlib
import sys

BODY = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('del', KEYS[1]) else return 0 end"
)
LIBRARY = (
    "#!lua name=locks\n"
    "redis.register_function('release', function(KEYS, ARGV) " + BODY + " end)\n"
)


def resp(*words):
    out = [f"*{len(words)}\r\n"]
    for w in words:
        b = w.encode()
        out.append(f"${len(b)}\r\n{w}\r\n")
    return "".join(out)


if sys.argv[1:] == ["--sha"]:
    print(hashlib.sha1(BODY.encode()).hexdigest())
else:
    sys.stdout.write(
        resp("FUNCTION", "LOAD", "REPLACE", LIBRARY)
        + resp("SCRIPT", "LOAD", BODY)
        + resp("SET", "k", "other")
    )
