"""Checks of a Ray cluster-launcher config (`cluster.yaml`, `cluster-local.yaml`).

`python -m raysearch.cluster_config FILE...` prints `FILE: OK`, or one line
naming the file, the key and what is allowed, and exits with status 2.

Two layers:

1. Ray's own: the launcher's JSON schema (`ray/autoscaler/ray-schema.json`),
   the defaults `ray up` fills in (`prepare_config`) and the launcher's own
   checks (`validate_config`), the same functions `ray up` runs before it
   touches a cloud.
2. The project's rules, on the config as `ray up` would run it (defaults
   filled in, `setup_commands` merged into the head and worker lists):

   - Ray version: the setup installs Ray pinned exactly (`ray[...]==X.Y.Z`)
     to a version inside the project's own pin in pyproject.toml, with the
     same extras; every other Ray pin and every `rayproject/ray` image tag
     agrees with it.
   - Storage: the commands export `RAYSEARCH_STORAGE=<experiments root>` and
     it is not head-local (Ray Train refuses a head-local storage path on a
     multi-node cluster). Allowed: a URI of a storage service
     (`s3://`, `gs://`, `abfs://`, ... see STORAGE_SCHEMES), or, with the
     `local` provider only, an absolute path under the shared filesystem the
     config declares with `RAYSEARCH_SHARED_FS=<mount point>`.
   - Token authentication (Ray 2.60): every `ray start` runs with
     `RAY_AUTH_MODE=token`, and `file_mounts` copies the launching machine's
     token (`~/.ray/auth_token`, made by `ray get-auth-token --generate`, which
     must exist) to the same place on every node, so the nodes, the search on
     the head and `ray job submit` from this machine share one token.
   - Nothing but SSH is reachable from outside: on AWS the security group's
     extra inbound rules open TCP 22 only (no `SecurityGroupIds` that cannot
     be checked), and on every provider the dashboard listens on localhost
     only (reach it with `ray dashboard FILE`).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import re
import shlex
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, requires, version
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import ray.autoscaler
from packaging.requirements import Requirement
from ray.autoscaler.sdk import fillout_defaults

from raysearch import cli
from raysearch.config import read_yaml
from raysearch.errors import ConfigError

STORAGE_VAR = "RAYSEARCH_STORAGE"
SHARED_FS_VAR = "RAYSEARCH_SHARED_FS"
# Storage services Ray's storage layer (pyarrow.fs) reaches from every node.
STORAGE_SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss", "az", "hdfs")
SSH_PORT = 22
AUTH_MODE = "RAY_AUTH_MODE=token"
TOKEN_PATH = "~/.ray/auth_token"  # where `ray get-auth-token --generate` writes Ray's token
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"

# Lists of shell commands in a prepared config, and per node type.
COMMAND_KEYS = ("initialization_commands", "setup_commands", "head_setup_commands",
                "worker_setup_commands", "head_start_ray_commands", "worker_start_ray_commands")
NODE_TYPE_COMMAND_KEYS = ("initialization_commands", "worker_setup_commands")

_RAY_PIN = re.compile(r"(?<![\w.\-/])ray(\[[^\]]*\])?\s*(===?|~=|>=|<=|!=|>|<)\s*([0-9][0-9A-Za-z.*+!]*)")
_RAY_IMAGE = re.compile(r"rayproject/ray(?:-ml)?:([\w.\-]+)")
_VERSION_IN_TAG = re.compile(r"^([0-9]+\.[0-9]+(?:\.[0-9]+)?)")
_ASSIGNMENT = r"(?<![\w$]){name}=(?:\"([^\"]*)\"|'([^']*)'|([^\s;&|)'\"]+))"


def _assignments(name: str, text: str) -> list[str]:
    return [next(g for g in m.groups() if g is not None)
            for m in re.finditer(_ASSIGNMENT.format(name=re.escape(name)), text)]


# ---------------------------------------------------------------- loading


def load_cluster_yaml(path: str | Path) -> dict[str, Any]:
    """The YAML mapping in `path`; ConfigError for a missing file, bad YAML or a non-mapping."""
    return read_yaml(Path(path), what="cluster config", expected="cluster_name, provider, ...")


# ---------------------------------------------------------------- Ray's own validation


def _key(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _schema_error(path: Path, err: Any) -> ConfigError:
    """One line from a jsonschema ValidationError: the key, what is wrong, what the schema allows."""
    key = _key(err.absolute_path)
    schema = err.schema if isinstance(err.schema, dict) else {}
    if err.validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = re.findall(r"'([^']+)' (?:was|were) unexpected", err.message)
        extra_text = ", ".join(extra) if extra else err.message
        return ConfigError(f"{path}: {key}: unknown key {extra_text} (Ray's cluster-launcher schema allows: "
                           f"{', '.join(allowed)})")
    if err.validator == "required":
        return ConfigError(f"{path}: {key}: {err.message} (Ray's cluster-launcher schema)")
    if err.validator == "type":
        hint = "; a command containing ': ' must be quoted in YAML" if "commands[" in key else ""
        return ConfigError(f"{path}: {key}: {_short(err.instance)} is not of type {err.validator_value} "
                           f"(Ray's cluster-launcher schema){hint}")
    if err.validator == "enum":
        return ConfigError(f"{path}: {key}: {_short(err.instance)} is not one of {err.validator_value} "
                           f"(Ray's cluster-launcher schema)")
    return ConfigError(f"{path}: {key}: {_short(err.message, 200)} (Ray's cluster-launcher schema)")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Ray's launcher helpers print through cli_logger; keep the one-line contract of this module."""
    launcher_logger = logging.getLogger("ray.autoscaler")
    level = launcher_logger.level
    launcher_logger.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        launcher_logger.setLevel(level)


