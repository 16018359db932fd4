"""Throw-away TLS files for a local etcd: a CA, a server certificate for 127.0.0.1 and a
client certificate, made with the ``openssl`` command (P-256 keys, valid for two days)."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Dict, List

from .errors import ClusterError

TIMEOUT_S = 30.0
DAYS = "2"


def _openssl(args: List[str], cwd: str) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise ClusterError("the openssl command is needed for a TLS etcd (Debian's openssl)")
    done = subprocess.run([binary, *args], cwd=cwd, capture_output=True, timeout=TIMEOUT_S)
    if done.returncode != 0:
        raise ClusterError(f"openssl {args[0]} failed: {done.stderr.decode(errors='replace')}")


def _signed(name: str, subject: str, usage: str, cwd: str) -> None:
    _openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
              "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject], cwd)
    with open(os.path.join(cwd, f"{name}.ext"), "w", encoding="ascii") as handle:
        handle.write(f"subjectAltName=IP:127.0.0.1\nextendedKeyUsage={usage}\n")
    _openssl(["x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
              "-CAcreateserial", "-out", f"{name}.crt", "-days", DAYS, "-extfile", f"{name}.ext"],
             cwd)


def make_tls_files(directory: str) -> Dict[str, str]:
    """Write the files into ``directory``; returns their paths: ``ca_file``, ``server_cert``,
    ``server_key``, ``cert_file`` and ``key_file`` (the client's)."""
    os.makedirs(directory, exist_ok=True)
    _openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
              "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", DAYS,
              "-subj", "/CN=replikit test CA"], directory)
    _signed("server", "/CN=127.0.0.1", "serverAuth,clientAuth", directory)
    _signed("client", "/CN=replikit", "clientAuth", directory)
    names = {"ca_file": "ca.crt", "server_cert": "server.crt", "server_key": "server.key",
             "cert_file": "client.crt", "key_file": "client.key"}
    return {what: os.path.join(directory, name) for what, name in names.items()}
