"""Outbound mail: the durable queue (``spool``); the scheduler and delivery client use it."""