def ray_schema() -> dict[str, Any]:
    """The launcher's JSON schema, the very file `validate_config` reads."""
    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def validate_with_ray(config: dict[str, Any], path: str | Path = "<config>") -> dict[str, Any]:
    """Validate as `ray up` does before it launches anything, with Ray's public pieces; return the config as
    `ray up` runs it.

    The raw file is checked against Ray's launcher schema (so errors name the user's own keys); Ray's
    `ray.autoscaler.sdk.fillout_defaults` fills the defaults `ray up` uses; `setup_commands` are merged into
    the head's and the workers' lists as `ray up` runs them; the result is checked against the schema again,
    and the launcher's own rule that `head_node_type` names one of `available_node_types`.
    """
    path = Path(path)
    try:
        jsonschema.validate(config, ray_schema())
    except jsonschema.ValidationError as err:
        raise _schema_error(path, err) from None
    provider_type = config["provider"].get("type")
    if provider_type == "local":
        for field in ("head_node", "worker_nodes", "available_node_types", "head_node_type"):
            if config.get(field):
                raise ConfigError(f"{path}: {field}: not allowed with provider.type local (Ray's local provider "
                                  f"makes one node type from provider.head_ip and provider.worker_ips)")
        for field in ("head_ip", "worker_ips"):
            if field not in config["provider"]:
                raise ConfigError(f"{path}: provider.{field}: required with provider.type local "
                                  f"(head_ip: the head machine, worker_ips: a list of the other machines)")
    try:
        with _quiet():
            prepared = fillout_defaults(copy.deepcopy(config))
        for key in ("head_setup_commands", "worker_setup_commands"):  # what `ray up` runs on each node
            prepared[key] = list(prepared.get("setup_commands") or []) + list(prepared.get(key) or [])
        jsonschema.validate(prepared, ray_schema())
    except jsonschema.ValidationError as err:
        raise _schema_error(path, err) from None
    except Exception as err:  # Ray raises ValueError, KeyError, click exceptions...
        message = getattr(err, "message", None) or str(err) or type(err).__name__
        raise ConfigError(f"{path}: Ray's cluster launcher rejects the config: {message}") from None
    node_types = prepared.get("available_node_types") or {}
    if provider_type != "local" and prepared.get("head_node_type") not in node_types:
        raise ConfigError(f"{path}: Ray's cluster launcher rejects the config: head_node_type "
                          f"{prepared.get('head_node_type')!r} is not one of available_node_types "
                          f"({', '.join(node_types) or 'none'})")
    return prepared


