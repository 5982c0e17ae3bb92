"""The test PKI: the identities the API server's authorizers key on, and a serving cert that
every in-cluster name and the loopback address verify against."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from extraction_operator.controlplane.pki import CertificateAuthority, write_signing_key


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_client_certificates_carry_user_and_group(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path)
    pair = ca.issue("node", "system:node:n1", organization="system:nodes")
    cert = _load(pair.cert)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:node:n1"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == (
        "system:nodes"
    )
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    cert.verify_directly_issued_by(_load(ca.pair.cert))
    assert pair.key.stat().st_mode & 0o077 == 0


def test_the_serving_certificate_names_loopback_and_the_service(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path)
    pair = ca.issue(
        "apiserver",
        "kube-apiserver",
        server_names=("kubernetes.default.svc",),
        server_ips=("127.0.0.1",),
    )
    names = _load(pair.cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["kubernetes.default.svc"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]


def test_the_signing_key_pair_is_a_public_and_a_private_pem(tmp_path: Path) -> None:
    pair = write_signing_key(tmp_path)
    assert pair.cert.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert pair.key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
