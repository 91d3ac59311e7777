#!/usr/bin/env python3
"""Checks fly.toml without flyctl: parses it (stdlib tomllib) and checks every key against
the keys Fly documents for an app's configuration (the fly.toml reference; flyctl's
internal/appconfig types, whose TOML tags are those keys), failing on an unknown key or a
value of the wrong kind; then checks what Plinth relies on (the release command, the
process groups, the readiness check's timeout against the handler's, the metrics port kept
off the public services, the stop signal against the Dockerfile's, no secret in [env]);
then that what its comments point at is there (repository files, and `cargo run -p <package>
-- <subcommand>` lines naming a workspace package and one of its subcommands).

    ops/check-fly-toml.py [fly.toml] [--dockerfile Dockerfile] [--health api/src/http/health.rs]
    ops/check-fly-toml.py --self-test     # shows that each kind of mistake is caught

Exit status 0 when the file passes, 1 with one line per problem otherwise.
"""
import argparse
import copy
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# ------------------------------------------------------------------ Fly's keys
# A schema is a dict of key -> kind. Kinds: "str", "int", "bool", "num", "duration"
# (a Go duration string such as "30s", or a number of seconds), "strs" (list of strings),
# "map" (any keys, scalar values), "any", a nested dict (a table), ("array", schema) for
# an array of tables, ("table_or_array", schema) for a key Fly takes either way.

CHECK_HTTP = {
    "interval": "duration", "timeout": "duration", "grace_period": "duration",
    "method": "str", "path": "str", "protocol": "str", "tls_skip_verify": "bool",
    "tls_server_name": "str", "headers": "map",
}
CHECK_TCP = {"interval": "duration", "timeout": "duration", "grace_period": "duration"}
MACHINE_CHECK = {
    "command": "strs", "image": "str", "entrypoint": "strs", "kill_signal": "str",
    "kill_timeout": "duration",
}
CONCURRENCY = {"type": "str", "hard_limit": "int", "soft_limit": "int"}
TLS_OPTIONS = {"alpn": "strs", "versions": "strs", "default_self_signed": "bool"}
HTTP_OPTIONS = {
    "compress": "bool", "h2_backend": "bool", "idle_timeout": "int", "headers_read_timeout": "int",
    "response": {"headers": "map", "pristine": "bool"},
    "replay_cache": ("array", {"path_prefix": "str", "ttl_seconds": "int", "type": "str", "name": "str",
                               "allow_bypass": "bool"}),
}
PORT = {
    "port": "int", "start_port": "int", "end_port": "int", "handlers": "strs", "force_https": "bool",
    "tls_options": TLS_OPTIONS, "http_options": HTTP_OPTIONS, "proxy_proto_options": {"version": "str"},
}
AUTOSTOP = "autostop"  # "off" | "stop" | "suspend", or a boolean (the older form)
COMPUTE = {
    "size": "str", "memory": "str", "cpu_kind": "str", "cpus": "int", "memory_mb": "int",
    "max_memory_mb": "int", "gpus": "int", "gpu_kind": "str", "host_dedication_id": "str",
    "persist_rootfs": "str", "kernel_args": "strs", "processes": "strs",
}
FLY_SCHEMA = {
    "app": "str", "primary_region": "str", "kill_signal": "str", "kill_timeout": "duration",
    "swap_size_mb": "int", "console_command": "str", "host_dedication_id": "str",
    "machine_config": "str", "container": "str",
    "experimental": {
        "cmd": "strs", "entrypoint": "strs", "exec": "strs", "auto_rollback": "bool",
        "enable_consul": "bool", "enable_etcd": "bool", "lazy_load_images": "bool",
        "attached": "any", "machine_config": "str",
    },
    "build": {
        "builder": "str", "args": "map", "buildpacks": "strs", "image": "str", "settings": "map",
        "builtin": "str", "dockerfile": "str", "ignorefile": "str", "build-target": "str",
        "compose": {"file": "str"}, "compression": "str", "compression_level": "int",
    },
    "deploy": {
        "strategy": "str", "max_unavailable": "num", "wait_timeout": "duration",
        "release_command": "str", "release_command_timeout": "duration",
        "release_command_vm": COMPUTE, "seed_command": "str",
    },
    "env": "map",
    "processes": "map",
    "mounts": ("table_or_array", {
        "source": "str", "destination": "str", "initial_size": "str", "snapshot_retention": "int",
        "scheduled_snapshots": "bool", "auto_extend_size_threshold": "int",
        "auto_extend_size_increment": "str", "auto_extend_size_limit": "str", "processes": "strs",
    }),
    "http_service": {
        "internal_port": "int", "force_https": "bool", "auto_stop_machines": AUTOSTOP,
        "auto_start_machines": "bool", "min_machines_running": "int", "processes": "strs",
        "concurrency": CONCURRENCY, "tls_options": TLS_OPTIONS, "http_options": HTTP_OPTIONS,
        "checks": ("array", CHECK_HTTP), "machine_checks": ("array", MACHINE_CHECK),
    },
    "services": ("array", {
        "protocol": "str", "internal_port": "int", "auto_stop_machines": AUTOSTOP,
        "auto_start_machines": "bool", "min_machines_running": "int", "ports": ("array", PORT),
        "concurrency": CONCURRENCY, "tcp_checks": ("array", CHECK_TCP),
        "http_checks": ("array", CHECK_HTTP), "machine_checks": ("array", MACHINE_CHECK),
        "processes": "strs",
    }),
    # Top-level checks: a table of named checks.
    "checks": ("named", {**CHECK_HTTP, "port": "int", "type": "str", "processes": "strs"}),
    "files": ("array", {"guest_path": "str", "local_path": "str", "secret_name": "str", "raw_value": "str",
                        "processes": "strs"}),
    "machine_checks": ("array", MACHINE_CHECK),
    "restart": ("array", {"policy": "str", "retries": "int", "processes": "strs"}),
    "vm": ("array", COMPUTE),
    "statics": ("array", {"guest_path": "str", "url_prefix": "str", "tigris_bucket": "str",
                          "index_document": "str"}),
    "metrics": ("table_or_array", {"port": "int", "path": "str", "https": "bool", "processes": "strs"}),
}

DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def seconds(value):
    """A Fly duration (Go syntax, or a bare number of seconds) in seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return sum(float(n) * UNIT_SECONDS[u] for n, u in DURATION_PART.findall(value))


def check_value(path, kind, value, problems):
    def wrong(expected):
        problems.append(f"{path}: expected {expected}, got {type(value).__name__} {value!r}")

    if isinstance(kind, dict):
        if not isinstance(value, dict):
            return wrong("a table")
        for key, sub in value.items():
            if key not in kind:
                problems.append(f"{path}.{key}: unknown key (not in Fly's fly.toml reference)")
            else:
                check_value(f"{path}.{key}", kind[key], sub, problems)
        return
    if isinstance(kind, tuple):
        shape, schema = kind
        if shape == "named":
            if not isinstance(value, dict):
                return wrong("a table of named tables")
            for name, sub in value.items():
                check_value(f"{path}.{name}", schema, sub, problems)
            return
        if shape == "table_or_array" and isinstance(value, dict):
            return check_value(path, schema, value, problems)
        if not isinstance(value, list):
            return wrong("an array of tables ([[...]])")
        for i, item in enumerate(value):
            check_value(f"{path}[{i}]", schema, item, problems)
        return
    ok = {
        "str": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "num": isinstance(value, (int, float)) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "strs": isinstance(value, list) and all(isinstance(v, str) for v in value),
        "map": isinstance(value, dict) and all(not isinstance(v, (dict, list)) or
                                               (isinstance(v, list) and all(isinstance(x, str) for x in v))
                                               for v in value.values()),
        "any": True,
        "duration": (isinstance(value, (int, float)) and not isinstance(value, bool))
        or (isinstance(value, str) and bool(DURATION.match(value))),
        AUTOSTOP: isinstance(value, bool) or value in ("off", "stop", "suspend"),
    }[kind]
    if not ok:
        wrong({"duration": "a duration such as \"30s\"", AUTOSTOP: "\"off\", \"stop\", \"suspend\" or a boolean",
               "strs": "a list of strings", "map": "a table of plain values"}.get(kind, kind))


# ------------------------------------------------------------------ Plinth's requirements
def as_list(value):
    return value if isinstance(value, list) else [value] if isinstance(value, dict) else []


def readyz_timeout(health_rs):
    """The readiness handler's own timeout, in seconds, read from its source."""
    src = health_rs.read_text()
    body = src[src.find("fn readyz"):]
    m = re.search(r"Duration::from_(secs|millis)\((\d+)\)", body)
    if not m:
        return None
    return int(m.group(2)) / (1000 if m.group(1) == "millis" else 1)


