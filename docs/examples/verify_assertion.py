"""An app behind tenantgate verifying X-Tenantgate-Assertion with PyJWT, as
docs/assertions.md shows. gateway/tests/it/assertions.rs runs it against a real
gateway: python3 docs/examples/verify_assertion.py JWKS_URL ISSUER AUDIENCE METHOD PATH TOKEN
prints the verified claims as JSON, or exits 1 with the reason.

Needs PyJWT >= 2.6 with cryptography (pip install "pyjwt[crypto]", or Debian's
python3-jwt and python3-cryptography).
"""

import json
import sys

import jwt


class AssertionVerifier:
    """Once per process: PyJWKClient caches the keys and refetches on an unknown kid."""

    def __init__(self, jwks_url, issuer, audience):
        self.keys = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300)
        self.issuer = issuer
        self.audience = audience  # this app's name: the route's `audience`, or its name

    def verify(self, token, method, path):
        """`method` and `path` are the request the app is answering (path without the query)."""
        key = self.keys.get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            key.key,
            algorithms=["EdDSA"],  # pinned: never take the algorithm from the token
            audience=self.audience,
            issuer=self.issuer,
            options={"require": ["exp", "iat", "aud", "iss", "htm", "htu"]},
        )
        # Bound to one request: a captured assertion is useless on another endpoint.
        if claims["htm"] != method or claims["htu"] != path:
            raise jwt.InvalidTokenError(f"assertion was made for {claims['htm']} {claims['htu']}")
        return claims  # sub, email, email_verified, tid, tslug, role


# In a WSGI app (Flask, Django...), per request:
#   claims = verifier.verify(environ["HTTP_X_TENANTGATE_ASSERTION"],
#                            environ["REQUEST_METHOD"], environ["PATH_INFO"])

if __name__ == "__main__":
    jwks_url, issuer, audience, method, path, token = sys.argv[1:7]
    try:
        print(json.dumps(AssertionVerifier(jwks_url, issuer, audience).verify(token, method, path)))
    except jwt.PyJWTError as e:
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
