#!/usr/bin/env python3
"""Prints what bench/gateway/forward_auth.sh puts in nginx's http block for one
nginx + tenantgate target: docs/examples/nginx-forward-auth.conf as it is when the
bench runs, its addresses and `listen` replaced (as gateway/tests/it/forward_auth.rs
does), then changed by the variant:

  documented  as written;
  keepalive   every hop kept alive over the bench's own pools (defined in its http
              block with as many idle connections as the load has clients): the
              check (/auth/verify/nginx) over `tg_verify`, the app over `tg_app`,
              HTTP/1.1 with Connection "";
  newconn     the check over a new connection per request (proxy_pass straight to
              the gateway, nginx's default HTTP/1.0, no keepalive): the snippet as
              it was before it kept its connections;
  pool:N      as written, the `keepalive` of the upstream block the check goes
              through set to N (the idle connections nginx keeps per worker: a
              check that finds none opens one, and a connection freed while N are
              idle is closed).

Exits 3, printing why, when the variant would be the documented config itself;
exits 1 when the snippet no longer has what the variant changes.

Usage: forward_auth_conf.py SNIPPET VARIANT GATEWAY APP PORT
"""

import re
import sys

KEEPALIVE = 'proxy_http_version 1.1;\n        proxy_set_header Connection "";'


def block(text: str, opening: str) -> tuple[int, int]:
    """Start and end offsets of the `{...}` block that `opening` begins."""
    start = text.find(opening)
    if start < 0:
        sys.exit(f"the snippet has no `{opening}` block")
    depth, i = 0, text.index("{", start)
    while True:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return start, i + 1
        i += 1


def in_block(text: str, opening: str, change) -> str:
    start, end = block(text, opening)
    return text[:start] + change(text[start:end]) + text[end:]


def main() -> None:
    snippet, variant, gateway, app, port = sys.argv[1:]
    text = open(snippet).read()
    for old, new in (("127.0.0.1:8080", gateway), ("127.0.0.1:3000", app), ("listen 80;", f"listen 127.0.0.1:{port};")):
        if old not in text:
            sys.exit(f"{snippet} no longer contains {old!r}")
        text = text.replace(old, new)

    verify, app_location = "location = /_tenantgate_verify", "location / "
    verify_direct = f"proxy_pass http://{gateway}/auth/verify/nginx;"
    app_direct = f"proxy_pass http://{app};"
    verify_text = text[slice(*block(text, verify))]
    app_text = text[slice(*block(text, app_location))]

    documented = text
    if variant == "keepalive":
        def kept(b: str, proxy_pass: str, pool_pass: str) -> str:
            b = re.sub(proxy_pass, pool_pass, b)
            b = re.sub(r"\n\s*proxy_http_version [^;]*;", "", b)
            b = re.sub(r'\n\s*proxy_set_header Connection "[^"]*";', "", b)
            return b.replace(pool_pass, f"{pool_pass}\n        {KEEPALIVE}")

        if not re.search(r"proxy_pass http://\S+/auth/verify/nginx;", verify_text):
            sys.exit("the snippet's check location has no proxy_pass to /auth/verify/nginx")
        text = in_block(text, verify, lambda b: kept(b, r"proxy_pass http://\S+/auth/verify/nginx;",
                                                     "proxy_pass http://tg_verify/auth/verify/nginx;"))
        if app_direct in app_text:
            text = in_block(text, app_location, lambda b: kept(b, re.escape(app_direct), "proxy_pass http://tg_app;"))
        if text == documented:
            print("the documented snippet keeps every hop alive already")
            sys.exit(3)
    elif variant.startswith("pool:"):
        found = re.search(r"proxy_pass http://([^/\s]+)/auth/verify/nginx;", verify_text)
        if not found or found.group(1) == gateway:
            print("the documented snippet's check goes through no upstream block")
            sys.exit(3)
        text = in_block(text, f"upstream {found.group(1)} ",
                        lambda b: re.sub(r"keepalive \d+;", f"keepalive {variant[5:]};", b))
        if text == documented:
            print(f"the documented snippet keeps {variant[5:]} connections already")
            sys.exit(3)
    elif variant == "newconn":
        if verify_direct in verify_text:
            print("the documented snippet opens a new connection per check already")
            sys.exit(3)
        if not re.search(r"proxy_pass http://\S+/auth/verify/nginx;", verify_text):
            sys.exit("the snippet's check location has no proxy_pass to /auth/verify/nginx")

        def direct(b: str) -> str:
            b = re.sub(r"proxy_pass http://\S+/auth/verify/nginx;", verify_direct, b)
            b = re.sub(r"\n\s*proxy_http_version [^;]*;", "", b)
            return re.sub(r'\n\s*proxy_set_header Connection "[^"]*";', "", b)

        text = in_block(text, verify, direct)
    elif variant != "documented":
        sys.exit(f"no variant {variant}")
    print(text)


if __name__ == "__main__":
    main()
