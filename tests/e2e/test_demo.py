"""`make demo` is the main job: it must keep passing every step (it exits non-zero if one fails)."""

from local import demo


def test_demo_runs_every_step_successfully(capsys):
    assert demo.main() == 0
    out = capsys.readouterr().out
    assert "steps ok: 11/11" in out
    assert "FAILED" not in out
