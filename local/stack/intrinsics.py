"""CloudFormation intrinsic functions, resolved against parameters, conditions and created resources."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from local.stack.template import TemplateError

NO_VALUE = object()  # AWS::NoValue: the key or list item disappears
_SUB_VAR = re.compile(r"\$\{([^}!][^}]*)\}")


class Resolver:
    """Resolve ``Ref``, ``Fn::GetAtt``, ``Fn::Sub``, ``Fn::Join``, ``Fn::If`` … in a template value.

    ``ref(logical_id)`` and ``get_att(logical_id, attribute)`` are callbacks into the provisioner;
    they raise TemplateError for resources that do not exist (yet).
    """

    def __init__(
        self,
        parameters: dict[str, Any],
        pseudo: dict[str, str],
        conditions: dict[str, Any],
        mappings: dict[str, Any],
        ref: Callable[[str], Any],
        get_att: Callable[[str, str], Any],
    ) -> None:
        self.parameters = parameters
        self.pseudo = pseudo
        self._condition_defs = conditions
        self._condition_values: dict[str, bool] = {}
        self.mappings = mappings
        self._ref = ref
        self._get_att = get_att

    # -- conditions -------------------------------------------------------------------------------
    def condition(self, name: str) -> bool:
        if name not in self._condition_values:
            if name not in self._condition_defs:
                raise TemplateError(f"unknown condition {name!r}")
            self._condition_values[name] = bool(self.resolve(self._condition_defs[name]))
        return self._condition_values[name]

    # -- values -----------------------------------------------------------------------------------
    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            handler = self._FUNCTIONS.get(key)
            if handler is not None:
                return handler(self, arg)
        out = {}
        for k, v in value.items():
            resolved = self.resolve(v)
            if resolved is not NO_VALUE:
                out[k] = resolved
        return out

    def ref_value(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        return self._ref(name)

    def _fn_ref(self, arg: Any) -> Any:
        return self.ref_value(self.resolve(arg))

    def _fn_get_att(self, arg: Any) -> Any:
        if isinstance(arg, str):
            arg = arg.split(".", 1)
        logical_id, attribute = self.resolve(arg[0]), self.resolve(arg[1])
        return self._get_att(logical_id, attribute)

    def _fn_sub(self, arg: Any) -> str:
        if isinstance(arg, str):
            text, local_vars = arg, {}
        else:
            text, local_vars = arg[0], self.resolve(arg[1])

        def replace(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if name in local_vars:
                return str(local_vars[name])
            if "." in name and name.split(".", 1)[0] not in self.parameters:
                logical_id, attribute = name.split(".", 1)
                return str(self._get_att(logical_id, attribute))
            return str(self.ref_value(name))

        # ${!Literal} stays as ${Literal}
        return _SUB_VAR.sub(replace, text).replace("${!", "${")

    def _fn_join(self, arg: Any) -> str:
        sep, items = arg[0], self.resolve(arg[1])
        return str(sep).join(str(i) for i in items)

    def _fn_if(self, arg: Any) -> Any:
        name, when_true, when_false = arg
        return self.resolve(when_true if self.condition(name) else when_false)

    def _fn_equals(self, arg: Any) -> bool:
        left, right = (self.resolve(a) for a in arg)
        return str(left) == str(right)

    def _fn_not(self, arg: Any) -> bool:
        return not self.resolve(arg[0])

    def _fn_and(self, arg: Any) -> bool:
        return all(self.resolve(a) for a in arg)

    def _fn_or(self, arg: Any) -> bool:
        return any(self.resolve(a) for a in arg)

    def _fn_condition(self, arg: Any) -> bool:
        return self.condition(arg)

    def _fn_select(self, arg: Any) -> Any:
        index, items = int(self.resolve(arg[0])), self.resolve(arg[1])
        try:
            return items[index]
        except (IndexError, TypeError) as exc:
            raise TemplateError(f"Fn::Select index {index} out of range") from exc

    def _fn_split(self, arg: Any) -> list[str]:
        return str(self.resolve(arg[1])).split(arg[0])

    def _fn_find_in_map(self, arg: Any) -> Any:
        name, top, second = (self.resolve(a) for a in arg[:3])
        try:
            return self.mappings[name][top][second]
        except KeyError as exc:
            raise TemplateError(f"Fn::FindInMap {name}/{top}/{second} not found") from exc

    def _fn_get_azs(self, arg: Any) -> list[str]:
        region = self.resolve(arg) or self.pseudo["AWS::Region"]
        return [f"{region}a", f"{region}b", f"{region}c"]

    def _fn_base64(self, arg: Any) -> str:
        import base64

        return base64.b64encode(str(self.resolve(arg)).encode()).decode()

    def _fn_to_json_string(self, arg: Any) -> str:
        return json.dumps(self.resolve(arg))

    def _fn_length(self, arg: Any) -> int:
        return len(self.resolve(arg))

    def _fn_import_value(self, arg: Any) -> Any:
        raise TemplateError(f"Fn::ImportValue {arg!r}: cross-stack imports do not exist locally")

    _FUNCTIONS: dict[str, Callable[[Resolver, Any], Any]] = {
        "Ref": _fn_ref,
        "Fn::GetAtt": _fn_get_att,
        "Fn::Sub": _fn_sub,
        "Fn::Join": _fn_join,
        "Fn::If": _fn_if,
        "Fn::Equals": _fn_equals,
        "Fn::Not": _fn_not,
        "Fn::And": _fn_and,
        "Fn::Or": _fn_or,
        "Condition": _fn_condition,
        "Fn::Select": _fn_select,
        "Fn::Split": _fn_split,
        "Fn::FindInMap": _fn_find_in_map,
        "Fn::GetAZs": _fn_get_azs,
        "Fn::Base64": _fn_base64,
        "Fn::ToJsonString": _fn_to_json_string,
        "Fn::Length": _fn_length,
        "Fn::ImportValue": _fn_import_value,
    }


def dependencies(value: Any, logical_ids: set[str]) -> set[str]:
    """Logical ids of resources that a template value refers to (Ref, GetAtt, Sub variables)."""
    found: set[str] = set()

    def walk(v: Any) -> None:
        if isinstance(v, list):
            for item in v:
                walk(item)
        elif isinstance(v, dict):
            for key, arg in v.items():
                if key == "Ref" and isinstance(arg, str) and arg in logical_ids:
                    found.add(arg)
                elif key == "Fn::GetAtt":
                    target = arg.split(".", 1)[0] if isinstance(arg, str) else arg[0]
                    if isinstance(target, str) and target in logical_ids:
                        found.add(target)
                elif key == "Fn::Sub":
                    text = arg if isinstance(arg, str) else arg[0]
                    local_names = set(arg[1]) if isinstance(arg, list) and len(arg) > 1 else set()
                    for name in _SUB_VAR.findall(text):
                        base = name.strip().split(".", 1)[0]
                        if base in logical_ids and base not in local_names:
                            found.add(base)
                    if isinstance(arg, list) and len(arg) > 1:
                        walk(arg[1])
                else:
                    walk(arg)

    walk(value)
    return found
