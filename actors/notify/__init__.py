"""Notifications: webhooks per account, fed from the store and delivered at least once, signed.

``signing`` (the headers and how a receiver checks them), ``matching`` (which stored events a webhook is
owed, and their bodies), ``retry`` (when a failed delivery is tried again) are pure; ``dispatcher`` is the
loop that reads the store and POSTs with httpx.
"""
