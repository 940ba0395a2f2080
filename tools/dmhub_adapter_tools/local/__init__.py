"""The local stack: moto_server for DynamoDB/SQS/Secrets Manager, the DM Hub emulator, a
local HTTP gateway for the ingest handler and a poller feeding the sender handler."""
