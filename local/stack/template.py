"""Read ``template.yaml`` (CloudFormation short tags included) and translate SAM to CloudFormation offline.

The translation is samtranslator's own (the same code ``sam deploy`` runs), with the local
preparations of LOCAL-AWS.md: code and layer locations become ``s3://`` keys (remembered, so the
runtime knows every function's code directory), ``DefinitionUri`` files are inlined, and managed
policies resolve to nothing.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

LOCAL_BUCKET = "qbsync-local-artifacts"


class TemplateError(ValueError):
    """The template cannot be read, translated or provisioned as written (the message says where)."""


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that understands CloudFormation's short-form intrinsic tags."""


def _construct(tag: str, node: yaml.Node, loader: yaml.SafeLoader) -> Any:
    name = "Ref" if tag == "Ref" else ("Condition" if tag == "Condition" else f"Fn::{tag}")
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


for _tag in (
    "Ref",
    "Condition",
    "GetAtt",
    "Sub",
    "Join",
    "If",
    "Equals",
    "Not",
    "And",
    "Or",
    "Select",
    "Split",
    "FindInMap",
    "GetAZs",
    "ImportValue",
    "Base64",
    "Cidr",
    "Transform",
    "Length",
    "ToJsonString",
):
    _CfnLoader.add_constructor(f"!{_tag}", lambda loader, node, _t=_tag: _construct(_t, node, loader))


def load_template(path: str | Path) -> dict[str, Any]:
    """Parse a CloudFormation/SAM YAML (or JSON) file. Raises TemplateError if it is not a mapping."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("Resources"), dict):
        raise TemplateError(f"{path}: a template needs a Resources mapping")
    return data


@dataclass
class PreparedTemplate:
    """A SAM template ready for samtranslator, plus what the preparation replaced."""

    template: dict[str, Any]
    code_dirs: dict[str, Path] = field(default_factory=dict)  # function logical id -> code directory
    layer_dirs: dict[str, Path] = field(default_factory=dict)  # layer logical id -> content directory


def _s3_key(logical_id: str) -> str:
    return f"s3://{LOCAL_BUCKET}/{logical_id}.zip"


def prepare_for_translation(sam: dict[str, Any], base_dir: Path) -> PreparedTemplate:
    """Point local code at s3 keys and inline DefinitionUri files (returns a new template)."""
    template = copy.deepcopy(sam)
    prepared = PreparedTemplate(template=template)
    globals_fn = (template.get("Globals") or {}).get("Function") or {}
    for logical_id, resource in template["Resources"].items():
        rtype = resource.get("Type")
        props = resource.setdefault("Properties", {}) or {}
        resource["Properties"] = props
        if rtype == "AWS::Serverless::Function":
            code_uri = props.get("CodeUri", globals_fn.get("CodeUri"))
            if props.get("InlineCode") is None and props.get("ImageUri") is None:
                if not isinstance(code_uri, str):
                    raise TemplateError(f"{logical_id}: CodeUri must be a local directory")
                if not code_uri.startswith("s3://"):
                    prepared.code_dirs[logical_id] = (base_dir / code_uri).resolve()
                    props["CodeUri"] = _s3_key(logical_id)
        elif rtype == "AWS::Serverless::LayerVersion":
            content = props.get("ContentUri")
            if isinstance(content, str) and not content.startswith("s3://"):
                prepared.layer_dirs[logical_id] = (base_dir / content).resolve()
                props["ContentUri"] = _s3_key(logical_id)
        elif rtype == "AWS::Serverless::StateMachine":
            uri = props.get("DefinitionUri")
            if isinstance(uri, str) and not uri.startswith("s3://"):
                path = base_dir / uri
                try:
                    props["Definition"] = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, json.JSONDecodeError) as exc:
                    raise TemplateError(f"{logical_id}: cannot read DefinitionUri {uri}: {exc}") from exc
                del props["DefinitionUri"]
    return prepared


class _NoManagedPolicies:
    """samtranslator's managed-policy loader: offline, every managed policy name maps to nothing."""

    def load(self) -> dict[str, str]:
        return {}


def translate(template: dict[str, Any], region: str) -> dict[str, Any]:
    """Translate a prepared SAM template to plain CloudFormation (raises TemplateError on SAM errors).

    Uses ``scripts.translate_template.translate`` when the project provides it (one translation for
    lint and the local stack), else samtranslator directly with the same settings.
    """
    # samtranslator warns about feature toggles and metrics it has no config for: noise offline.
    logging.getLogger("samtranslator").setLevel(logging.ERROR)
    project: Any
    try:
        from scripts import translate_template as project
    except ImportError:
        project = None
    if project is not None:
        try:
            return project.translate(copy.deepcopy(template), region)
        except project.TemplateError as exc:
            raise TemplateError(str(exc)) from exc
    return _translate_here(template, region)


def _translate_here(template: dict[str, Any], region: str) -> dict[str, Any]:
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.translator.arn_generator import ArnGenerator
    from samtranslator.translator.transform import transform

    # samtranslator otherwise asks boto3's default session for the region (None offline).
    ArnGenerator.BOTO_SESSION_REGION_NAME = region
    params = {"AWS::Region": region, "AWS::Partition": ArnGenerator.get_partition_name(region)}
    try:
        return transform(copy.deepcopy(template), params, _NoManagedPolicies())  # type: ignore[arg-type]
    except InvalidDocumentException as exc:
        causes = "; ".join(str(c) for c in getattr(exc, "causes", [])) or str(exc)
        raise TemplateError(f"SAM translation failed: {causes}") from exc
