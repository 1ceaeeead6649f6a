#!/usr/bin/env bash
# Checks docker-compose.yml and the Dockerfile against the repository, statically:
# no Docker engine is needed (nothing is built or run). Part of ./scripts/check-deploy.sh.
#
#   docker-compose.yml  parses; every depends_on names a service, and a
#                       service_healthy one has a health check; the tenantgate
#                       services (those running the image the Dockerfile builds) are
#                       given only variables the binaries read (ENV_VARS in
#                       shared/src/config/mod.rs, and the command lines' env =),
#                       run a binary the image holds with a subcommand it has, and
#                       publish and health-check ports they listen on; every file or
#                       folder mounted from the repository exists; GATEWAY_ROUTES is
#                       mounted; the compose route files are config/routes' with only
#                       the upstreams changed, to compose services; Prometheus
#                       scrapes the services' admin ports under the job names of
#                       deploy/prometheus/prometheus.yml (and promtool accepts it).
#   Dockerfile          every COPY source exists and is not in .dockerignore; every
#                       workspace member and migrations/ (compiled in) are copied
#                       before the build; the final stage runs as a non-root USER,
#                       has a HEALTHCHECK on the admin port (with its tool
#                       installed) and a CMD; ENV names are ones the binaries read.
#
# When `docker compose` works it also runs `docker compose config -q`. hadolint is
# not used (not available from Debian or PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."

# python3 with PyYAML (and tomllib: Python 3.11 or newer).
py=
for candidate in python3 /usr/bin/python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import yaml, tomllib' 2>/dev/null; then
        py=$candidate
        break
    fi
done
if [ -z "$py" ]; then
    source scripts/lib/ensure.sh
    apt_install python3 python3-yaml
    py=/usr/bin/python3
fi

echo "==> docker-compose.yml, Dockerfile: static checks"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$py" - "$work" <<'PY'
import fnmatch, os, re, shlex, sys, tomllib
import yaml

work = sys.argv[1]
problems = []
def problem(msg):
    problems.append(msg)

# --- What the code defines ---------------------------------------------------
config_rs = open("shared/src/config/mod.rs").read()
block = re.search(r"pub const ENV_VARS: &\[\(&str, &str\)\] = &\[(.*?)\n\];", config_rs, re.S)
if not block:
    sys.exit("!! check-compose: ENV_VARS not found in shared/src/config/mod.rs")
env_vars = set(re.findall(r'\("([A-Z0-9_]+)",\s*"[a-z0-9_.]+"\)', block.group(1)))
if len(env_vars) < 20:
    sys.exit(f"!! check-compose: only {len(env_vars)} names read from ENV_VARS: has its shape changed?")
cli_sources = {"gateway": "gateway/src/cli.rs", "worker": "worker/src/cli.rs"}
for path in cli_sources.values():
    env_vars |= set(re.findall(r'env = "([A-Z0-9_]+)"', open(path).read()))

def subcommands(path):
    enum = re.search(r"pub enum Command \{(.*?)\n\}", open(path).read(), re.S)
    names = re.findall(r"^    ([A-Z][A-Za-z]+)\s*[,{(]", enum.group(1), re.M) if enum else []
    return {re.sub(r"(?<!^)([A-Z])", r"-\1", n).lower() for n in names}
commands = {binary: subcommands(path) for binary, path in cli_sources.items()}
commands["demo_upstream"] = None  # no subcommands, options only

members = tomllib.load(open("Cargo.toml", "rb"))["workspace"]["members"]
migrate = re.search(r'sqlx::migrate!\("\.\./([^"]+)"\)', open("shared/src/db/mod.rs").read())
compiled_in = [migrate.group(1)] if migrate else []

# --- Dockerfile ----------------------------------------------------------------
def instructions(path):
    """(stage index, instruction, arguments) with continuations joined."""
    out, stage, pending = [], -1, ""
    for raw in open(path).read().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#") and pending:
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, args = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            stage += 1
        out.append((stage, word, args.strip()))
    return out

def dockerignored(path):
    if not os.path.exists(".dockerignore"):
        return False
    patterns = [p.strip().rstrip("/") for p in open(".dockerignore") if p.strip() and not p.startswith("#")]
    parts = os.path.normpath(path).split(os.sep)
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatch(prefix, pat.lstrip("/").replace("**/", "*")) or fnmatch.fnmatch(prefix, pat)
               for pat in patterns if not pat.startswith("!") for prefix in prefixes)

