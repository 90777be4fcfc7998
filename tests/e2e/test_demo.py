"""`make demo` is the main job: it must keep passing every step (it exits non-zero if one fails).

The sample firm runs at 15 % of its size here (8 accounts, 45 invoices, 104 events, still with full,
partial, split and credit-balance payments, a refund, fees and the 3 deliberate errors) to keep
`make test` short; `make demo` runs the full firm (55 accounts, 300 invoices). The simulator keeps
Intuit's real rate limits either way. The last step fixes the 3 errors through the admin API and checks
QuickBooks again.
"""

from local import demo


def test_demo_runs_every_step_successfully(capsys):
    assert demo.main(["--sample-scale", "0.15", "--sample-timeout", "300"]) == 0
    out = capsys.readouterr().out
    assert "steps ok: 13/13" in out
    assert "FAILED" not in out
    # the sample firm's report: what landed, to the cent, and the deliberate errors explained; then the
    # same checks after the fixes through the admin API (no open error left, the skipped one shown)
    assert out.count("RESULT: ok") == 2
    assert "MISMATCH" not in out
    assert "Error log: 3 open (deliberate: 3)" in out
    assert out.count("\n    fix: ") == 3
    assert "Error log: 0 open (deliberate: 0)" in out and "skipped by the firm: ClientAccount" in out
    # the fix step, each through the API
    assert "GET /errors/counts -> 3 open (Accounts 2, Taxes 1)" in out
    assert out.count("how to fix: ") == 3
    assert "/map-customer -> mapped to customer" in out
    assert "PUT /settings with a tax code QuickBooks does not have -> 400" in out
    assert "POST /errors/retry {scope: category, category: Taxes} -> 202" in out
    assert "/skip -> skipped" in out
    assert "GET /errors/counts -> 0 open" in out
    # progress lines while it ran
    assert "settled: synced" in out and "in QuickBooks:" in out
