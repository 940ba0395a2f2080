"""The DynamoDB data-access layer: one table holds idempotency claims, the shared DM Hub
token and the identity cache, each under its own key prefix."""
