"""Signed subscriptions of Coinbase Advanced Trade (ingestion.coinbase.use_jwt): an ES256 JWT per
subscribe message, from a CDP API key (the `coinbase-auth` extra installs `cryptography`)."""

from __future__ import annotations

import base64
import json
import secrets
import time

from daedalus.errors import ConfigError


def make_jwt(key_name: str, private_key_pem: str, now: float | None = None) -> str:
    """ES256 JWT for Coinbase App/CDP keys (header kid+nonce, claims iss=cdp, sub=key, 2 min life)."""
    try:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    except ImportError:
        raise ConfigError(
            "ingestion.coinbase.use_jwt: needs the 'cryptography' package (pip install cryptography)"
        ) from None
    now = int(now if now is not None else time.time())

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = {"alg": "ES256", "kid": key_name, "nonce": secrets.token_hex(16), "typ": "JWT"}
    claims = {"iss": "cdp", "nbf": now, "exp": now + 120, "sub": key_name}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    try:
        key = serialization.load_pem_private_key(private_key_pem.replace("\\n", "\n").encode(), password=None)
    except ValueError as e:
        raise ConfigError(f"COINBASE_API_SECRET: not a PEM EC private key ({e})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError("COINBASE_API_SECRET: the key must be an EC (P-256) private key for ES256")
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
