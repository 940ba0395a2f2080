"""The sender: SQS batches of queued events → DM Hub CustomerEvents.

:mod:`.core` holds the delivery logic (:class:`~.core.Sender`), :mod:`.retry` the backoff
policy and :mod:`.bootstrap` the composition root and the function object. Nothing is imported here,
so importing the package stays cheap.
"""
