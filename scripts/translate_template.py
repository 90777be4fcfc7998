"""Offline SAM → CloudFormation translation of ``template.yaml`` (no AWS calls).

Used by ``scripts/validate-template.sh`` (cfn-lint on the translated template restores the checks cfn-lint
skips on ``AWS::Serverless::*``) and by the local stack (moto's CloudFormation has no SAM transform).

    from scripts.translate_template import load_template, translate
    cfn = translate(load_template("template.yaml"), region="us-east-1")

Command line: ``python -m scripts.translate_template [template.yaml] [-o out.json] [--region R]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
from pathlib import Path
from typing import Any

import boto3
import yaml
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATE = ROOT / "template.yaml"
ARTIFACT_BUCKET = "qbsync-local-artifacts"

# Properties that point at local folders/files; `sam package` would upload them to S3.
_LOCAL_URI_PROPERTIES = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
}


class TemplateError(ValueError):
    """The template cannot be loaded or translated (bad YAML, bad SAM, missing DefinitionUri file)."""


class _CfnLoader(yaml.SafeLoader):
    """YAML loader for CloudFormation short-form intrinsics (``!Ref``, ``!GetAtt``, ``!Sub`` …)."""


def _construct_intrinsic(loader: _CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: str | Path = DEFAULT_TEMPLATE) -> dict[str, Any]:
    """Parse a SAM/CloudFormation YAML template into plain dicts (intrinsics in long form).

    Raises:
        TemplateError: the file is missing, is not valid YAML or is not a mapping.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
        data = yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass plus intrinsic tags only
    except (OSError, yaml.YAMLError) as exc:
        raise TemplateError(f"cannot load template {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise TemplateError(f"template {path} is not a mapping")
    return data


class _NoManagedPolicies:
    """Managed-policy loader that never calls IAM (policy templates and ARNs still translate)."""

    def load(self) -> dict[str, str]:
        return {}


def _localize(template: dict[str, Any], base_dir: Path) -> None:
    """Point local code folders at s3:// keys and inline ``DefinitionUri`` files (in place)."""
    for logical_id, resource in (template.get("Resources") or {}).items():
        if not isinstance(resource, dict):
            continue
        props = resource.setdefault("Properties", {})
        rtype = resource.get("Type")
        uri_prop = _LOCAL_URI_PROPERTIES.get(rtype or "")
        if uri_prop:
            uri = props.get(uri_prop)
            if uri is None and rtype == "AWS::Serverless::Function" and "InlineCode" not in props:
                # CodeUri may come from Globals; fill it so translation never needs the local folder.
                uri = f"functions/{logical_id}"
            if isinstance(uri, str) and not uri.startswith("s3://"):
                props[uri_prop] = f"s3://{ARTIFACT_BUCKET}/{uri.strip('./') or logical_id}.zip"
        if rtype == "AWS::Serverless::StateMachine" and isinstance(props.get("DefinitionUri"), str):
            definition_path = base_dir / props.pop("DefinitionUri")
            try:
                props["Definition"] = json.loads(definition_path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise TemplateError(
                    f"{logical_id}: cannot read DefinitionUri {definition_path}: {exc}"
                ) from exc


def translate(
    template: dict[str, Any],
    region: str = "us-east-1",
    parameter_values: dict[str, Any] | None = None,
    base_dir: str | Path = ROOT,
) -> dict[str, Any]:
    """Translate a SAM template dict to plain CloudFormation, offline.

    The input is not modified. CodeUri/ContentUri become ``s3://qbsync-local-artifacts/<folder>.zip``,
    ``DefinitionUri`` files are inlined as ``Definition`` (read relative to ``base_dir``).
    ``parameter_values`` only matter for the intrinsics SAM resolves itself; CloudFormation still
    receives the ``Parameters`` section.

    Raises:
        TemplateError: SAM rejected the template (message lists every cause) or a DefinitionUri is unreadable.
    """
    fragment = copy.deepcopy(template)
    _localize(fragment, Path(base_dir))
    session = boto3.session.Session(region_name=region)
    translator = Translator(None, Parser(), boto_session=session)
    try:
        translated = translator.translate(
            fragment,
            parameter_values=dict(parameter_values or {}),
            get_managed_policy_map=_NoManagedPolicies().load,
        )
    except InvalidDocumentException as exc:
        causes = "; ".join(str(cause) for cause in exc.causes)
        raise TemplateError(f"SAM translation failed: {causes}") from exc
    _collapse_definitions(translated)
    return translated


def _collapse_definitions(translated: dict[str, Any]) -> None:
    """SAM writes an inline state-machine definition as ``Fn::Join`` of its lines (one list item per line:
    hundreds for the initial sync), which sends cfn-lint's Join check into a recursion error. A join of
    plain strings is that string: write it as one (``${...}`` stays for ``DefinitionSubstitutions``)."""
    for resource in (translated.get("Resources") or {}).values():
        if resource.get("Type") != "AWS::StepFunctions::StateMachine":
            continue
        props = resource.get("Properties") or {}
        join = props.get("DefinitionString")
        if isinstance(join, dict) and list(join) == ["Fn::Join"]:
            separator, parts = join["Fn::Join"]
            if isinstance(separator, str) and all(isinstance(part, str) for part in parts):
                props["DefinitionString"] = separator.join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("template", nargs="?", default=str(DEFAULT_TEMPLATE))
    parser.add_argument("-o", "--output", help="write JSON here (default: stdout)")
    parser.add_argument("--region", default="us-east-1")
    args = parser.parse_args(argv)
    # samtranslator warns about feature toggles it has no config for: noise on every run.
    logging.getLogger("samtranslator").setLevel(logging.ERROR)
    try:
        result = translate(
            load_template(args.template), region=args.region, base_dir=Path(args.template).resolve().parent
        )
    except TemplateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    text = json.dumps(result, indent=2, sort_keys=False)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
