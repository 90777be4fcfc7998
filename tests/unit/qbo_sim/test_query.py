"""The simulator's QBO query language: parser, filters, ordering, paging, errors."""

from __future__ import annotations

import pytest

from local.qbo_sim.query import QueryError, execute, parse

CUSTOMERS = [
    {
        "Id": "1",
        "DisplayName": "O'Brien CPA",
        "Active": True,
        "Balance": 120.5,
        "PrimaryEmailAddr": {"Address": "ob@example.com"},
        "MetaData": {
            "CreateTime": "2026-03-01T09:00:00-08:00",
            "LastUpdatedTime": "2026-03-02T10:11:12-08:00",
        },
    },
    {
        "Id": "2",
        "DisplayName": "zeta llc",
        "Active": False,
        "Balance": 0,
        "MetaData": {
            "CreateTime": "2026-03-01T09:00:00-08:00",
            "LastUpdatedTime": "2026-02-27T23:59:59-08:00",
        },
    },
    {
        "Id": "10",
        "DisplayName": "Amy's Bird Sanctuary",
        "Active": True,
        "Balance": 3,
        "MetaData": {"CreateTime": "2026-03-01T09:00:00-08:00", "LastUpdatedTime": "2026-03-05T00:00:00Z"},
    },
    {
        "Id": "9",
        "DisplayName": "Bill's Windsurf",
        "Active": True,
        "MetaData": {"CreateTime": "2026-03-01T09:00:00-08:00", "LastUpdatedTime": "2026-03-01T08:00:00Z"},
    },
]

INVOICES = [
    {
        "Id": "130",
        "DocNumber": "TD-1",
        "TxnDate": "2026-03-01",
        "CustomerRef": {"value": "58", "name": "A"},
        "Balance": 0,
        "TotalAmt": 100.0,
    },
    {
        "Id": "131",
        "DocNumber": "TD-2",
        "TxnDate": "2026-03-15",
        "CustomerRef": {"value": "58", "name": "A"},
        "Balance": 25.0,
        "TotalAmt": 25.0,
    },
    {
        "Id": "132",
        "DocNumber": "TD-3",
        "TxnDate": "2026-02-20",
        "CustomerRef": {"value": "7", "name": "B"},
        "Balance": 10.0,
        "TotalAmt": 10.0,
    },
]


def ids(text: str, rows: list[dict] = CUSTOMERS) -> list[str]:
    return [row["Id"] for row in execute(parse(text), rows).rows]


# ------------------------------------------------------------------------------------ parsing


def test_parse_select_star_defaults() -> None:
    q = parse("SELECT * FROM Customer")
    assert (q.entity, q.count, q.columns, q.where, q.order_by) == ("Customer", False, ("*",), (), ())
    assert (q.start_position, q.max_results) == (1, 100)


def test_keywords_and_entity_are_case_insensitive() -> None:
    q = parse("select * from customer where displayname = 'x' orderby id desc startposition 3 maxresults 7")
    assert q.entity == "Customer"
    assert q.where[0].path == "DisplayName"  # property names are case-insensitive too
    assert q.order_by[0].path == "Id"
    assert q.order_by[0].descending is True
    assert (q.start_position, q.max_results) == (3, 7)


def test_count_star() -> None:
    q = parse("SELECT COUNT(*) FROM Invoice WHERE Balance > '0'")
    assert q.count is True and q.columns == ()
    result = execute(q, INVOICES)
    assert result.total_count == 2
    assert result.rows == []


def test_column_lists_are_parsed_but_whole_objects_are_returned() -> None:
    q = parse("SELECT Id, DisplayName, MetaData.LastUpdatedTime FROM Customer")
    assert q.columns == ("Id", "DisplayName", "MetaData.LastUpdatedTime")
    assert execute(q, CUSTOMERS).rows[0] is CUSTOMERS[0]  # QBO ignores projections
    assert parse("SELECT *, Sku FROM Item").columns == ("*", "Sku")


def test_start_and_max_in_either_order_and_trailing_semicolon() -> None:
    q = parse("SELECT * FROM Customer MAXRESULTS 5 STARTPOSITION 2;")
    assert (q.start_position, q.max_results) == (2, 5)


