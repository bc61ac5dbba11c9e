"""Local stand-ins of the external systems the orchestrator talks to, for tests and demos.

- :mod:`standins.scripted_model`: an OpenAI-compatible model server whose answers follow scripts
  chosen in the prompt (:mod:`standins.model_script`).
- :mod:`standins.opencode_server`: starts and stops a REAL OpenCode server process pointed at the
  scripted model, in a git workspace (:mod:`standins.git_workspace`,
  :mod:`standins.opencode_config`).

See ``standins/README.md`` for what the real OpenCode server does (events, tokens, cost, errors).
"""
