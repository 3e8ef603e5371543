"""The access policy, read from ``mosquitto/acl``: one source for both brokers.

``mosquitto/acl`` says who may write and read which topics, in the ACL syntax that VerneMQ's
``vmq_acl`` reads as it is (``deploy/cloud``). For Mosquitto the same rules become roles of
the dynamic-security plugin (:mod:`._dynsec`), because Mosquitto 2.0.11's ``acl_file`` never
refuses a SUBSCRIBE: it filters each delivered message instead, which lets an agent join
FMAN's shared subscription and swallow its turn of the fleet's messages.

    pattern write|read T    every agent, %u standing for its id (a whole topic level)
    user fman               the rules below it apply to every FMAN worker account
    user fmar               ... to the market's account
    topic [read|write] T    read and write when neither is named

Pure: text in, rules out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ._errors import SiteError

SOURCE = Path(__file__).resolve().parents[2] / "mosquitto" / "acl"
_ACCESS = {"read": ("read",), "write": ("write",), "": ("read", "write")}


@dataclass(frozen=True, slots=True)
class Rule:
    access: str  # "read" or "write"
    topic: str  # a filter; %u for the agent's id in agent rules

    def for_agent(self, agent_id: str) -> str:
        return "/".join(agent_id if lvl == "%u" else lvl for lvl in self.topic.split("/"))


@dataclass(frozen=True, slots=True)
class Policy:
    agent: tuple[Rule, ...]
    services: dict[str, tuple[Rule, ...]]

    def service(self, role: str) -> tuple[Rule, ...]:
        return self.services.get(role, ())


def parse(text: str, *, source: str = "mosquitto/acl") -> Policy:
    agent: list[Rule] = []
    services: dict[str, list[Rule]] = {}
    user: str | None = None
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        match words:
            case ["user", name]:
                user = name
                services.setdefault(name, [])
            case ["pattern", access, topic] if access in ("read", "write"):
                agent.append(Rule(access, topic))
            case ["topic", topic] if user:
                services[user] += [Rule(a, topic) for a in _ACCESS[""]]
            case ["topic", "read" | "write" as how, topic] if user:
                services[user] += [Rule(a, topic) for a in _ACCESS[how]]
            case _:
                raise SiteError(f"{source}:{n}: cannot read {line!r}")
    return Policy(agent=tuple(agent), services={k: tuple(v) for k, v in services.items()})


def load(path: Path = SOURCE) -> Policy:
    try:
        return parse(path.read_text(), source=str(path))
    except OSError as exc:
        raise SiteError(f"{path}: cannot read the access policy ({exc.strerror})") from exc


def render_acl(text: str, fman_accounts: list[str]) -> str:
    """The site's ACL file for VerneMQ: ``user fman`` stands for every FMAN worker's account,
    so its block is repeated under each worker's name (none yet: kept as ``fman``)."""
    lines = text.splitlines()
    try:
        start = lines.index("user fman")
    except ValueError:
        return text
    end = start + 1
    while end < len(lines) and lines[end].startswith("topic "):
        end += 1
    body = lines[start + 1 : end]
    blocks = [[f"user {name}", *body] for name in fman_accounts or ["fman"]]
    joined = [line for i, block in enumerate(blocks) for line in ([""] if i else []) + block]
    return "\n".join(lines[:start] + joined + lines[end:]) + "\n"
