"""`make demo` is the main job: it must keep passing every step (it exits non-zero if one fails).

The sample firm of the last step runs at 15 % of its size here (8 accounts, 45 invoices, 103 events, still
with full, partial, split and credit-balance payments, a refund, fees and the 3 deliberate errors) to
keep `make test` short; `make demo` runs the full firm (55 accounts, 300 invoices). The simulator keeps
Intuit's real rate limits either way.
"""

from local import demo


def test_demo_runs_every_step_successfully(capsys):
    assert demo.main(["--sample-scale", "0.15", "--sample-timeout", "300"]) == 0
    out = capsys.readouterr().out
    assert "steps ok: 12/12" in out
    assert "FAILED" not in out
    # the sample firm's report: what landed, to the cent, and the deliberate errors explained
    assert "RESULT: ok" in out
    assert "MISMATCH" not in out
    assert "Error log: 3 open (deliberate: 3)" in out
    assert out.count("    fix: ") == 3
    # progress lines while it ran
    assert "settled: synced" in out and "in QuickBooks:" in out
