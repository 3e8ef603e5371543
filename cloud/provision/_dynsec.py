"""Mosquitto's dynamic-security plugin: the policy as roles, accounts as clients.

Why the plugin (docs/deploy.md, "Why the dynamic-security plugin"): with Mosquitto 2.0.11 it
is the only way, short of a broker or plugin that Debian does not package, to refuse a
SUBSCRIBE (``acl_file`` grants them all, ``$share/...`` included) and to pin an account to
its client id. It ships in Debian's ``mosquitto`` package and is maintained with the broker.

Its limits shape what is here. It does not expand ``%u`` (2.0.11 matches ACL topics
literally), so each agent gets its own role, ``agent/<id>``, with the policy's agent rules
filled in; services share one role per service through a group. It reads its JSON file
only when the broker starts, so a running broker is changed through its ``$CONTROL`` topic
(:mod:`._admin`) and saves the file itself; a broker that is not running gets the same
commands applied to the file by :func:`apply` here.

    role agent/<id>   write rules: publishClientSend; read rules: publishClientReceive and
                      subscribeLiteral of exactly that filter (so an agent holds at most
                      one subscription per read rule, and never a $share/... one)
    role fman, fmar,  write: publishClientSend; read: publishClientReceive and
    dso               subscribePattern of the filter and of $share/+/<filter>
    role atp-admin    the $CONTROL topic and its response; agents' topics (to find and
                      clear a revoked agent's retained messages)

Every client is pinned to a client id equal to its name, except ``atp-sessions``, whose one
power is to take over a client id on the admin socket, which is how revocation ends an
offline persistent session. ``atp-admin`` is pinned to ``atp-admin@local``: on the public
listener the broker replaces every client id by the username, so it cannot log in there.

Pure: dicts in, dicts out; passwords are hashed here, never stored in the clear.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import secrets
from typing import Any

from ._errors import SiteError
from ._ids import ADMIN, SESSIONS
from ._policy import Policy

CONTROL = "$CONTROL/dynamic-security/v1"
RESPONSE = f"{CONTROL}/response"
ADMIN_CLIENT_ID = f"{ADMIN}@local"
ITERATIONS = 101  # the plugin's own default (PW_DEFAULT_ITERATIONS), see _passwd.py for why
SALT_BYTES = 12  # the plugin's fixed salt size

Json = dict[str, Any]


def hash_entry(password: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> Json:
    """The ``password``, ``salt`` and ``iterations`` of a client, as the plugin stores them
    (PBKDF2-HMAC-SHA512, 64 bytes: the same as a ``$7$`` password-file line)."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return {
        "password": base64.b64encode(key).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": iterations,
    }


def verify(password: str, entry: Json) -> bool:
    salt = base64.b64decode(entry["salt"])
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(entry["iterations"]), 64)
    return secrets.compare_digest(base64.b64encode(key).decode(), entry["password"])


def _acl(acltype: str, topic: str) -> Json:
    return {"acltype": acltype, "topic": topic, "priority": 0, "allow": True}


def agent_role_name(agent_id: str) -> str:
    return f"agent/{agent_id}"


def agent_role(policy: Policy, agent_id: str) -> Json:
    acls = []
    for rule in policy.agent:
        topic = rule.for_agent(agent_id)
        if rule.access == "write":
            acls.append(_acl("publishClientSend", topic))
        else:
            acls += [_acl("publishClientReceive", topic), _acl("subscribeLiteral", topic)]
    return {"rolename": agent_role_name(agent_id), "acls": acls}


def service_role(policy: Policy, role: str) -> Json:
    acls = []
    for rule in policy.service(role):
        if rule.access == "write":
            acls.append(_acl("publishClientSend", rule.topic))
        else:
            acls += [
                _acl("publishClientReceive", rule.topic),
                _acl("subscribePattern", rule.topic),
                _acl("subscribePattern", f"$share/+/{rule.topic}"),
            ]
    return {"rolename": role, "acls": acls}


def admin_role() -> Json:
    return {
        "rolename": ADMIN,
        "acls": [
            _acl("publishClientSend", CONTROL),
            _acl("publishClientReceive", RESPONSE),
            _acl("subscribeLiteral", RESPONSE),
            _acl("publishClientReceive", "atp/v1/a/+/#"),
            _acl("subscribePattern", "atp/v1/a/+/#"),
            _acl("publishClientSend", "atp/v1/a/+/#"),
        ],
    }


def seed(policy: Policy, *, admin_password: str, sessions_password: str) -> Json:
    """The plugin's file for a new site: everything refused unless a role allows it, the
    service roles and groups, and the two accounts of the broker host's admin socket."""
    services = sorted(policy.services)
    return {
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": False,
            "subscribe": False,
            "unsubscribe": True,
        },
        "roles": [admin_role(), *(service_role(policy, s) for s in services)],
        "groups": [{"groupname": s, "roles": [{"rolename": s}], "clients": []} for s in services],
        "clients": [
            {
                "username": ADMIN,
                "clientid": ADMIN_CLIENT_ID,
                **hash_entry(admin_password),
                "roles": [{"rolename": ADMIN}],
            },
            {"username": SESSIONS, **hash_entry(sessions_password), "roles": []},
        ],
    }


# -- commands: the same list goes to a running broker or is applied to the file -----------


