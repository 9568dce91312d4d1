"""Test certificates for the TLS client checks: a CA, a server certificate for
localhost / 127.0.0.1 and a client certificate, made with the openssl command
into a temporary directory. Standard library only.

    python3 tests/clients/tls_certs.py DIR   # writes ca.crt, server.{crt,key}, client.{crt,key}
"""

import os
import subprocess
import sys


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make(directory):
    """Writes the files into `directory`; returns a dict of their paths."""
    os.makedirs(directory, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=latchkey test CA", "-keyout", "ca.key", "-out", "ca.crt",
             cwd=directory)
    with open(os.path.join(directory, "server.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    with open(os.path.join(directory, "client.ext"), "w") as f:
        f.write("extendedKeyUsage=clientAuth\n")
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=%s" % name,
                 "-keyout", name + ".key", "-out", name + ".csr", cwd=directory)
        _openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", name + ".ext",
                 "-out", name + ".crt", cwd=directory)
    return {name: os.path.join(directory, name) for name in
            ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")}


def server_flags(paths, tls_port):
    """redis-server's (and latchkey's) flags for TLS on `tls_port`, client
    certificates required (the default)."""
    return ["--tls-port", str(tls_port), "--tls-cert-file", paths["server.crt"],
            "--tls-key-file", paths["server.key"], "--tls-ca-cert-file", paths["ca.crt"]]


if __name__ == "__main__":
    print(make(sys.argv[1]))
