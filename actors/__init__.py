"""The runtime shell on Ray: region actors, their supervisor, feeds, the executor and persistence."""
