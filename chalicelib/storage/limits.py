"""Rate-limit counters in DynamoDB, where every Lambda container sees them.

One UpdateItem per check: `ADD` one to each named counter of the window's item and return the new values
(UPDATED_NEW), so a check that counts several limits (a user's messages and one connection's) costs one write
unit. Items expire with the table's TTL once their window has passed (TTL only cleans up: the window start is part
of the key, so an old item is never read again).
"""

from __future__ import annotations

from chalicelib.storage.models import Limit


class LimitRepository:
    def add(self, key: str, counters: tuple[str, ...], expires_at: int) -> dict[str, int]:
        """Count one hit on each counter of `key`; returns every counter's new value. Raises pynamodb's errors."""
        names = {f"#c{i}": name for i, name in enumerate(counters)}
        adds = ", ".join(f"{alias} :one" for alias in names)
        client = Limit._get_connection().connection.client
        answer = client.update_item(
            TableName=Limit.Meta.table_name,
            Key={"pk": {"S": key}},
            UpdateExpression=f"ADD {adds} SET #expires = :expires",
            ExpressionAttributeNames={**names, "#expires": "expires_at"},
            ExpressionAttributeValues={":one": {"N": "1"}, ":expires": {"N": str(expires_at)}},
            ReturnValues="UPDATED_NEW",
        )
        attributes = answer.get("Attributes", {})
        return {name: int(attributes.get(name, {}).get("N", "0")) for name in counters}

    def read(self, key: str, counter: str) -> int:
        """A counter's value (0 when the window has no item yet)."""
        client = Limit._get_connection().connection.client
        item = client.get_item(
            TableName=Limit.Meta.table_name,
            Key={"pk": {"S": key}},
            ProjectionExpression="#c",
            ExpressionAttributeNames={"#c": counter},
        ).get("Item", {})
        return int(item.get(counter, {}).get("N", "0"))

    def claim(self, key: str, member: str, cap: int, expires_at: int) -> bool:
        """Add `member` to the set at `key` unless it already holds `cap` members; False when full."""
        client = Limit._get_connection().connection.client
        try:
            client.update_item(
                TableName=Limit.Meta.table_name,
                Key={"pk": {"S": key}},
                UpdateExpression="ADD #m :member SET #expires = :expires",
                ConditionExpression="attribute_not_exists(#m) OR size(#m) < :cap OR contains(#m, :id)",
                ExpressionAttributeNames={"#m": "members", "#expires": "expires_at"},
                ExpressionAttributeValues={
                    ":member": {"SS": [member]},
                    ":id": {"S": member},
                    ":cap": {"N": str(cap)},
                    ":expires": {"N": str(expires_at)},
                },
            )
        except client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def release(self, key: str, member: str) -> None:
        client = Limit._get_connection().connection.client
        client.update_item(
            TableName=Limit.Meta.table_name,
            Key={"pk": {"S": key}},
            UpdateExpression="DELETE #m :member",
            ExpressionAttributeNames={"#m": "members"},
            ExpressionAttributeValues={":member": {"SS": [member]}},
        )

    def members(self, key: str) -> set[str]:
        client = Limit._get_connection().connection.client
        item = client.get_item(TableName=Limit.Meta.table_name, Key={"pk": {"S": key}}, ConsistentRead=True)
        return set(item.get("Item", {}).get("members", {}).get("SS", []))
