"""Redis adapters: live session events, their feed, agent heartbeats, one guarded client."""
