"""The operator console (``dmhub-adapter console``): a local web app over the local or a
deployed stack. Tools only: never shipped in the Lambda layer."""
