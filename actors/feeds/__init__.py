"""Market feeds: recorded history replayed at a chosen speed; AWS polling plugs in beside it."""