# ---------------------------------------------------------------- the project's rules


def project_ray_requirement():
    """The `ray` requirement the project pins (pyproject.toml, else the installed metadata)."""
    requirements: list[str] = []
    if PYPROJECT.is_file():
        requirements = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    else:  # an installed (non-editable) copy: the metadata pip recorded from pyproject

        requirements = requires("raysearch") or []
    for line in requirements:
        requirement = Requirement(line)
        if requirement.name == "ray" and requirement.marker is None:
            return requirement
    raise RuntimeError(f"no `ray` requirement in {PYPROJECT}")


def commands(config: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, command) for every shell command of a (prepared) config."""
    out: list[tuple[str, str]] = []
    for key in COMMAND_KEYS:
        for index, command in enumerate(config.get(key) or []):
            out.append((f"{key}[{index}]", str(command)))
    for name, node_type in (config.get("available_node_types") or {}).items():
        for key in NODE_TYPE_COMMAND_KEYS:
            for index, command in enumerate(node_type.get(key) or []):
                out.append((f"available_node_types.{name}.{key}[{index}]", str(command)))
    return out


def _docker_images(config: dict[str, Any]) -> list[tuple[str, str]]:
    images: list[tuple[str, str]] = []
    docker = config.get("docker") or {}
    for key in ("image", "head_image", "worker_image"):
        if docker.get(key):
            images.append((f"docker.{key}", str(docker[key])))
    for name, node_type in (config.get("available_node_types") or {}).items():
        image = (node_type.get("docker") or {}).get("worker_image")
        if image:
            images.append((f"available_node_types.{name}.docker.worker_image", str(image)))
    return images


def _installed_ray_version() -> str | None:
    try:
        return version("ray")
    except PackageNotFoundError:
        return None


def check_ray_version(config: dict[str, Any], path: str | Path = "<config>") -> str:
    """The setup installs Ray pinned to a version inside the project's pin; return that version."""
    path = Path(path)
    pin = project_ray_requirement()
    extras = sorted(pin.extras)
    name = f"ray[{','.join(extras)}]" if extras else "ray"
    example = _installed_ray_version()
    example = example if example and pin.specifier.contains(example, prereleases=True) else "X.Y.Z"
    wanted = f"{name}==X.Y.Z with X.Y.Z in {pin.specifier}, e.g. {name}=={example}"
    pinned: list[tuple[str, str]] = []
    for key, command in commands(config):
        for match in _RAY_PIN.finditer(command):
            got_extras = sorted(e.strip() for e in (match.group(1) or "[]")[1:-1].split(",") if e.strip())
            operator, version = match.group(2), match.group(3)
            if operator not in ("==", "===") or "*" in version:
                raise ConfigError(f"{path}: {key}: `{match.group(0)}` is not an exact pin; allowed: {wanted} "
                                  f"(pyproject.toml pins {pin})")
            if not pin.specifier.contains(version, prereleases=True):
                raise ConfigError(f"{path}: {key}: installs Ray {version}, outside the project's pin {pin} "
                                  f"(pyproject.toml); allowed: {wanted}")
            if not set(extras) <= set(got_extras):
                raise ConfigError(f"{path}: {key}: `{match.group(0)}` lacks the extras {extras} the project needs "
                                  f"(pyproject.toml pins {pin}); allowed: {wanted}")
            pinned.append((key, version))
    for key, image in _docker_images(config):
        match = _RAY_IMAGE.search(image)
        if not match:
            continue
        tag_version = _VERSION_IN_TAG.match(match.group(1))
        if not tag_version or not pin.specifier.contains(tag_version.group(1), prereleases=True):
            raise ConfigError(f"{path}: {key}: image {image} does not carry a Ray version inside the project's pin "
                              f"{pin}; allowed: a rayproject image tagged with such a version, e.g. 2.60.0-py311-gpu")
        pinned.append((key, tag_version.group(1)))
    if not any(key.endswith("]") for key, _ in pinned):
        raise ConfigError(f"{path}: setup_commands: no command installs Ray pinned to the project's version; "
                          f"allowed: pip install \"{name}==X.Y.Z\" with X.Y.Z in {pin.specifier} (pyproject.toml pins {pin})")
    versions = {version for _, version in pinned}
    if len(versions) > 1:
        listing = ", ".join(f"{key}: {version}" for key, version in pinned)
        raise ConfigError(f"{path}: the config pins different Ray versions ({listing}); allowed: one version "
                          f"inside {pin}")
    return versions.pop()