def stopsignal(dockerfile):
    for line in dockerfile.read_text().splitlines():
        m = re.match(r"\s*STOPSIGNAL\s+(\S+)", line, re.IGNORECASE)
        if m:
            return m.group(1)
    return None


SECRET_NAME = re.compile(r"(DATABASE_URL|PASSWORD|SECRET|TOKEN|_KEY$|REDIS_URL|SMTP_URL)")
DRAIN_SECONDS = 10  # README (Faults): SIGTERM drains for at most 10 s.


def check_plinth(conf, problems, dockerfile, health_rs):
    processes = conf.get("processes", {})
    for group, command in {"app": "plinth serve", "worker": "plinth worker"}.items():
        if processes.get(group) != command:
            problems.append(f"processes.{group}: expected {command!r}, got {processes.get(group)!r}")
    groups = set(processes) or {"app"}

    def known_groups(path, names):
        for name in names or []:
            if name not in groups:
                problems.append(f"{path}: process group {name!r} is not in [processes]")

    release = conf.get("deploy", {}).get("release_command")
    if release != "plinth migrate":
        problems.append(f"deploy.release_command: expected 'plinth migrate', got {release!r}")

    env = conf.get("env", {})
    for key, expected in {"PLINTH_ENV": "production", "PLINTH_GRAPHQL_INTROSPECTION": "false"}.items():
        if env.get(key) != expected:
            problems.append(f"env.{key}: expected {expected!r}, got {env.get(key)!r}")
    for key in env:
        if SECRET_NAME.search(key):
            problems.append(f"env.{key}: looks like a secret; set it with `fly secrets set` (docs/deploy.md)")

    signal = conf.get("kill_signal")
    docker_signal = stopsignal(dockerfile) if dockerfile.exists() else None
    if signal is None or signal != docker_signal:
        problems.append(f"kill_signal {signal!r} differs from the Dockerfile's STOPSIGNAL {docker_signal!r}")
    if "kill_timeout" in conf and seconds(conf["kill_timeout"]) <= DRAIN_SECONDS:
        problems.append(f"kill_timeout: {conf['kill_timeout']!r} leaves no time past the {DRAIN_SECONDS} s drain")

    services = []
    http = conf.get("http_service")
    if http:
        services.append(("http_service", http, http.get("checks", [])))
    for i, svc in enumerate(conf.get("services", [])):
        services.append((f"services[{i}]", svc, svc.get("http_checks", [])))
    if not services:
        problems.append("no [http_service] or [[services]]: the API would not be reachable")
    public_ports = {svc.get("internal_port") for _, svc, _ in services}
    handler = readyz_timeout(health_rs) if health_rs.exists() else None
    if handler is None:
        problems.append(f"cannot read the /readyz handler's timeout from {health_rs}")
    readiness = 0
    for path, svc, checks in services:
        known_groups(f"{path}.processes", svc.get("processes"))
        limits = svc.get("concurrency", {})
        if limits.get("soft_limit", 0) > limits.get("hard_limit", float("inf")):
            problems.append(f"{path}.concurrency: soft_limit is above hard_limit")
        for j, chk in enumerate(checks):
            if chk.get("path") != "/readyz":
                continue
            readiness += 1
            timeout = seconds(chk.get("timeout", "2s"))  # Fly's default check timeout
            if handler is not None and timeout <= handler:
                problems.append(f"{path}.checks[{j}].timeout: {timeout:g} s is not longer than the "
                                f"/readyz handler's own {handler:g} s timeout")
    if readiness == 0:
        problems.append("no http check on /readyz")

    metrics = as_list(conf.get("metrics"))
    if not metrics:
        problems.append("no [[metrics]]: Fly's Prometheus would not scrape the server")
    metrics_addr = env.get("PLINTH_METRICS_ADDR", "")
    for i, m in enumerate(metrics):
        known_groups(f"metrics[{i}].processes", m.get("processes"))
        if m.get("port") in public_ports:
            problems.append(f"metrics[{i}].port {m.get('port')} is a public service's internal_port: "
                            "/metrics would be reachable from the internet")
        if not metrics_addr.endswith(f":{m.get('port')}"):
            problems.append(f"metrics[{i}].port {m.get('port')} is not the port of env.PLINTH_METRICS_ADDR "
                            f"({metrics_addr!r})")

    vms = conf.get("vm", [])
    if not vms:
        problems.append("no [[vm]]: machines would get Fly's default size")
    for i, vm in enumerate(vms):
        known_groups(f"vm[{i}].processes", vm.get("processes"))
        size = vm.get("size")
        if size is not None and not re.match(r"^(shared-cpu|performance)-\d+x$|^(a10|a100-40gb|a100-80gb|l40s)$", size):
            problems.append(f"vm[{i}].size: {size!r} is not a Fly machine preset")


