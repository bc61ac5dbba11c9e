"""Per-thread routing of stdout/stderr: how runs sharing one process capture their own output."""

import io
import threading

from instance_plugins.run_worker.thread_streams import ThreadRoutedStream


def test_each_thread_writes_to_its_own_target_and_others_to_the_fallback() -> None:
    fallback = io.StringIO()
    stream = ThreadRoutedStream(fallback)
    targets = {name: io.StringIO() for name in ("a", "b")}
    both_routed = threading.Barrier(2)

    def work(name: str) -> None:
        with stream.routed_to(targets[name]):
            both_routed.wait()  # both routes are open at once
            for line in range(100):
                stream.write(f"{name}{line}\n")
            both_routed.wait()

    threads = [threading.Thread(target=work, args=(name,)) for name in targets]
    for thread in threads:
        thread.start()
    stream.write("from the main thread\n")
    for thread in threads:
        thread.join()

    for name, target in targets.items():
        lines = target.getvalue().splitlines()
        assert lines == [f"{name}{line}" for line in range(100)]
    assert fallback.getvalue() == "from the main thread\n"


def test_routes_nest_and_are_restored_on_error() -> None:
    fallback, outer, inner = io.StringIO(), io.StringIO(), io.StringIO()
    stream = ThreadRoutedStream(fallback)
    with stream.routed_to(outer):
        try:
            with stream.routed_to(inner):
                stream.write("inner\n")
                raise RuntimeError("step failed")
        except RuntimeError:
            pass
        stream.write("outer\n")
    stream.write("after\n")
    assert (inner.getvalue(), outer.getvalue(), fallback.getvalue()) == (
        "inner\n",
        "outer\n",
        "after\n",
    )


def test_other_attributes_are_the_fallbacks() -> None:
    fallback = io.StringIO()
    stream = ThreadRoutedStream(fallback)
    assert stream.getvalue() == ""  # type: ignore[attr-defined]
    assert not stream.isatty()
