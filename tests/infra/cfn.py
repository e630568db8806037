"""Reading a synthesized CloudFormation template: resources by type and name, references, IAM statements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FUNCTION = "AWS::Serverless::Function"
TABLE = "AWS::DynamoDB::Table"
QUEUE = "AWS::SQS::Queue"
ALARM = "AWS::CloudWatch::Alarm"
SECRET = "AWS::SecretsManager::Secret"
ROLE = "AWS::IAM::Role"
POLICY = "AWS::IAM::Policy"
LOG_GROUP = "AWS::Logs::LogGroup"


def references(value: Any) -> set[str]:
    """Logical ids a value refers to through Ref / Fn::GetAtt / Fn::Sub (pseudo parameters excluded; SAM's
    generated-resource references count as their source resource)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                # SAM's `Ref <Api>.Stage` / `<Api>.Deployment`: resources the transform generates from <Api>.
                found.add(inner.split(".")[0])
            elif key == "Fn::GetAtt":
                target = inner[0] if isinstance(inner, list) else str(inner).split(".")[0]
                found.add(target)
            elif key == "Fn::Sub":
                text, variables = (inner[0], inner[1]) if isinstance(inner, list) else (inner, {})
                names = {part.split("}")[0].split(".")[0] for part in str(text).split("${")[1:]}
                found |= names - set(variables)  # ${Name} of the variable map is not a resource
                found |= references(variables)
            else:
                found |= references(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= references(inner)
    return {name for name in found if not name.startswith("AWS::")}


def literal_text(value: Any) -> str:
    """The literal string parts of a value, joined (to check an ARN's fixed parts)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(literal_text(inner) for inner in value)
    if isinstance(value, dict):
        return "".join(literal_text(inner) for inner in value.values())
    return ""


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


@dataclass
class Grant:
    """One action allowed on one resource expression of a statement."""

    action: str
    resource: Any

    @property
    def targets(self) -> set[str]:
        return references(self.resource)

    @property
    def is_wildcard(self) -> bool:
        return self.resource == "*"


class Template:
    """One stack's template with lookups by type, physical name and reference."""

    def __init__(self, stage: str, body: dict) -> None:
        self.stage = stage
        self.body = body
        self.resources: dict[str, dict] = body["Resources"]

    def of_type(self, kind: str) -> dict[str, dict]:
        return {name: resource for name, resource in self.resources.items() if resource["Type"] == kind}

    def named(self, kind: str, prop: str, value: str) -> tuple[str, dict]:
        """The resource of `kind` whose property `prop` is `value`. Raises LookupError naming what is missing."""
        matches = [(n, r) for n, r in self.of_type(kind).items() if r.get("Properties", {}).get(prop) == value]
        if len(matches) != 1:
            raise LookupError(f"{self.stage}: expected one {kind} with {prop}={value!r}, found {len(matches)}")
        return matches[0]

    def props(self, logical_id: str) -> dict:
        return self.resources[logical_id].get("Properties", {})

    @property
    def functions(self) -> dict[str, dict]:
        return self.of_type(FUNCTION)

    def role_of(self, function: str) -> str:
        (role,) = references(self.props(function)["Role"])
        return role

    def grants_of_role(self, role: str) -> list[Grant]:
        """Every (action, resource) the role's inline and attached policies allow."""
        documents = [policy["PolicyDocument"] for policy in self.props(role).get("Policies", [])]
        for policy in self.of_type(POLICY).values():
            if role in references(policy["Properties"].get("Roles", [])):
                documents.append(policy["Properties"]["PolicyDocument"])
        grants: list[Grant] = []
        for document in documents:
            for statement in document["Statement"]:
                assert statement["Effect"] == "Allow", statement
                for action in as_list(statement["Action"]):
                    for resource in as_list(statement["Resource"]):
                        grants.append(Grant(action, resource))
        return grants

    def event_sources(self, kind: str) -> list[tuple[str, str, dict]]:
        """(function, event name, event properties) of every event source of `kind` (SQS, DynamoDB, ...)."""
        found = []
        for name, resource in self.functions.items():
            for event_name, event in (resource["Properties"].get("Events") or {}).items():
                if event["Type"] == kind:
                    found.append((name, event_name, event["Properties"]))
        return found
