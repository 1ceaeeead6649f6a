// An app behind tenantgate verifying X-Tenantgate-Assertion with jose, as
// docs/assertions.md shows. gateway/tests/it/assertions.rs runs it against a real
// gateway: node e2e/verify-assertion.mjs JWKS_URL ISSUER AUDIENCE METHOD PATH TOKEN
// prints the verified claims as JSON, or exits 1 with the reason.
import { createRemoteJWKSet, jwtVerify } from "jose";

// Once per process: jose caches the keys and refetches on an unknown `kid`.
export function assertionVerifier(jwksUrl, { issuer, audience }) {
  const keys = createRemoteJWKSet(new URL(jwksUrl));
  // `method` and `path` are the request the app is answering (path without the query).
  return async function verify(token, method, path) {
    const { payload } = await jwtVerify(token, keys, {
      algorithms: ["EdDSA"], // pinned: never take the algorithm from the token
      issuer,
      audience, // this app's name: the route's `audience`, or its name
      maxTokenAge: "60s",
    });
    // Bound to one request: a captured assertion is useless on another endpoint.
    if (payload.htm !== method || payload.htu !== path) {
      throw new Error(`assertion was made for ${payload.htm} ${payload.htu}`);
    }
    return payload; // sub, email, email_verified, tid, tslug, role
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [jwksUrl, issuer, audience, method, path, token] = process.argv.slice(2);
  try {
    const verify = assertionVerifier(jwksUrl, { issuer, audience });
    console.log(JSON.stringify(await verify(token, method, path)));
  } catch (e) {
    console.error(`${e.code ?? "error"}: ${e.message}`);
    process.exit(1);
  }
}
