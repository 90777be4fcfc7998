"""DynamoTable against moto: round trips, conditional writes, transactions, pagination, errors."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from botocore.stub import Stubber
from qbsync.adapters.dynamodb import DynamoTable, transact_write
from qbsync.api.common import qbsync_error_response
from qbsync.errors import (
    ConfigurationError,
    Conflict,
    DataError,
    InfrastructureError,
    RetryableError,
    ServiceUnavailable,
    Throttled,
)
from qbsync.observability import logger


@pytest.fixture
def table(aws_client, table_name) -> DynamoTable:
    return DynamoTable(table_name, client=aws_client("dynamodb"))


def test_put_get_update_delete_round_trip_with_floats_as_decimals(table):
    table.put({"pk": "FIRM#1", "sk": "CONNECTION", "rate": 0.1, "n": 3, "nested": {"x": [1.5, "a"]}})

    item = table.get({"pk": "FIRM#1", "sk": "CONNECTION"}, consistent=True)
    assert item == {
        "pk": "FIRM#1",
        "sk": "CONNECTION",
        "rate": Decimal("0.1"),
        "n": Decimal(3),
        "nested": {"x": [Decimal("1.5"), "a"]},
    }

    new = table.update(
        {"pk": "FIRM#1", "sk": "CONNECTION"},
        update="SET #s = :s ADD n :one",
        names={"#s": "status"},
        values={":s": "connected", ":one": 1},
    )
    assert new["status"] == "connected" and new["n"] == Decimal(4)

    projected = table.get({"pk": "FIRM#1", "sk": "CONNECTION"}, attributes=["status"])
    assert projected == {"status": "connected"}

    old = table.delete({"pk": "FIRM#1", "sk": "CONNECTION"})
    assert old is not None and old["status"] == "connected"
    assert table.get({"pk": "FIRM#1", "sk": "CONNECTION"}) is None
    assert table.delete({"pk": "FIRM#1", "sk": "CONNECTION"}) is None


def test_conditional_writes_raise_conflict(table):
    table.put_new({"pk": "OAUTHSTATE#n1", "sk": "STATE"})
    with pytest.raises(Conflict) as err:
        table.put_new({"pk": "OAUTHSTATE#n1", "sk": "STATE"})
    assert err.value.extra["aws_error_code"] == "ConditionalCheckFailedException"
    assert isinstance(err.value.__cause__, Exception)  # re-raised from the botocore error

    with pytest.raises(Conflict):
        table.update(
            {"pk": "OAUTHSTATE#n1", "sk": "STATE"},
            update="SET used = :t",
            condition="attribute_exists(used)",
            values={":t": True},
        )
    with pytest.raises(Conflict):
        table.delete({"pk": "OAUTHSTATE#n1", "sk": "STATE"}, condition="used = :t", values={":t": True})
    assert table.get({"pk": "OAUTHSTATE#n1", "sk": "STATE"}) is not None


def test_transaction_commits_all_or_conflicts_with_reasons(table):
    table.transact_write(
        [
            table.tx_put({"pk": "FIRM#2", "sk": "CONNECTION", "v": 1}, condition="attribute_not_exists(pk)"),
            table.tx_put({"pk": "FIRM#2", "sk": "SETTINGS"}),
        ]
    )
    assert table.get({"pk": "FIRM#2", "sk": "SETTINGS"}) is not None

    with pytest.raises(Conflict) as err:
        table.transact_write(
            [
                table.tx_put({"pk": "FIRM#2", "sk": "OTHER"}),
                table.tx_condition(
                    {"pk": "FIRM#2", "sk": "CONNECTION"}, condition="v = :v", values={":v": 99}
                ),
            ]
        )
    assert err.value.extra["reasons"] == ["None", "ConditionalCheckFailed"]
    assert table.get({"pk": "FIRM#2", "sk": "OTHER"}) is None  # nothing of the transaction applied

    table.transact_write(
        [
            table.tx_update({"pk": "FIRM#2", "sk": "CONNECTION"}, update="SET v = :two", values={":two": 2}),
            table.tx_delete({"pk": "FIRM#2", "sk": "SETTINGS"}, condition="attribute_exists(pk)"),
        ]
    )
    assert table.get({"pk": "FIRM#2", "sk": "CONNECTION"})["v"] == 2
    assert table.get({"pk": "FIRM#2", "sk": "SETTINGS"}) is None


def test_transaction_size_is_checked_before_calling_aws(table):
    with pytest.raises(ValueError):
        transact_write([], client=table.client)
    with pytest.raises(ValueError, match="at most 100"):
        table.transact_write([table.tx_put({"pk": f"X#{i}", "sk": "S"}) for i in range(101)])


def test_query_paginates_and_uses_indexes(table):
    for i in range(25):
        table.put(
            {
                "pk": "FIRM#3#REALM#9",
                "sk": f"REC#Invoice#{i:03d}",
                "gsi2pk": "FIRM#3#REALM#9#STATUS#error" if i % 5 == 0 else "FIRM#3#REALM#9#STATUS#synced",
                "gsi2sk": f"Invoice#{i:03d}",
            }
        )
    everything = list(
        table.query(
            key_condition="pk = :pk AND begins_with(sk, :p)",
            values={":pk": "FIRM#3#REALM#9", ":p": "REC#Invoice#"},
            page_size=4,
        )
    )
    assert [i["sk"] for i in everything] == [f"REC#Invoice#{i:03d}" for i in range(25)]

    page = table.query_page(
        key_condition="pk = :pk", values={":pk": "FIRM#3#REALM#9"}, limit=10, forward=False
    )
    assert len(page.items) == 10 and page.items[0]["sk"] == "REC#Invoice#024"
    assert page.last_key is not None
    nxt = table.query_page(
        key_condition="pk = :pk",
        values={":pk": "FIRM#3#REALM#9"},
        limit=10,
        forward=False,
        start_key=page.last_key,
    )
    assert nxt.items[0]["sk"] == "REC#Invoice#014"

    errors = list(
        table.query(
            index="gsi2",
            key_condition="gsi2pk = :s",
            values={":s": "FIRM#3#REALM#9#STATUS#error"},
            page_size=2,
        )
    )
    assert [i["sk"] for i in errors] == [f"REC#Invoice#{i:03d}" for i in (0, 5, 10, 15, 20)]

    assert (
        len(list(table.query(key_condition="pk = :pk", values={":pk": "FIRM#3#REALM#9"}, max_items=7))) == 7
    )


def test_bad_values_raise_a_caller_error_naming_the_attribute_not_the_value(table):
    with pytest.raises(ValueError, match="NaN"):
        table.put({"pk": "A", "sk": "B", "amount": float("nan")})
    with pytest.raises(TypeError) as err:
        table.put({"pk": "A", "sk": "B", "when": object()})
    assert "'when'" in str(err.value) and "object" in str(err.value)


def test_missing_table_is_a_configuration_error(aws_client):
    with pytest.raises(ConfigurationError, match="does-not-exist"):
        DynamoTable("does-not-exist", client=aws_client("dynamodb")).get({"pk": "a", "sk": "b"})


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ProvisionedThroughputExceededException", 400, Throttled),
        ("ThrottlingException", 400, Throttled),
        ("InternalServerError", 500, ServiceUnavailable),
        ("TransactionConflictException", 400, RetryableError),
    ],
)
def test_infrastructure_errors_are_translated(aws_client, table_name, code, status, expected):
    client = aws_client("dynamodb")
    table = DynamoTable(table_name, client=client)
    with Stubber(client) as stub:
        stub.add_client_error("get_item", service_error_code=code, http_status_code=status)
        with pytest.raises(expected) as err:
            table.get({"pk": "a", "sk": "b"})
    assert err.value.extra["aws_error_code"] == code
    assert table_name in str(err.value)


def test_cancelled_transaction_by_throttling_is_retryable(aws_client, table_name):
    client = aws_client("dynamodb")
    table = DynamoTable(table_name, client=client)
    with Stubber(client) as stub:
        stub.add_client_error(
            "transact_write_items",
            service_error_code="TransactionCanceledException",
            response_meta={},
            modeled_fields={"CancellationReasons": [{"Code": "None"}, {"Code": "ThrottlingError"}]},
        )
        with pytest.raises(Throttled):
            table.transact_write([table.tx_put({"pk": "a", "sk": "b"}), table.tx_put({"pk": "c", "sk": "d"})])


def test_batch_write_and_get_across_chunks(table):
    items = [{"pk": "FIRM#4#REALM#1", "sk": f"REC#Contact#{i:03d}", "n": i} for i in range(60)]
    table.batch_write(puts=items)
    keys = [{"pk": i["pk"], "sk": i["sk"]} for i in items]
    got = table.batch_get([*keys, {"pk": "FIRM#4#REALM#1", "sk": "REC#Contact#missing"}], consistent=True)
    assert sorted(int(i["n"]) for i in got) == list(range(60))

    table.batch_write(deletes=keys[:30])
    left = list(table.query(key_condition="pk = :pk", values={":pk": "FIRM#4#REALM#1"}))
    assert [int(i["n"]) for i in left] == list(range(30, 60))


def test_batch_write_retries_unprocessed_items_then_raises(aws_client, table_name):
    client = aws_client("dynamodb")
    table = DynamoTable(table_name, client=client, sleep=lambda _s: None)
    unprocessed = {table_name: [{"PutRequest": {"Item": {"pk": {"S": "a"}, "sk": {"S": "b"}}}}]}
    with Stubber(client) as stub:
        stub.add_response("batch_write_item", {"UnprocessedItems": unprocessed})
        stub.add_response("batch_write_item", {"UnprocessedItems": {}})
        table.batch_write(puts=[{"pk": "a", "sk": "b"}, {"pk": "c", "sk": "d"}])
        stub.assert_no_pending_responses()

        for _ in range(4):
            stub.add_response("batch_write_item", {"UnprocessedItems": unprocessed})
        with pytest.raises(ServiceUnavailable) as err:
            table.batch_write(puts=[{"pk": "a", "sk": "b"}])
        stub.assert_no_pending_responses()
    assert err.value.extra["unprocessed"] == 1


def test_an_item_over_dynamodbs_size_limit_is_an_infrastructure_error_never_the_callers_data(
    table, table_name
):
    """Issue 10 item 5: the 400 KB item limit reached (a 1.4 MB settings map) was answered as the firm's
    data_error naming the table. With every collection bounded it can only be a bug: a 500 with the
    request id, nothing internal in the answer."""
    with pytest.raises(InfrastructureError) as caught:
        table.put({"pk": "FIRM#1", "sk": "SETTINGS", "settings": "x" * 420_000})
    err = caught.value
    assert not isinstance(err, DataError) and err.http_status == 500
    assert err.extra["aws_error_code"] == "ValidationException"
    assert table.get({"pk": "FIRM#1", "sk": "SETTINGS"}, consistent=True) is None
    logger.set_correlation_id("req-item-size")
    try:
        answer = qbsync_error_response(err)
    finally:
        logger.set_correlation_id(None)
    assert answer.status_code == 500
    assert json.loads(answer.body) == {
        "error": "infrastructure_error",
        "message": "internal error",
        "request_id": "req-item-size",
    }
    assert table_name not in answer.body and "DynamoDB" not in answer.body
