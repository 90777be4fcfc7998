"""The local stack: the whole SAM application on one machine (``python -m local.stack``, ``make up``).

moto's server with every resource of ``template.yaml`` (``local.stack.provision``), the real handlers
in warm worker processes (``local.stack.runtime``), SQS event sources with batch semantics
(``local.stack.sqs_poller``), the REST API on a local port with its Lambda authorizer
(``local.stack.api_gateway``), schedules and EventBridge → Lambda/Step Functions deliveries
(``local.stack.events``). Product code never knows: only template parameters and
``AWS_ENDPOINT_URL`` differ.

    with LocalStack(repo_root, simulator_url=sim.url) as stack:
        stack.api_url            # http://127.0.0.1:PORT/{stage}
        stack.invoke("OAuthFunction", event).raise_for_error()
        stack.fire_schedule("TokenKeepAliveFunctionKeepAliveSchedule")
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from local.stack.api_gateway import ApiGatewayServer
from local.stack.events import EventRouter, ScheduleError, Scheduler
from local.stack.moto import MotoServer, configure_moto
from local.stack.provision import (
    DEFAULT_STACK_NAME,
    FunctionSpec,
    Resources,
    clients,
    local_parameters,
    provision,
    resolve_parameters,
    translate_template,
)
from local.stack.runtime import (
    FunctionError,
    InvokeResult,
    LambdaRuntime,
    lambda_environment,
    register,
    unregister,
)
from local.stack.sqs_poller import PollOutcome, SqsPoller
from local.stack.template import TemplateError

__all__ = [
    "FunctionError",
    "FunctionSpec",
    "InvokeResult",
    "LocalStack",
    "PollOutcome",
    "Resources",
    "ScheduleError",
    "TemplateError",
    "lambda_environment",
    "provision",
]


class LocalStack:
    """Start moto (or use ``moto_endpoint``), provision ``template``, serve everything. Context manager.

    ``parameters_overrides`` win over the local defaults, which point the URL parameters at
    ``simulator_url`` and ``OAuthRedirectUri`` at ``<api_url>/oauth/callback``.
    ``moto_endpoint`` must be a server in this process (``local.stack.moto.MotoServer``) so Step
    Functions and Lambda API invokes reach the runtime. ``stop()`` stops everything ``start()`` started.
    Raises TemplateError when the template cannot be provisioned.
    """

    def __init__(
        self,
        repo_root: str | Path = ".",
        parameters_overrides: dict[str, str] | None = None,
        simulator_url: str | None = None,
        *,
        template: str | Path = "template.yaml",
        moto_endpoint: str | None = None,
        region: str = "us-east-1",
        stack_name: str = DEFAULT_STACK_NAME,
        log_dir: str | Path | None = None,
        echo: Callable[[str], None] | None = None,
        host: str = "127.0.0.1",
        authorizer_cache: bool = True,
        run_pollers: bool = True,
        run_schedules: bool = True,
        poller_concurrency: int = 1,
        prewarm: bool = False,
    ) -> None:
        self.repo_root = Path(repo_root).resolve()
        self.template_path = (self.repo_root / template).resolve()
        self.parameters_overrides = dict(parameters_overrides or {})
        self.simulator_url = simulator_url
        self.region = region
        self.stack_name = stack_name
        self.log_dir = Path(log_dir) if log_dir else self.repo_root / ".local-run" / "logs"
        self.echo = echo
        self.host = host
        self.authorizer_cache = authorizer_cache
        self.run_pollers = run_pollers
        self.run_schedules = run_schedules
        self.poller_concurrency = poller_concurrency
        self.prewarm = prewarm
        self.intuit_app: dict[str, str] | None = None
        self._intuit_sim: str | None = None
        self._moto_endpoint = moto_endpoint
        self._moto: MotoServer | None = None
        self.endpoint_url: str = moto_endpoint or ""
        self.resources: Resources | None = None
        self.runtime: LambdaRuntime | None = None
        self.apis: dict[str, ApiGatewayServer] = {}
        self.pollers: dict[str, SqsPoller] = {}
        self.scheduler: Scheduler | None = None
        self.router: EventRouter | None = None

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> LocalStack:
        if self.resources is not None:
            return self
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        configure_moto()
        if self._moto_endpoint is None:
            self._moto = MotoServer(host=self.host).start()
            self.endpoint_url = self._moto.endpoint_url
        cfn, _ = translate_template(self.template_path, self.region)
        for lid, res in cfn["Resources"].items():
            if res.get("Type") == "AWS::ApiGateway::RestApi":
                self.apis[lid] = ApiGatewayServer(lid, host=self.host, authorizer_cache=self.authorizer_cache)
        params = local_parameters(self.template_path, simulator_url=self.simulator_url)
        declared = cfn.get("Parameters") or {}
        assumed_stage: str | None = None
        if (
            len(self.apis) == 1
            and "OAuthRedirectUri" in declared
            and "OAuthRedirectUri" not in self.parameters_overrides
        ):
            # The callback URL must be known before provisioning (it is in the functions' environment).
            assumed_stage = resolve_parameters(cfn, {**params, **self.parameters_overrides}).get("Stage", "")
            (api,) = self.apis.values()
            params["OAuthRedirectUri"] = "/".join(
                p for p in (api.base_url, assumed_stage, "oauth/callback") if p
            )
        params.update(self.parameters_overrides)
        self.resources = provision(
            self.endpoint_url, self.template_path, params, self.region, self.stack_name
        )
        self.runtime = LambdaRuntime(self.resources, self.log_dir, echo=self.echo)
        register(self.runtime)
        if self.prewarm:
            self.runtime.prewarm()
        for api in self.apis.values():
            api.attach(self.resources, self.runtime.invoke)
            if assumed_stage is not None and api.stage != assumed_stage:
                raise TemplateError(
                    f"{api.api}: stage {api.stage!r} is not the Stage parameter {assumed_stage!r}"
                )
            api.start()
        for source in self.resources.sqs_sources:
            self.pollers[source.logical_id] = SqsPoller(source, self.resources, self.runtime.invoke)
        self.scheduler = Scheduler(self.resources, self.runtime.invoke, self.runtime.invoke_async)
        self.router = EventRouter(self.resources, self.runtime.invoke, self.runtime.invoke_async)
        if self.run_pollers:
            for poller in self.pollers.values():
                poller.start(self.poller_concurrency)
            self.router.start()
        if self.run_schedules:
            self.scheduler.start()

    def stop(self) -> None:
        """Stop pollers, schedules, the API, the workers and (if started here) moto. Idempotent."""
        for poller in self.pollers.values():
            poller.signal_stop()
        if self.router is not None:
            self.router.signal_stop()
        if self.scheduler is not None:
            self.scheduler.stop()
        for api in self.apis.values():
            api.stop()
        if self.runtime is not None:
            unregister(self.runtime)
            self.runtime.stop()  # ends in-flight invocations, so the poller threads finish now
        for poller in self.pollers.values():
            poller.stop()
        if self.router is not None:
            self.router.stop()
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
        self.pollers.clear()
        self.apis.clear()
        self.scheduler = self.router = self.runtime = None
        self.resources = None

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- use --------------------------------------------------------------------------------------------
    def _require(self) -> tuple[Resources, LambdaRuntime]:
        if self.resources is None or self.runtime is None:
            raise RuntimeError("the local stack is not started")
        return self.resources, self.runtime

    @property
    def api_url(self) -> str:
        """The invoke URL (stage included) of the template's REST API (RuntimeError if not exactly one)."""
        if len(self.apis) != 1:
            raise RuntimeError(f"the template has {len(self.apis)} REST APIs; use api_urls")
        return next(iter(self.apis.values())).url

    @property
    def api_urls(self) -> dict[str, str]:
        return {lid: api.url for lid, api in self.apis.items()}

    def invoke(self, logical_id: str, event: Any) -> InvokeResult:
        """Invoke a function synchronously, as Lambda's RequestResponse invoke."""
        return self._require()[1].invoke(logical_id, event)

    def fire_schedule(self, logical_id: str) -> list[InvokeResult | str | None]:
        """Fire a schedule now (its logical id in the translated template, e.g.
        ``TokenKeepAliveFunctionKeepAliveSchedule``); waits for Lambda targets."""
        self._require()
        assert self.scheduler is not None
        return self.scheduler.fire(logical_id)

    def schedule_id_for(self, function_logical_id: str) -> str:
        """The logical id of the (single) schedule that targets a function."""
        resources, _ = self._require()
        ids = [
            lid
            for lid, s in resources.schedules.items()
            if any(t.function == function_logical_id for t in s.targets)
        ]
        if len(ids) != 1:
            raise ScheduleError(f"{function_logical_id} has {len(ids)} schedules")
        return ids[0]

    def log_path(self, logical_id: str) -> Path:
        return self._require()[1].log_path(logical_id)

    def register_intuit_app(
        self, simulator_url: str | None = None, *, webhook_format: str = "classic"
    ) -> dict[str, str]:
        """Create Intuit app credentials, store them in ``IntuitAppSecret`` and register the app in the
        simulator: the redirect URI the functions use and, when the template has the webhook intake, its
        webhook endpoint (:attr:`webhook_url`, signed with the app's ``webhook_verifier_token``, payload
        ``webhook_format`` ``classic`` or ``cloudevents``), so every change of a connected company is
        POSTed to the intake as Intuit would. Returns the credentials (also kept in ``self.intuit_app``)."""
        resources, _ = self._require()
        sim = simulator_url or self.simulator_url
        if not sim:
            raise RuntimeError("no simulator URL")
        creds = {
            "client_id": "AB" + secrets.token_hex(12),
            "client_secret": secrets.token_urlsafe(24),
            "webhook_verifier_token": secrets.token_urlsafe(16),
        }
        clients(self.endpoint_url, self.region)["secretsmanager"].put_secret_value(
            SecretId=resources.ref("IntuitAppSecret"), SecretString=json.dumps(creds)
        )
        self.intuit_app = creds
        self._intuit_sim = sim
        self.configure_webhooks(webhook_format)
        return creds

    def aws_requests(self) -> Counter[tuple[str, str, str]]:
        """Every AWS request moto has received so far, by (caller, service, operation); caller is the
        function's logical id or ``local-stack`` (``local.stack.moto.RequestCounter``). Only for a stack
        that started its own moto server."""
        if self._moto is None or self._moto.counter is None:
            raise RuntimeError("this stack does not run its own moto server: nothing counts its requests")
        return self._moto.counter.snapshot()

    @property
    def webhook_url(self) -> str | None:
        """The intake's public URL (``POST /webhooks/intuit`` on the API), or None when the template has no
        ``WebhookIntakeFunction``."""
        resources, _ = self._require()
        if "WebhookIntakeFunction" not in resources.functions or len(self.apis) != 1:
            return None
        return f"{self.api_url}/webhooks/intuit"

    def configure_webhooks(self, webhook_format: str = "classic") -> None:
        """(Re-)register the Intuit app of :meth:`register_intuit_app` in the simulator with its webhook in
        ``webhook_format`` (``classic`` | ``cloudevents``; the portal's CloudEvents toggle). Notifications
        already built keep their format."""
        from local.qbo_sim.client import SimControl

        resources, _ = self._require()
        if self.intuit_app is None or self._intuit_sim is None:
            raise RuntimeError("register_intuit_app first")
        creds = self.intuit_app
        redirect = resources.functions["OAuthFunction"].environment["OAUTH_REDIRECT_URI"]
        url = self.webhook_url
        webhook = (
            {"url": url, "verifier_token": creds["webhook_verifier_token"], "format": webhook_format}
            if url
            else None
        )
        SimControl(self._intuit_sim).create_app(
            creds["client_id"], creds["client_secret"], [redirect], webhook=webhook
        )

    def describe(self) -> dict[str, Any]:
        """Endpoints and names worth printing (no secrets)."""
        resources, _ = self._require()
        return {
            "api_urls": self.api_urls,
            "moto_endpoint": self.endpoint_url,
            "simulator_url": self.simulator_url,
            "log_dir": str(self.log_dir),
            "functions": {lid: s.name for lid, s in resources.functions.items()},
            "tables": resources.tables(),
            "queues": resources.queues(),
            "event_bus": {
                lid: resources.physical[lid]
                for lid, t in resources.types.items()
                if t == "AWS::Events::EventBus"
            },
            "schedules": {lid: s.expression for lid, s in resources.schedules.items()},
        }