def storage_setting(config: dict[str, Any]) -> tuple[str, str] | None:
    """(key, value) of the RAYSEARCH_STORAGE the commands export, or None."""
    found = [(key, value) for key, command in commands(config) for value in _assignments(STORAGE_VAR, command)]
    if not found:
        return None
    values = {value for _, value in found}
    if len(values) > 1:
        raise ConfigError(f"{STORAGE_VAR} is set to different values ({', '.join(sorted(values))}); "
                          f"allowed: one experiments root")
    return found[0]


def check_storage(config: dict[str, Any], path: str | Path = "<config>") -> str:
    """The experiments' storage is reachable from every node (not head-local); return it."""
    path = Path(path)
    allowed = (f"a URI of a storage service ({', '.join(s + '://' for s in STORAGE_SCHEMES)}) or, with "
               f"provider.type local, an absolute path under the shared filesystem declared as "
               f"{SHARED_FS_VAR}=<mount point>")
    try:
        setting = storage_setting(config)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    if setting is None:
        raise ConfigError(f"{path}: setup_commands: no `{STORAGE_VAR}=...` exported for the experiments' storage "
                          f"(Ray Train refuses a head-local path on a multi-node cluster); allowed: {allowed}")
    key, value = setting
    scheme, sep, rest = value.partition("://")
    if sep:
        if scheme.lower() in STORAGE_SCHEMES and rest.strip("/"):
            return value
        raise ConfigError(f"{path}: {key}: {STORAGE_VAR}={value} is not storage every node reaches; allowed: {allowed}")
    if not value.startswith("/"):
        raise ConfigError(f"{path}: {key}: {STORAGE_VAR}={value} is a relative or home path (head-local); "
                          f"allowed: {allowed}")
    provider_type = (config.get("provider") or {}).get("type")
    if provider_type != "local":
        raise ConfigError(f"{path}: {key}: {STORAGE_VAR}={value} is a path on the head node "
                          f"(provider.type {provider_type}); allowed: a URI of a storage service "
                          f"({', '.join(s + '://' for s in STORAGE_SCHEMES)})")
    shared = sorted({v for _, command in commands(config) for v in _assignments(SHARED_FS_VAR, command)})
    if not shared:
        raise ConfigError(f"{path}: {key}: {STORAGE_VAR}={value} is a path, but no `{SHARED_FS_VAR}=<mount point>` "
                          f"declares the shared filesystem it is on; allowed: {allowed}")
    mounts = [m.rstrip("/") or "/" for m in shared]
    if not any(m.startswith("/") and m != "/" and (value == m or value.startswith(m + "/")) for m in mounts):
        raise ConfigError(f"{path}: {key}: {STORAGE_VAR}={value} is not under the shared filesystem "
                          f"{SHARED_FS_VAR}={', '.join(shared)}; allowed: {allowed}")
    return value


def _flag_values(command: str, flag: str) -> list[str]:
    """Values of `--flag=V` / `--flag V` in a shell command (shell quoting removed)."""
    try:
        words = shlex.split(command, comments=False)
    except ValueError:
        words = command.split()
    values = []
    for index, word in enumerate(words):
        if word.startswith(flag + "="):
            values.append(word[len(flag) + 1:])
        elif word == flag and index + 1 < len(words):
            values.append(words[index + 1])
    return values


def _ray_start_commands(config: dict[str, Any], key: str) -> list[tuple[str, str]]:
    return [(f"{key}[{i}]", str(c)) for i, c in enumerate(config.get(key) or []) if re.search(r"\bray\s+start\b", str(c))]


