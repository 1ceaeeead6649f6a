#!/usr/bin/env bash
# One identity flatters every cache: this rotates wrk over COUNT members of the
# bench tenant (made by SQL, with access tokens signed by the bench's JWT secret),
# each request carrying the next token (bench/gateway/rotate.lua), against the
# gateway's default route and the bare proxy (same bytes).
#   cold   the first pass over all COUNT identities: every one is a miss in every
#          tier (JWT verification, then user and role from Postgres via Redis);
#   warm   the rotation again for SECONDS, alternating with the bare proxy for
#          ROUNDS rounds: every identity is in the gateway's memory now.
# Reports requests/s, p50/p99 and the gateway's RSS before and after.
#
# Usage: bench/gateway/identities.sh [count] [seconds] [rounds]   (defaults 20000, 10, 4)
set -euo pipefail
cd "$(dirname "$0")/../.."

COUNT=${1:-20000}
DURATION=${2:-10}
ROUNDS=${3:-4}
CONNS=32
UP=127.0.0.1:3902 BARE=127.0.0.1:8185 GW=127.0.0.1:8184 ADMIN=127.0.0.1:9194
OUT=bench/results; mkdir -p "$OUT"
WORK=$(mktemp -d)
THREADS=1
source bench/gateway/stack.sh

rss() { awk '/VmRSS/ {print $2 / 1024 " MB"}' "/proc/$GW_PID/status"; }

echo "==> $COUNT members of the bench tenant, by SQL"
psql -h 127.0.0.1 -U postgres -d "$DB" -qAt >"$WORK/users.tsv" <<SQL
CREATE TEMP TABLE made AS
    SELECT gen_random_uuid() AS id, 'member' || i || '@bench.test' AS email FROM generate_series(1, $COUNT) AS i;
INSERT INTO users (id, email, password_hash, name) SELECT id, email, 'not-a-login', 'Member' FROM made;
INSERT INTO user_tenant_roles (user_id, tenant_id, role) SELECT id, '$TENANT', 'member' FROM made;
SELECT id || '|' || email FROM made;
SQL
python3 - "$WORK/users.tsv" "$JWT_SECRET" >"$WORK/tokens.txt" <<'PY'
import base64, hashlib, hmac, json, sys, time, uuid
b64 = lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=")
secret, now = sys.argv[2].encode(), int(time.time())
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
for line in open(sys.argv[1]):
    user, email = line.strip().split("|")
    claims = {"sub": user, "email": email, "iat": now, "exp": now + 3600, "iss": "tenantgate",
              "aud": "tenantgate", "jti": str(uuid.uuid4()), "ver": 0}
    signing = head + b"." + b64(json.dumps(claims, separators=(",", ":")).encode())
    print((signing + b"." + b64(hmac.new(secret, signing, hashlib.sha256).digest())).decode())
PY
[ "$(wc -l <"$WORK/tokens.txt")" = "$COUNT" ] || { echo "!! token generation failed"; exit 1; }
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$GW/d/x" -H "authorization: Bearer $(head -1 "$WORK/tokens.txt")" -H "$TEN")
[ "$code" = 200 ] || { echo "!! a generated token was refused ($code)"; exit 1; }

rotate() { # url seconds [passes]
    TOKENS="$WORK/tokens.txt" TENANT="$TENANT" PASSES="${3:-0}" \
        wrk -t1 -c"$CONNS" -d"$2s" --latency -s bench/gateway/rotate.lua "$1" >"$WORK/wrk.txt"
    local rps p50 p99 reqs non2xx
    rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.txt")
    p50=$(awk '$1=="50%" {print $2}' "$WORK/wrk.txt"); p99=$(awk '$1=="99%" {print $2}' "$WORK/wrk.txt")
    reqs=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt"); non2xx=$(awk '/Non-2xx/ {print $NF}' "$WORK/wrk.txt")
    if [ "${3:-0}" -gt 0 ]; then
        # wrk divides by its whole -d even when the script stopped early: the
        # rate of a stopped pass is the connections over the mean latency
        # (Little's law).
        rps=$(awk -v c="$CONNS" '$1 == "Latency" && $2 ~ /^[0-9.]+(us|ms|s)$/ {v = $2; f = (v ~ /us$/) ? 1e-6 : (v ~ /ms$/) ? 1e-3 : 1;
            sub(/[a-z]+$/, "", v); printf "%.0f", c / (v * f)}' "$WORK/wrk.txt")
    fi
    echo "$rps $p50 $p99 $reqs ${non2xx:-0}"
}

echo "==> gateway RSS before: $(rss)"
read -r rps p50 p99 reqs non2xx < <(rotate "http://$GW/d/x" 30 1)
echo "cold first pass   $reqs requests  $rps req/s  p50 $p50  p99 $p99  non-2xx $non2xx"
cold="| cold first pass | $reqs | $rps | $p50 | $p99 | $non2xx |"
echo "==> gateway RSS after the cold pass: $(rss)"
rows=()
for round in $(seq 1 "$ROUNDS"); do
    for target in bare gateway; do
        url="http://$BARE/d/x"; [ "$target" = gateway ] && url="http://$GW/d/x"
        read -r rps p50 p99 reqs non2xx < <(rotate "$url" "$DURATION")
        printf 'round %s  %-8s %10s req/s  p50 %-9s p99 %-9s non-2xx %s\n' "$round" "$target" "$rps" "$p50" "$p99" "$non2xx"
        rows+=("$round $target $rps $p50 $p99 $non2xx")
    done
done
echo "==> gateway RSS after the warm rotation: $(rss)"
printf '%s\n' "${rows[@]}" | awk '
    {rps[$2][$1] = $3}
    END {
        n = 0
        for (r in rps["bare"]) { ratio[++n] = rps["gateway"][r] / rps["bare"][r] }
        asort(ratio)
        m = (n % 2) ? ratio[(n + 1) / 2] : (ratio[n / 2] + ratio[n / 2 + 1]) / 2
        printf "==> warm rotation over '"$COUNT"' identities, gateway / bare = %.2fx (median of %d rounds)\n", m, n
    }' | tee "$WORK/ratio.txt"
{
    date -u +"%Y-%m-%dT%H:%M:%SZ"; echo "$cold"; printf '%s\n' "${rows[@]}"; cat "$WORK/ratio.txt"
} >"$OUT/identities-$(date -u +%Y%m%dT%H%M%S).txt"
