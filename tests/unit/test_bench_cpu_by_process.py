"""The sessions bench splits the control plane's CPU by process (which process of the tree spent
it), so a CPU figure says where to look: the bench's worker (the daemon's stand-in: sensor ticks
and run queue), Dagster's code server, the run worker (the waves), git."""

from bench.procstat import cpu_by_role, process_role


def test_each_process_of_the_tree_is_named_by_what_it_runs() -> None:
    python = "/x/.venv/bin/python"
    assert process_role([python, "-m", "bench.worker", "spec.json"]) == "bench worker"
    worker = [python, "-m", "instance_plugins.run_worker.worker", "--directory", "d"]
    assert process_role(worker) == "run worker"
    assert process_role([python, "-m", "dagster", "api", "grpc", "--port", "1"]) == "code server"
    assert process_role(["/x/.venv/bin/dagster", "code-server", "start"]) == "code server"
    assert process_role(["git", "-C", "w", "status"]) == "git"
    assert process_role(["/usr/bin/setpriv", "--reuid", "1"]) == "setpriv"
    assert process_role([]) == "other"


def test_the_window_s_cpu_per_role_is_each_process_s_cpu_since_the_start() -> None:
    before = {1: 10.0, 2: 5.0}  # 3 started within the window
    after = {1: 12.5, 2: 5.5, 3: 1.0, 4: 0.25}
    roles = {1: "run worker", 2: "code server", 3: "git", 4: "git"}
    assert cpu_by_role(before, after, roles) == {
        "run worker": 2.5,
        "code server": 0.5,
        "git": 1.25,
    }
