"""The host side of managed runtimes: tenant OS users, the bubblewrap sandbox, processes.

Adapters only; the policy (budget, on demand, idle stop, registration) is
`services.runtime_manager`.
"""