# ------------------------------------------------------------------ what the comments point at
# A repository path (bench/load.sh, api/src/http/health.rs ...), not part of a URL or an
# absolute path.
REPO_PATH = re.compile(r"(?<![\w./:-])((?:bench|ops|scripts|docs|api|crates|src|tests|migration|web)/[\w./-]*[\w])")
CARGO_RUN = re.compile(r"cargo run -p ([\w-]+)(?: --release)? -- ([\w-]+)")


def workspace_packages(root):
    """The workspace's packages: name -> directory."""
    with open(root / "Cargo.toml", "rb") as f:
        members = tomllib.load(f).get("workspace", {}).get("members", [])
    packages = {}
    for member in members:
        try:
            with open(root / member / "Cargo.toml", "rb") as f:
                name = tomllib.load(f).get("package", {}).get("name")
        except OSError:
            continue
        if name:
            packages[name] = root / member
    return packages


def subcommands(package_dir):
    """The clap subcommands of a package's binary (`enum Command` in src/main.rs), as
    typed on the command line (kebab-case)."""
    try:
        src = (package_dir / "src" / "main.rs").read_text()
    except OSError:
        return set()
    m = re.search(r"enum Command \{(.*?)\n\}", src, re.S)
    if not m:
        return set()
    variants = re.findall(r"^\s*([A-Z]\w*)\s*[({,]", m.group(1), re.M)
    return {re.sub(r"(?<!^)(?=[A-Z])", "-", v).lower() for v in variants}


def check_references(text, root, problems):
    """Every repository path and `cargo run -p ... -- <subcommand>` in fly.toml's text exists."""
    for path in sorted(set(REPO_PATH.findall(text))):
        if not (root / path).exists():
            problems.append(f"mentions {path}, which is not in the repository")
    packages = None
    for package, sub in CARGO_RUN.findall(text):
        packages = packages if packages is not None else workspace_packages(root)
        if package not in packages:
            problems.append(f"mentions `cargo run -p {package}`, which is not a workspace package")
        elif sub not in subcommands(packages[package]):
            problems.append(f"mentions `cargo run -p {package} -- {sub}`, which is not a subcommand of {package}")