def check_token_auth(config: dict[str, Any], path: str | Path = "<config>") -> None:
    """Every `ray start` runs with RAY_AUTH_MODE=token, and file_mounts carries an existing token to every node."""
    path = Path(path)
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        for where, command in _ray_start_commands(config, key):
            if AUTH_MODE not in command:
                raise ConfigError(f"{path}: {where}: `ray start` without {AUTH_MODE}: Ray 2.60 would start this node "
                                  f"{'without token authentication' if key.startswith('head') else 'unable to join'}"
                                  f"; allowed: `{AUTH_MODE} ray start ...`")
    mounts = config.get("file_mounts") or {}
    source = next((src for target, src in mounts.items() if _same_path(target, TOKEN_PATH)), None)
    if source is None:
        raise ConfigError(f"{path}: file_mounts: no `{TOKEN_PATH}: {TOKEN_PATH}` entry: the nodes would have no "
                          f"token to start with and this machine's `ray job submit` none to send; allowed: "
                          f"`{TOKEN_PATH}: {TOKEN_PATH}` after `ray get-auth-token --generate`")
    if not Path(str(source)).expanduser().is_file():
        raise ConfigError(f"{path}: file_mounts.{TOKEN_PATH}: {source} does not exist on this machine; make it with "
                          f"`ray get-auth-token --generate` (Ray's token, copied to every node)")


def _same_path(a: str, b: str) -> bool:
    return str(a).rstrip("/") == b


def check_network(config: dict[str, Any], path: str | Path = "<config>") -> None:
    """Only SSH is reachable from outside; the dashboard listens on the head's localhost only."""
    path = Path(path)
    provider = config.get("provider") or {}
    if provider.get("type") == "aws":
        rules = (provider.get("security_group") or {}).get("IpPermissions") or []
        for index, rule in enumerate(rules):
            key = f"provider.security_group.IpPermissions[{index}]"
            if not isinstance(rule, dict):
                raise ConfigError(f"{path}: {key}: must be a mapping; allowed: TCP port {SSH_PORT} only")
            protocol = str(rule.get("IpProtocol", "")).lower()
            ports = (rule.get("FromPort"), rule.get("ToPort"))
            if protocol not in ("tcp", "6") or ports != (SSH_PORT, SSH_PORT):
                raise ConfigError(f"{path}: {key}: opens {protocol or '?'} ports {ports[0]}-{ports[1]}; allowed: "
                                  f"TCP port {SSH_PORT} only (reach the dashboard with `ray dashboard {path.name}`)")
        for name, node_type in (config.get("available_node_types") or {}).items():
            node_config = node_type.get("node_config") or {}
            groups = node_config.get("SecurityGroupIds") or [
                g for interface in node_config.get("NetworkInterfaces") or [] for g in interface.get("Groups", [])]
            if groups:
                raise ConfigError(f"{path}: available_node_types.{name}.node_config: security groups "
                                  f"{', '.join(map(str, groups))} cannot be checked here; allowed: "
                                  f"provider.security_group with inbound rules for TCP port {SSH_PORT} only")
    for key, command in _ray_start_commands(config, "head_start_ray_commands"):
        for host in _flag_values(command, "--dashboard-host"):
            if host not in LOCAL_HOSTS:
                raise ConfigError(f"{path}: {key}: --dashboard-host={host} exposes the dashboard (it runs jobs); "
                                  f"allowed: {', '.join(LOCAL_HOSTS)} or no flag, and `ray dashboard {path.name}` "
                                  f"to reach it through SSH")


def check_cluster_file(path: str | Path) -> dict[str, Any]:
    """Every check on one file: Ray's validation, then the project's rules. Return the prepared config."""
    path = Path(path)
    prepared = validate_with_ray(load_cluster_yaml(path), path)
    check_ray_version(prepared, path)
    check_storage(prepared, path)
    check_network(prepared, path)
    check_token_auth(prepared, path)
    return prepared


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(
        prog="python -m raysearch.cluster_config",
        description="Check Ray cluster-launcher configs: Ray's own schema and launcher checks, then the project's "
                    "rules (Ray version = the project's pin, shared storage, token authentication, SSH only).")
    parser.add_argument("files", nargs="+", metavar="FILE", help="cluster YAML, e.g. cluster.yaml")
    args = parser.parse_args(argv)
    for file in args.files:
        try:
            check_cluster_file(file)
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"{file}: OK")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
