from __future__ import annotations

import subprocess
from pathlib import Path
from shutil import which

from tests.conftest import missing_service


def make_certificate(directory: Path, names: str) -> Path:
    """In ``directory``: a throw-away CA (``ca.pem``) and a server certificate (``leaf.pem``,
    ``leaf.key``) for ``names`` (a subjectAltName value: ``DNS:a.test,IP:127.0.0.1``), made with
    the openssl CLI."""
    if which("openssl") is None:
        missing_service("the openssl command is needed to make a test certificate")
    ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2"

    def openssl(command: str) -> None:
        subprocess.run(
            ["openssl", *command.split()], cwd=directory, check=True, capture_output=True
        )

    openssl(f"req -x509 {ec} -keyout ca.key -out ca.pem -subj /CN=imagegate-test-CA")
    openssl(f"req {ec} -keyout leaf.key -out leaf.csr -subj /CN=imagegate-test-server")
    (directory / "ext.cnf").write_text(
        f"subjectAltName={names}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
    )
    openssl(
        "x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem -days 2"
        " -extfile ext.cnf"
    )
    return directory
