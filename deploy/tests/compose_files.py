"""Readers for the deployment files the compose checks look at: the compose file, Dockerfiles,
.dockerignore, .env.template and the places that read environment variables."""
from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "deploy" / "docker-compose.yml"
ENV_TEMPLATE = ROOT / ".env.template"

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_INTERPOLATION = re.compile(rf"\$(?:\{{(?P<braced>{_NAME})(?P<rest>[^}}]*)\}}|(?P<plain>{_NAME}))")


def load_compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def compose_dir() -> Path:
    return COMPOSE_FILE.parent


def interpolated_names(text: str) -> set[str]:
    """Variables a compose file takes from the environment: `${NAME...}` and `$NAME`, not `$$`."""
    text = text.replace("$$", "")
    return {m.group("braced") or m.group("plain") for m in _INTERPOLATION.finditer(text)}


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's substitution for the forms this file uses: ${NAME}, ${NAME:-default}, ${NAME-default}, $$."""

    def substitute(match: re.Match) -> str:
        name = match.group("braced") or match.group("plain")
        rest = match.group("rest") or ""
        if rest.startswith(":-"):
            return env.get(name) or rest[2:]
        if rest.startswith("-"):
            return env.get(name, rest[1:])
        if rest:
            raise ValueError(f"unsupported interpolation ${{{name}{rest}}}")
        return env.get(name, "")

    parts = value.split("$$")
    return "$".join(_INTERPOLATION.sub(substitute, part) for part in parts)


def env_template() -> dict[str, str]:
    """The variables `.env.template` sets (uncommented `NAME=value` lines)."""
    values = {}
    for line in ENV_TEMPLATE.read_text().splitlines():
        match = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            values[match.group(1)] = match.group(2)
    return values


def environment(service: dict) -> dict[str, str]:
    """A service's `environment`, as a mapping whichever of the two forms it is written in."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def depends_on(service: dict) -> dict[str, dict]:
    listed = service.get("depends_on") or {}
    if isinstance(listed, list):
        return {name: {} for name in listed}
    return listed


def is_job(service: dict) -> bool:
    """A one-shot container: it must not be restarted when it exits."""
    return str(service.get("restart", "no")) == "no"


def volume_mounts(service: dict) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) for every short-syntax volume."""
    mounts = []
    for entry in service.get("volumes") or []:
        parts = entry.split(":")
        mounts.append((parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(",")))
    return mounts


# --- Dockerfiles -----------------------------------------------------------------------------------

@dataclass
class Instruction:
    keyword: str
    arguments: str
    line: int

    def words(self) -> list[str]:
        if self.arguments.startswith("["):
            return json.loads(self.arguments)
        return shlex.split(self.arguments, comments=False, posix=True)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


def dockerfile_instructions(path: Path) -> list[Instruction]:
    """Instructions with their continuation lines joined, comments and parser directives dropped."""
    instructions, pending, start = [], "", 0
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text = pending + line
        pending = ""
        keyword, _, arguments = text.partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip(), start))
    return instructions


def dockerfile_stages(path: Path) -> list[Stage]:
    """Stages with their base image as a release build sees it: `FROM ${ARG}` takes the ARG's default."""
    stages: list[Stage] = []
    defaults: dict[str, str] = {}
    for instruction in dockerfile_instructions(path):
        if instruction.keyword == "ARG" and not stages:
            name, _, default = instruction.arguments.partition("=")
            defaults[name.strip()] = default.strip()
        elif instruction.keyword == "FROM":
            words = instruction.arguments.split()
            name = words[2] if len(words) > 2 and words[1].upper() == "AS" else None
            stages.append(Stage(interpolate(words[0], defaults), name))
        elif stages:
            stages[-1].instructions.append(instruction)
    return stages


@dataclass
class Copy:
    sources: list[str]
    destination: str
    from_stage: str | None
    line: int


def copies(stage: Stage) -> list[Copy]:
    found = []
    for instruction in stage.all("COPY") + stage.all("ADD"):
        words = instruction.words()
        flags = [w for w in words if w.startswith("--")]
        paths = [w for w in words if not w.startswith("--")]
        from_stage = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
        found.append(Copy(paths[:-1], paths[-1], from_stage, instruction.line))
    return found


def destination(workdir: str, path: str) -> str:
    return os.path.normpath(path if path.startswith("/") else os.path.join(workdir, path))


def workdir_at(stage: Stage, line: int) -> str:
    workdir = "/"
    for instruction in stage.all("WORKDIR"):
        if instruction.line < line:
            workdir = destination(workdir, instruction.arguments)
    return workdir


# --- .dockerignore ---------------------------------------------------------------------------------

def _pattern_regex(pattern: str) -> re.Pattern:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def dockerignore_rules(context: Path) -> list[tuple[bool, re.Pattern]]:
    """(excludes, regex) per .dockerignore line; a later line overrides an earlier one."""
    path = context / ".dockerignore"
    rules = []
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
            rules.append((not negated, _pattern_regex(pattern)))
    return rules


def ignored(relative: str, rules: list[tuple[bool, re.Pattern]]) -> bool:
    """Whether Docker leaves `relative` out of the build context (a matching parent counts too)."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for excludes, regex in rules:
        if any(regex.match(candidate) for candidate in candidates):
            excluded = excludes
    return excluded


def context_files(context: Path, source: str, rules) -> list[str]:
    """Files of the build context that a COPY source (a path or a glob) sends, after .dockerignore."""
    matched = []
    for path in sorted(context.glob(source.rstrip("/") or ".")):
        tree = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for file in tree:
            relative = file.relative_to(context).as_posix()
            if not ignored(relative, rules):
                matched.append(relative)
    return matched


# --- Environment variables read by the code --------------------------------------------------------

_SETTINGS_GET = re.compile(r"""\bget\(\s*["']([A-Z][A-Z0-9_]*)["']""")
_OS_ENVIRON = re.compile(r"""os\.(?:environ(?:\.get)?\s*[\[(]|getenv\()\s*["']([A-Z][A-Z0-9_]*)["']""")
_SHELL_DEFAULT = re.compile(r""":\s*"\$\{([A-Z][A-Z0-9_]*):?=""")


def python_sources() -> list[Path]:
    """The services' and the shared package's code (tests excluded)."""
    files = list((ROOT / "shared").rglob("*.py")) + list((ROOT / "services").rglob("*.py"))
    return [f for f in files if "tests" not in f.relative_to(ROOT).parts]


RENDER_SCRIPT = "gateway/render.sh"


def variables_read_by_code() -> dict[str, set[str]]:
    """NAME -> the files that read it: Settings, os.environ anywhere in the services, render.sh's inputs."""
    found: dict[str, set[str]] = {}
    for path in python_sources():
        text = path.read_text()
        names = _OS_ENVIRON.findall(text) + (_SETTINGS_GET.findall(text) if path.name == "config.py" else [])
        for name in names:
            found.setdefault(name, set()).add(path.relative_to(ROOT).as_posix())
    render = ROOT / RENDER_SCRIPT
    if render.exists():
        for name in _SHELL_DEFAULT.findall(render.read_text()):
            found.setdefault(name, set()).add(RENDER_SCRIPT)
    return found