def add_commands(policy: Policy, account_id: str, role: str, password: str) -> list[Json]:
    """Create ``account_id`` (an agent with its own role, or a member of a service group)."""
    client: Json = {
        "command": "createClient",
        "username": account_id,
        "clientid": account_id,
        "password": password,
    }
    if role == "agent":
        made = agent_role(policy, account_id)
        return [
            {"command": "createRole", **made},
            {**client, "roles": [{"rolename": made["rolename"]}]},
        ]
    return [{**client, "groups": [{"groupname": role}]}]


def password_commands(account_id: str, password: str) -> list[Json]:
    """A new password; the broker also disconnects the account's open connections."""
    return [{"command": "setClientPassword", "username": account_id, "password": password}]


def remove_commands(account_id: str, role: str) -> list[Json]:
    """Delete the account (the broker disconnects it) and, for an agent, its role."""
    out: list[Json] = [{"command": "deleteClient", "username": account_id}]
    if role == "agent":
        out.append({"command": "deleteRole", "rolename": agent_role_name(account_id)})
    return out


def sync_commands(desired: Json, current: Json | None) -> list[Json]:
    """What makes the role ``current`` (the plugin's form, ``None``: missing) hold exactly
    the ACLs of ``desired``: a policy changed since the role was made."""
    if current is None:
        return [{"command": "createRole", **desired}]

    def key(acl: Json) -> tuple[str, str]:
        return (acl["acltype"], acl["topic"])

    have = {key(a) for a in current.get("acls", [])}
    want = {key(a) for a in desired["acls"]}
    name = desired["rolename"]
    return [
        {"command": "removeRoleACL", "rolename": name, "acltype": t, "topic": topic}
        for t, topic in sorted(have - want)
    ] + [
        {"command": "addRoleACL", "rolename": name, **_acl(t, topic)}
        for t, topic in sorted(want - have)
    ]


def group_commands(role: str, current: Json | None) -> list[Json]:
    """What gives a service group ``role`` (its group of the same name) that role."""
    if current is None:
        return [
            {"command": "createGroup", "groupname": role},
            {"command": "addGroupRole", "groupname": role, "rolename": role},
        ]
    if role in {r.get("rolename") for r in current.get("roles", [])}:
        return []
    return [{"command": "addGroupRole", "groupname": role, "rolename": role}]


def apply(config: Json, commands: list[Json]) -> Json:
    """``config`` (the plugin's file) with ``commands`` applied, as the plugin would."""
    out = copy.deepcopy(config)
    clients = out.setdefault("clients", [])
    roles = out.setdefault("roles", [])
    groups = out.setdefault("groups", [])

    def find(items: list[Json], key: str, name: str) -> Json | None:
        return next((x for x in items if x.get(key) == name), None)

    for cmd in commands:
        what = cmd["command"]
        if what == "createRole":
            if find(roles, "rolename", cmd["rolename"]):
                raise SiteError(f"role {cmd['rolename']!r} exists already")
            roles.append({"rolename": cmd["rolename"], "acls": cmd.get("acls", [])})
        elif what == "deleteRole":
            roles[:] = [r for r in roles if r.get("rolename") != cmd["rolename"]]
        elif what == "createClient":
            if find(clients, "username", cmd["username"]):
                raise SiteError(f"client {cmd['username']!r} exists already")
            entry: Json = {"username": cmd["username"], **hash_entry(cmd["password"])}
            if cmd.get("clientid"):
                entry["clientid"] = cmd["clientid"]
            entry["roles"] = [{"rolename": r["rolename"]} for r in cmd.get("roles", [])]
            clients.append(entry)
            for g in cmd.get("groups", []):
                group = find(groups, "groupname", g["groupname"])
                if group is None:
                    raise SiteError(f"group {g['groupname']!r} is not in the plugin's file")
                group.setdefault("clients", []).append({"username": cmd["username"]})
        elif what == "deleteClient":
            clients[:] = [c for c in clients if c.get("username") != cmd["username"]]
            for group in groups:
                members = group.get("clients", [])
                group["clients"] = [m for m in members if m.get("username") != cmd["username"]]
        elif what in ("addRoleACL", "removeRoleACL"):
            role = find(roles, "rolename", cmd["rolename"])
            if role is None:
                raise SiteError(f"role {cmd['rolename']!r} is not in the plugin's file")
            acls = role.setdefault("acls", [])
            acls[:] = [
                a for a in acls if (a["acltype"], a["topic"]) != (cmd["acltype"], cmd["topic"])
            ]
            if what == "addRoleACL":
                acls.append(_acl(cmd["acltype"], cmd["topic"]))
        elif what == "createGroup":
            if find(groups, "groupname", cmd["groupname"]):
                raise SiteError(f"group {cmd['groupname']!r} exists already")
            groups.append({"groupname": cmd["groupname"], "roles": [], "clients": []})
        elif what == "addGroupRole":
            group = find(groups, "groupname", cmd["groupname"])
            if group is None:
                raise SiteError(f"group {cmd['groupname']!r} is not in the plugin's file")
            group.setdefault("roles", []).append({"rolename": cmd["rolename"]})
        elif what == "setClientPassword":
            client = find(clients, "username", cmd["username"])
            if client is None:
                raise SiteError(f"client {cmd['username']!r} is not in the plugin's file")
            client.update(hash_entry(cmd["password"]))
        else:
            raise ValueError(f"unknown dynamic-security command {what!r}")
    return out