def test_startposition_zero_means_first() -> None:
    assert parse("SELECT * FROM Customer STARTPOSITION 0").start_position == 1


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("SELECT * FROM Customer WHERE Id = '1' OR Id = '2'", "OR is not supported"),
        ("SELECT * FROM Customer WHERE NOT Active = true", "NOT is not supported"),
        ("SELECT * FROM Customer WHERE Id != '1'", "!= is not supported"),
        ("SELECT * FROM Customer MAXRESULTS 1001", "must not exceed 1000"),
        ("SELECT * FROM Customer MAXRESULTS 0", "between 1 and 1000"),
        ("SELECT * FROM Customer STARTPOSITION -1", "STARTPOSITION must be 1 or more"),
        ("SELECT * FROM Customer MAXRESULTS 'ten'", "INTEGER"),
        ("SELECT * FROM Customer WHERE DisplayName = 'open", "unterminated string"),
        ("SELECT * Customer", "FROM"),
        ("SELECT * FROM", "<ENTITY>"),
        ("SELECT * FROM Customer WHERE", "<IDENTIFIER>"),
        ("SELECT * FROM Customer WHERE Id", '"="'),
        ("SELECT * FROM Customer WHERE Id IN ('1' '2')", '","'),
        ("SELECT * FROM Customer WHERE (Id = '1')", "parenthesised"),
        ("SELECT * FROM Customer WHERE DisplayName LIKE 5", "<STRING_LITERAL>"),
        ("SELECT * FROM Customer ORDERBY", "<IDENTIFIER>"),
        ("SELECT * FROM Customer extra", "<EOF>"),
        ("SELECT * FROM Customer WHERE Id = '1' #", "Lexical error"),
        ("   ", "empty query"),
        ("DELETE FROM Customer", "SELECT"),
    ],
)
def test_parse_errors(text: str, fragment: str) -> None:
    with pytest.raises(QueryError) as err:
        parse(text)
    assert fragment in str(err.value)


def test_parse_is_cached() -> None:
    text = "SELECT * FROM Customer WHERE DisplayName = 'cache me'"
    assert parse(text) is parse(text)


# ------------------------------------------------------------------------------------ filtering


def test_equality_is_case_insensitive_and_backslash_escapes_quotes() -> None:
    assert ids(r"SELECT * FROM Customer WHERE DisplayName = 'O\'Brien CPA'") == ["1"]
    assert ids(r"SELECT * FROM Customer WHERE DisplayName = 'o\'brien cpa'") == ["1"]
    assert ids("SELECT * FROM Customer WHERE DisplayName = 'Nobody'") == []


def test_inactive_rows_hidden_unless_where_mentions_active() -> None:
    assert ids("SELECT * FROM Customer") == ["1", "10", "9"]
    assert ids("SELECT * FROM Customer WHERE Active IN (true, false)") == ["1", "2", "10", "9"]
    assert ids("SELECT * FROM Customer WHERE Active = false") == ["2"]


def test_ref_compares_on_value_and_numbers_compare_numerically() -> None:
    assert ids("SELECT * FROM Invoice WHERE CustomerRef = '58'", INVOICES) == ["130", "131"]
    assert ids("SELECT * FROM Invoice WHERE CustomerRef = '58' AND Balance > '0'", INVOICES) == ["131"]
    assert ids("SELECT * FROM Invoice WHERE TotalAmt >= 25", INVOICES) == ["130", "131"]
    assert ids("SELECT * FROM Invoice WHERE Id > '130'", INVOICES) == ["131", "132"]
    assert ids("SELECT * FROM Invoice WHERE Id < '99'", INVOICES) == []


def test_missing_property_never_matches() -> None:
    assert ids("SELECT * FROM Customer WHERE Balance < '5'") == ["10"]  # "9" has no Balance


def test_in_list() -> None:
    assert ids("SELECT * FROM Invoice WHERE DocNumber IN ('TD-1', 'td-3', 'nope')", INVOICES) == [
        "130",
        "132",
    ]
    assert ids("SELECT * FROM Customer WHERE Id IN ('10')") == ["10"]


def test_like_supports_percent_only() -> None:
    assert ids("SELECT * FROM Customer WHERE DisplayName LIKE '%bird%'") == ["10"]
    assert ids("SELECT * FROM Customer WHERE DisplayName LIKE 'Bill%'") == ["9"]
    assert ids("SELECT * FROM Customer WHERE DisplayName LIKE '%CPA'") == ["1"]
    assert ids("SELECT * FROM Customer WHERE DisplayName LIKE 'Bill_s%'") == []  # '_' is literal
    assert ids("SELECT * FROM Customer WHERE DisplayName LIKE 'Bill.s%'") == []  # no regex leaks


