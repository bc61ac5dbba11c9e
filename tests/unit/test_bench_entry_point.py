"""`python -m bench`: its help names the scale and the benches, a wrong argument stops it with
exit code 2 before anything runs, and each bench is handed arguments its own parser accepts."""

import pytest

from bench import api, api_events, learning, sessions
from bench.__main__ import BENCHES, main, parse, plan

PARSERS = {
    "learning": learning.parse,
    "api": api.parse,
    "api_events": api_events.parse,
    "sessions": sessions.parse,
}


def test_help_names_the_quick_scale_and_every_bench(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--quick" in out and "bench/results/report.json" in out
    assert all(bench in out for bench in BENCHES)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--only", "sessions,nope"], "unknown bench nope"),  # a bench that does not exist
        (["--only", ","], "--only names no bench"),  # nothing left to run
        (["--database", "mysql"], "invalid choice: 'mysql'"),  # not one we measure
        (["--scale", "big"], "unrecognized arguments: --scale big"),
    ],
)
def test_a_wrong_argument_exits_2_saying_why(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("scale", [[], ["--quick"]])
@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_each_bench_gets_arguments_its_own_parser_accepts(scale: list[str], database: str) -> None:
    planned = plan(parse([*scale, "--database", database]))
    assert list(planned) == list(BENCHES)
    for bench, argv in planned.items():
        arguments = PARSERS[bench](argv)
        if bench != "api":
            assert arguments.database == database
    assert sessions.parse(planned["sessions"]).sessions == (12 if scale else 300)


def test_only_runs_the_named_benches_in_the_reports_order() -> None:
    assert list(plan(parse(["--only", "sessions,learning"]))) == ["learning", "sessions"]