def check(conf, dockerfile, health_rs, text=None, root=ROOT):
    problems = []
    check_value("fly.toml", FLY_SCHEMA, conf, problems)
    if not problems:
        check_plinth(conf, problems, dockerfile, health_rs)
    if text is not None:
        check_references(text, root, problems)
    return problems


# ------------------------------------------------------------------ self-test
def self_test(conf, dockerfile, health_rs, text):
    """Each mutation of the (passing) file must be caught."""
    mutations = {
        "unknown top-level key": lambda c: c.update(regions=["cdg"]),
        "unknown key in a check": lambda c: c["http_service"]["checks"][0].update(path_regex="/"),
        "unknown key in [[vm]]": lambda c: c["vm"][0].update(ram="1gb"),
        "unknown key in [deploy]": lambda c: c["deploy"].update(release_cmd="plinth migrate"),
        "a duration that is not one": lambda c: c.update(kill_timeout="30 seconds"),
        "a check no longer than the handler": lambda c: c["http_service"]["checks"][0].update(timeout="2s"),
        "another release command": lambda c: c["deploy"].update(release_command="plinth serve"),
        "introspection on": lambda c: c["env"].update(PLINTH_GRAPHQL_INTROSPECTION="true"),
        "a secret in [env]": lambda c: c["env"].update(DATABASE_URL="postgres://x"),
        "metrics on the public port": lambda c: c["metrics"][0].update(port=8080),
        "another stop signal": lambda c: c.update(kill_signal="SIGINT"),
        "no worker group": lambda c: c["processes"].pop("worker"),
        "a vm for a missing group": lambda c: c["vm"][0].update(processes=["web"]),
    }
    failures = 0
    for name, mutate in mutations.items():
        mutated = copy.deepcopy(conf)
        mutate(mutated)
        caught = check(mutated, dockerfile, health_rs)
        print(f"{'caught' if caught else 'MISSED'}  {name}" + (f": {caught[0]}" if caught else ""))
        failures += not caught
    # Mutations of the text (comments): each replaces something the file says.
    text_mutations = {
        "a removed script in a comment": ("cargo run -p bench --release -- read", "bench/load.sh"),
        "an unknown bench subcommand": ("-- fanout", "-- ws-fanout"),
        "an unknown package": ("cargo run -p bench", "cargo run -p benches"),
        "a missing source file": ("api/src/http/health.rs", "api/src/health.rs"),
    }
    for name, (before, after) in text_mutations.items():
        if before not in text:
            print(f"MISSED  {name}: the file no longer says {before!r}")
            failures += 1
            continue
        mutated = text.replace(before, after, 1)
        caught = check(tomllib.loads(mutated), dockerfile, health_rs, mutated)
        print(f"{'caught' if caught else 'MISSED'}  {name}" + (f": {caught[0]}" if caught else ""))
        failures += not caught
    return failures


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("file", nargs="?", default=str(ROOT / "fly.toml"))
    p.add_argument("--dockerfile", default=str(ROOT / "Dockerfile"))
    p.add_argument("--health", default=str(ROOT / "api/src/http/health.rs"))
    p.add_argument("--self-test", action="store_true")
    args = p.parse_args()
    try:
        text = Path(args.file).read_text()
        conf = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        print(f"{args.file}: {e}")
        return 1
    dockerfile, health_rs = Path(args.dockerfile), Path(args.health)
    problems = check(conf, dockerfile, health_rs, text)
    if problems:
        print("\n".join(f"{args.file}: {p}" for p in problems))
        return 1
    if args.self_test:
        missed = self_test(conf, dockerfile, health_rs, text)
        if missed:
            print(f"self-test: {missed} mutation(s) not caught")
            return 1
    print(f"{args.file}: ok ({len(conf)} top-level keys, processes {', '.join(conf.get('processes', {}))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