steps = instructions("Dockerfile")
stages = []      # stage names (or numbers), in order
copied = []      # per stage: what the build context has put in it so far
for stage, word, args in steps:
    if word == "FROM":
        m = re.search(r"\s+AS\s+(\S+)", args, re.I)
        base = args.split()[0].lower()
        stages.append(m.group(1).lower() if m else str(stage))
        copied.append(set(copied[stages.index(base)]) if base in stages[:-1] else set())
final = len(stages) - 1
if final < 0:
    sys.exit("!! check-compose: the Dockerfile has no FROM")
built = False
binaries_in_image = set()
final_env = {}
for stage, word, args in steps:
    if word in ("COPY", "ADD"):
        words = shlex.split(args)
        flags = [w for w in words if w.startswith("--")]
        paths = [w for w in words if not w.startswith("--")]
        from_stage = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
        if from_stage is not None:
            if from_stage.lower() not in stages[:stage]:
                problem(f"Dockerfile: COPY --from={from_stage}: no earlier stage has that name")
            continue
        for src in paths[:-1]:
            if not os.path.exists(src):
                problem(f"Dockerfile: COPY source {src} does not exist")
            elif dockerignored(src):
                problem(f"Dockerfile: COPY source {src} is excluded by .dockerignore")
            copied[stage].add(os.path.normpath(src))
    if word == "RUN" and re.search(r"\bcargo build\b", args):
        built = True
        binaries_in_image |= set(re.findall(r"target/release/([A-Za-z0-9_-]+)", args))
        missing = [m for m in members + compiled_in if m not in copied[stage] and "." not in copied[stage]]
        if missing:
            problem(f"Dockerfile: cargo build runs before these are copied: {', '.join(missing)}")
    if stage == final and word == "ENV":
        for name, value in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\S+)", args):
            final_env[name] = value
            if name not in env_vars:
                problem(f"Dockerfile: ENV {name} is not a variable the binaries read (ENV_VARS)")
if not built:
    problem("Dockerfile: no RUN cargo build")
final_steps = [(word, args) for stage, word, args in steps if stage == final]
users = [args for word, args in final_steps if word == "USER"]
if not users:
    problem("Dockerfile: the final stage has no USER (it would run as root)")
elif users[-1].split(":")[0] in ("root", "0"):
    problem(f"Dockerfile: the final stage runs as root (USER {users[-1]})")
healthchecks = [args for word, args in final_steps if word == "HEALTHCHECK"]
image_health_ports = set()
if not healthchecks or healthchecks[-1].upper() == "NONE":
    problem("Dockerfile: the final stage has no HEALTHCHECK")
