"""Supervising a wave of one tenant's sessions at once, with asyncio, on their agents' servers.

Each session: route to an agent (`agent_pool`), create the agent-side session and send the prompt,
or adopt one whose wave died (`session_start`), follow the server's shared event stream and
enforce the deadline, the cost cap and a lost server (`session_follower`), keep the leases
(`lease_keeper`) and record every change durably (`session_recorder`); `wave.WaveSupervisor`
runs them all, and takes on new sessions while it has room (top-up).
"""