def test_dates_and_datetimes_compare_as_instants() -> None:
    rows = INVOICES
    assert ids("SELECT * FROM Invoice WHERE TxnDate >= '2026-03-01'", rows) == ["130", "131"]
    assert ids("SELECT * FROM Invoice WHERE TxnDate < '2026-03-01'", rows) == ["132"]
    assert ids("SELECT * FROM Invoice WHERE TxnDate = '2026-03-15'", rows) == ["131"]
    # 2026-03-02T10:11:12-08:00 is after 2026-03-02T18:00:00Z (10:00 Pacific)
    q = "SELECT * FROM Customer WHERE MetaData.LastUpdatedTime > '2026-03-02T18:00:00Z'"
    assert ids(q) == ["1", "10"]
    # a date alone is midnight company time (UTC-8): 2026-03-01T08:00:00Z is exactly that midnight
    assert ids("SELECT * FROM Customer WHERE MetaData.LastUpdatedTime >= '2026-03-01'") == ["1", "10", "9"]
    assert ids("SELECT * FROM Customer WHERE MetaData.LastUpdatedTime > '2026-03-01'") == ["1", "10"]


def test_name_is_canonical_whatever_the_hash_seed() -> None:
    # "name" must map to Item/Account "Name" (a lower-case Ref key once shadowed it at random)
    assert parse("SELECT * FROM Item WHERE name = 'x'").where[0].path == "Name"
    rows = [{"Id": "1", "Name": "Sales", "Active": True}]
    assert ids("SELECT * FROM Item WHERE name = 'sales'", rows) == ["1"]


def test_property_names_are_case_insensitive() -> None:
    assert ids("SELECT * FROM Customer WHERE metadata.lastupdatedtime > '2026-03-02T18:00:00Z'") == [
        "1",
        "10",
    ]
    assert ids("SELECT * FROM Invoice WHERE customerref = '7'", INVOICES) == ["132"]


def test_booleans() -> None:
    assert ids("SELECT * FROM Customer WHERE Active = true") == ["1", "10", "9"]
    assert ids("SELECT * FROM Customer WHERE Active = 'true'") == ["1", "10", "9"]


def test_unknown_property_is_not_queryable() -> None:
    with pytest.raises(QueryError, match="property 'PrivateNote' is not queryable"):
        execute(parse("SELECT * FROM Invoice WHERE PrivateNote = 'x'"), INVOICES)
    with pytest.raises(QueryError, match="property 'Line' is not queryable"):
        execute(parse("SELECT * FROM Invoice ORDERBY Line"), INVOICES)
    # an entity without a known field list accepts any property
    assert execute(parse("SELECT * FROM Bill WHERE Whatever = 'x'"), []).total_count == 0


# ------------------------------------------------------------------------------------ order + paging


def test_order_by_string_number_date_and_several_keys() -> None:
    assert ids("SELECT * FROM Customer ORDERBY DisplayName") == ["10", "9", "1"]
    assert ids("SELECT * FROM Customer ORDERBY DisplayName DESC") == ["1", "9", "10"]
    assert ids("SELECT * FROM Customer ORDERBY Id") == ["1", "9", "10"]  # numeric, not "1" < "10" < "9"
    assert ids("SELECT * FROM Customer ORDERBY MetaData.LastUpdatedTime DESC") == ["10", "1", "9"]
    # Ref values "58" and "7" sort as numbers: 58 first when descending, then by date
    q = "SELECT * FROM Invoice ORDERBY CustomerRef DESC, TxnDate DESC"
    assert ids(q, INVOICES) == ["131", "130", "132"]
    assert ids("SELECT * FROM Invoice ORDER BY TxnDate", INVOICES) == ["132", "130", "131"]


def test_missing_values_sort_first_ascending() -> None:
    assert ids("SELECT * FROM Customer ORDERBY Balance") == ["9", "10", "1"]


def test_paging_is_one_based_and_total_counts_before_paging() -> None:
    q = parse("SELECT * FROM Customer WHERE Active IN (true, false) ORDERBY Id STARTPOSITION 2 MAXRESULTS 2")
    result = execute(q, CUSTOMERS)
    assert [r["Id"] for r in result.rows] == ["2", "9"]
    assert (result.total_count, result.start_position, result.max_results) == (4, 2, 2)
    beyond = execute(parse("SELECT * FROM Customer STARTPOSITION 50"), CUSTOMERS)
    assert beyond.rows == [] and beyond.total_count == 3


def test_default_page_is_100_and_max_1000() -> None:
    rows = [{"Id": str(i), "Name": f"n{i}", "Active": True} for i in range(1, 1500)]
    assert len(execute(parse("SELECT * FROM Item"), rows).rows) == 100
    assert len(execute(parse("SELECT * FROM Item MAXRESULTS 1000"), rows).rows) == 1000
    last = execute(parse("SELECT * FROM Item STARTPOSITION 1001 MAXRESULTS 1000"), rows)
    assert len(last.rows) == 499 and last.rows[0]["Id"] == "1001"