else:
    check = healthchecks[-1]
    image_health_ports = {int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", check)}
    tool = re.search(r'CMD\s+(?:\[\s*"([^"]+)"|(\S+))', check)
    tool = tool and (tool.group(1) or tool.group(2))
    installs = " ".join(args for word, args in final_steps if word == "RUN")
    if tool and tool not in binaries_in_image and not re.search(rf"apt-get install[^&;]*\b{re.escape(tool)}\b", installs):
        problem(f"Dockerfile: HEALTHCHECK runs {tool}, which the final stage does not install")
    admin = final_env.get("GATEWAY_ADMIN_LISTEN", "127.0.0.1:9090")
    if int(admin.rsplit(":", 1)[1]) not in image_health_ports:
        problem(f"Dockerfile: HEALTHCHECK does not check the admin port of GATEWAY_ADMIN_LISTEN={admin}")
if not any(word == "CMD" for word, _ in final_steps):
    problem("Dockerfile: the final stage has no CMD")
exposed = {p.split("/")[0] for word, args in final_steps if word == "EXPOSE" for p in args.split()}
for port in ("8080", "9090"):
    if port not in exposed:
        problem(f"Dockerfile: the final stage does not EXPOSE {port}")

# --- docker-compose.yml --------------------------------------------------------
try:
    compose = yaml.safe_load(open("docker-compose.yml"))
except yaml.YAMLError as e:
    sys.exit(f"!! check-compose: docker-compose.yml does not parse: {e}")
services = compose.get("services") or {}
if not isinstance(services, dict) or not services:
    sys.exit("!! check-compose: docker-compose.yml has no services")
named_volumes = set((compose.get("volumes") or {}).keys())

def interpolated(value):
    """The value compose would use without the variable set (its :- default)."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?[-?]([^}]*))?\}", lambda m: m.group(1) or "", str(value))

def environment(svc):
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env

def command(svc):
    cmd = svc.get("command")
    return shlex.split(cmd) if isinstance(cmd, str) else list(cmd or [])

built_images = {svc.get("image") for svc in services.values() if "build" in svc}
tenantgate = {name for name, svc in services.items() if "build" in svc or svc.get("image") in built_images}
if not tenantgate:
    problem("docker-compose.yml: no service runs the image the Dockerfile builds")

def healthcheck(name):
    """The health check test of a service, or None (disabled or none known)."""
    hc = services[name].get("healthcheck")
    if hc is not None:
        return None if hc.get("disable") else hc.get("test")
    return ("image", sorted(image_health_ports)) if name in tenantgate and healthchecks else None

def listen_ports(name):
    svc = services[name]
    ports = set()
    for var, value in environment(svc).items():
        if var.endswith("_LISTEN") and value:
            ports.add(int(str(value).rsplit(":", 1)[1]))
    cmd = command(svc) or ["gateway"]
    for var, value in final_env.items():  # the image's defaults, unless overridden
        if var.endswith("_LISTEN") and var not in environment(svc) and var.startswith(cmd[0].upper() + "_"):
            ports.add(int(value.rsplit(":", 1)[1]))
    if "--listen" in cmd:
        ports.add(int(cmd[cmd.index("--listen") + 1].rsplit(":", 1)[1]))
    return ports

for name, svc in services.items():
    where = f"docker-compose.yml: service {name}"
    deps = svc.get("depends_on") or {}
    for dep, how in (deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps)):
        if dep not in services:
            problem(f"{where} depends on {dep}, which is no service")
            continue
        condition = (how or {}).get("condition", "service_started")
        if condition not in ("service_started", "service_healthy", "service_completed_successfully"):
            problem(f"{where}: depends_on {dep} has an unknown condition {condition}")
        if condition == "service_healthy" and healthcheck(dep) is None:
            problem(f"{where} waits for {dep} to be healthy, but {dep} has no health check")
    build = svc.get("build")
    if build is not None:
        context = build if isinstance(build, str) else build.get("context", ".")
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        if not os.path.isfile(os.path.join(context, dockerfile)):
            problem(f"{where} builds {os.path.join(context, dockerfile)}, which does not exist")
    mounts = []
    for volume in svc.get("volumes") or []:
        if isinstance(volume, dict):
            source, target, kind = volume.get("source"), volume.get("target"), volume.get("type")
        else:
            source, target = volume.split(":")[:2]
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        mounts.append(target)
        if kind == "bind":
            if not os.path.exists(os.path.expanduser(source)):
                problem(f"{where} mounts {source}, which does not exist")
        elif kind == "volume" and source not in named_volumes:
            problem(f"{where} mounts the volume {source}, which the top-level volumes do not declare")
    if name not in tenantgate:
        continue
    env = environment(svc)
    for var in env:
        if var not in env_vars:
            problem(f"{where}: {var} is not a variable the binaries read (ENV_VARS in shared/src/config/mod.rs)")
    for var in ("JWT_SECRET", "JWT_REFRESH_SECRET", "GATEWAY_ASSERTION_SECRET"):
        if var in env and interpolated(env[var]).startswith("change-me"):
            problem(f"{where}: {var} defaults to the .env.example value")
    routes = env.get("GATEWAY_ROUTES")
    if routes and str(routes).startswith("/") and not any(
        os.path.commonpath([str(routes), t]) == t for t in mounts if t and t.startswith("/")
    ):
        problem(f"{where}: GATEWAY_ROUTES={routes} is not inside any mounted folder")
    cmd = command(svc)
    if cmd:
        binary = cmd[0]
        if binary not in binaries_in_image:
            problem(f"{where} runs {binary}, which the Dockerfile does not install")
        elif commands.get(binary) and len(cmd) > 1 and not cmd[1].startswith("-") and cmd[1] not in commands[binary]:
            problem(f"{where}: {binary} has no subcommand {cmd[1]} (has: {', '.join(sorted(commands[binary]))})")
    listening = listen_ports(name)
    for port in svc.get("ports") or []:
        container = int(str(port).rsplit(":", 1)[1].split("/")[0])
        if container not in listening:
            problem(f"{where} publishes {port}, but listens on {sorted(listening)}")
    test = healthcheck(name)
    if test is not None:
        checked = set(test[1]) if test[0] == "image" else {int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", " ".join(test))}
        if checked and not checked & listening and cmd[:2] != ["gateway", "migrate"]:
            problem(f"{where}: its health check asks port {sorted(checked)}, but it listens on {sorted(listening)}")

# Route files mounted for the gateway: config/routes' routes, with the upstreams
# at compose services.
def load_routes(folder):
    routes = {}
    for file in sorted(os.listdir(folder)):
        if file.endswith(".toml"):
            for route in tomllib.load(open(os.path.join(folder, file), "rb")).get("route", []):
                routes[route["name"]] = route
    return routes
shipped = load_routes("config/routes")
for name in sorted(tenantgate):
    for volume in services[name].get("volumes") or []:
        source, target = (volume["source"], volume["target"]) if isinstance(volume, dict) else volume.split(":")[:2]
        if target != environment(services[name]).get("GATEWAY_ROUTES") or not os.path.isdir(source):
            continue
        mounted = load_routes(source)
        if sorted(mounted) != sorted(shipped):
            problem(f"{source}: routes {sorted(mounted)}, config/routes has {sorted(shipped)}")
        for route_name in sorted(set(mounted) & set(shipped)):
            keys = set(mounted[route_name]) | set(shipped[route_name])
            differ = sorted(k for k in keys - {"upstreams"} if mounted[route_name].get(k) != shipped[route_name].get(k))
            if differ:
                problem(f"{source}: route {route_name} differs from config/routes' in {', '.join(differ)} (only upstreams may)")
        for route in mounted.values():
            for upstream in route.get("upstreams", []):
                host, port = upstream.rsplit(":", 1)
                if host not in services:
                    problem(f"{source}: route {route['name']} sends to {upstream}, and {host} is no compose service")
                elif int(port) not in listen_ports(host):
                    problem(f"{source}: route {route['name']} sends to {upstream}, but {host} listens on {sorted(listen_ports(host))}")

# Prometheus: the compose scrape config, the job names alerts.yml expects.
for name, svc in services.items():
    if not str(svc.get("image", "")).startswith(("prom/prometheus", "quay.io/prometheus/prometheus")):
        continue
    configs = {}
    for volume in svc.get("volumes") or []:
        source, target = volume.split(":")[:2]
        configs[target] = source
    config_file = configs.get("/etc/prometheus/prometheus.yml")
    if not config_file:
        problem(f"docker-compose.yml: service {name} mounts no /etc/prometheus/prometheus.yml")
        continue
    config = yaml.safe_load(open(config_file))
    for rule_file in config.get("rule_files", []):
        if os.path.join("/etc/prometheus", rule_file) not in configs:
            problem(f"{config_file} loads {rule_file}, which service {name} does not mount beside it")
    reference = yaml.safe_load(open("deploy/prometheus/prometheus.yml"))
    want_jobs = {job["job_name"] for job in reference["scrape_configs"]}
    jobs = {job["job_name"]: [t for sc in job.get("static_configs", []) for t in sc["targets"]]
            for job in config.get("scrape_configs", [])}
    if set(jobs) != want_jobs:
        problem(f"{config_file}: jobs {sorted(jobs)}, deploy/prometheus/prometheus.yml has {sorted(want_jobs)}")
    for job, targets in jobs.items():
        for target in targets:
            host, port = target.rsplit(":", 1)
            if host not in services:
                problem(f"{config_file}: job {job} scrapes {target}, and {host} is no compose service")
            elif host in tenantgate and int(port) not in listen_ports(host):
                problem(f"{config_file}: job {job} scrapes {target}, but {host} listens on {sorted(listen_ports(host))}")
    # For promtool: the config with its rule files beside it.
    with open(os.path.join(work, "prometheus.yml"), "w") as out:
        out.write(open(config_file).read())
    for target, source in configs.items():
        if target.startswith("/etc/prometheus/") and target != "/etc/prometheus/prometheus.yml":
            with open(os.path.join(work, os.path.basename(target)), "w") as out:
                out.write(open(source).read())

if problems:
    for p in problems:
        print(f"!! {p}")
    print(f"!! check-compose: {len(problems)} problem(s) in docker-compose.yml, the Dockerfile or what they use")
    sys.exit(1)
PY

if [ -f "$work/prometheus.yml" ] && command -v promtool >/dev/null 2>&1; then
    promtool check config "$work/prometheus.yml" >/dev/null \
        || { echo "!! promtool check config: the compose Prometheus config (deploy/compose/prometheus.yml)"; exit 1; }
fi
if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
    docker compose config -q || { echo "!! docker compose config: docker-compose.yml is invalid"; exit 1; }
fi
echo "compose: ok"
