"""DM Hub: the API client, the shared access token, identity resolution, and an emulator
(``dmhub.emulator``) that answers the way DM Hub does, for tests and the local stack."""
