"""CloudFormation intrinsics as the provisioner resolves them (no AWS needed)."""

from __future__ import annotations

import pytest

from local.stack.intrinsics import NO_VALUE, Resolver, dependencies
from local.stack.template import TemplateError


def _resolver(**parameters: str) -> Resolver:
    attrs = {("Queue", "Arn"): "arn:aws:sqs:us-east-1:123:q", ("Queue", "QueueName"): "q"}
    refs = {"Queue": "http://sqs/q"}

    def ref(lid: str) -> str:
        if lid not in refs:
            raise TemplateError(f"no {lid}")
        return refs[lid]

    return Resolver(
        parameters=dict(parameters),
        pseudo={"AWS::Region": "us-east-1", "AWS::AccountId": "123"},
        conditions={
            "HasX": {"Fn::Not": [{"Fn::Equals": [{"Ref": "X"}, ""]}]},
            "Both": {"Fn::And": [{"Condition": "HasX"}, True]},
        },
        mappings={"M": {"us-east-1": {"size": "10"}}},
        ref=ref,
        get_att=lambda lid, attr: attrs[(lid, attr)],
    )


def test_ref_getatt_sub_join_select_split_findinmap() -> None:
    r = _resolver(X="x", Stage="dev")
    assert r.resolve({"Ref": "Queue"}) == "http://sqs/q"
    assert r.resolve({"Fn::GetAtt": ["Queue", "Arn"]}) == "arn:aws:sqs:us-east-1:123:q"
    assert (
        r.resolve({"Fn::Sub": "${Queue.QueueName}-${Stage}-${AWS::Region}-${!Literal}"})
        == "q-dev-us-east-1-${Literal}"
    )
    assert r.resolve({"Fn::Sub": ["${a}/${Stage}", {"a": {"Ref": "Queue"}}]}) == "http://sqs/q/dev"
    assert r.resolve({"Fn::Join": [":", ["a", {"Ref": "Stage"}]]}) == "a:dev"
    assert r.resolve({"Fn::Select": [1, {"Fn::Split": [",", "a,b,c"]}]}) == "b"
    assert r.resolve({"Fn::FindInMap": ["M", {"Ref": "AWS::Region"}, "size"]}) == "10"


def test_conditions_if_and_novalue() -> None:
    on, off = _resolver(X="x"), _resolver(X="")
    value = {"Fn::If": ["HasX", {"Ref": "X"}, {"Ref": "AWS::NoValue"}]}
    assert on.resolve({"k": value, "keep": 1}) == {"k": "x", "keep": 1}
    assert off.resolve({"k": value, "keep": 1}) == {"keep": 1}
    assert off.resolve([value, "a"]) == ["a"]
    assert on.condition("Both") is True and off.condition("Both") is False
    assert off.resolve({"Ref": "AWS::NoValue"}) is NO_VALUE


def test_unknown_references_are_template_errors() -> None:
    r = _resolver()
    with pytest.raises(TemplateError):
        r.resolve({"Ref": "Missing"})
    with pytest.raises(TemplateError):
        r.condition("Nope")
    with pytest.raises(TemplateError):
        r.resolve({"Fn::ImportValue": "x"})


def test_dependencies_follow_ref_getatt_and_sub_variables() -> None:
    ids = {"A", "B", "C", "D"}
    value = {
        "x": {"Ref": "A"},
        "y": {"Fn::GetAtt": "B.Arn"},
        "z": {"Fn::Sub": ["${C.Arn}/${v}/${AWS::Region}", {"v": {"Ref": "D"}}]},
    }
    assert dependencies(value, ids) == {"A", "B", "C", "D"}
