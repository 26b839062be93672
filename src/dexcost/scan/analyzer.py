"""Find the cost points of one Python module from its syntax tree alone."""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise

from dexcost.scan.catalog import Catalog, CatalogService
from dexcost.scan.names import (
    CALL,
    UNKNOWN,
    Ref,
    Resolver,
    Scope,
    bind_parameters,
    keyword,
    prepare,
)
from dexcost.scan.sdks import (
    AWS_CLIENT_FACTORIES,
    AWS_FREE_SERVICES,
    AWS_LOCAL_METHODS,
    BEDROCK_RUNTIME_OPERATIONS,
    HTTP_CLIENT_CLASSES,
    HTTP_METHOD_FIRST,
    HTTP_MODULES,
    HTTP_VERBS,
    LLM_LIBRARIES,
    LOCAL_METHODS,
    NOISE_SEGMENTS,
    PAID_LIBRARIES,
    RECORDING_FUNCTIONS,
    LLMLibrary,
    Operations,
    PaidLibrary,
)

AUTO_INSTRUMENTED = "auto-instrumented"
AUTO_PRICED = "auto-priced"
NEEDS_MANUAL_RECORDING = "needs-manual-recording"
MANUALLY_RECORDED = "manually-recorded"


@dataclass(frozen=True)
class Finding:
    """One place in the code where money is spent, and whether dexcost records it."""

    file: str
    line: int
    column: int
    kind: str  # one of the four constants above
    library: str
    call: str  # the called expression as written, e.g. client.chat.completions.create
    reason: str
    service: str | None = None  # catalog id, or the service a stub would record
    unit_price: str | None = None  # the catalog's list price, e.g. "0.005 USD per 1 request"


@dataclass
class _Pending:
    """A call that needs manual recording unless its function records a cost."""

    scope: Scope
    node: ast.Call
    library: str
    reason: str
    service: CatalogService | None
    service_id: str


def _module_root(dotted: tuple[str, ...], table: Mapping[str, object]) -> str | None:
    if len(dotted) >= 2 and f"{dotted[0]}.{dotted[1]}" in table:
        return f"{dotted[0]}.{dotted[1]}"
    return dotted[0] if dotted[0] in table else None


def _matches(operations: tuple[Operations, ...], segments: list[str], method: str) -> bool:
    for rule in operations:
        if method not in rule.methods:
            continue
        if not rule.resource or tuple(segments[-len(rule.resource) :]) == rule.resource:
            return True
    return False


def _host(url: str) -> str | None:
    """Return the literal host of a URL with UNKNOWN parts, or None when it is not literal."""
    if "://" not in url:
        return None
    rest = url.split("://", 1)[1]
    end = len(rest)
    for stop in "/?#":
        found = rest.find(stop)
        if found != -1:
            end = min(end, found)
    host = rest[:end].rsplit("@", 1)[-1]
    if host.startswith("["):
        return None
    host = host.split(":", 1)[0]
    return None if not host or UNKNOWN in host else host.lower()


def _path(url: str) -> str | None:
    """Return the path of a URL; run-time parts become ``x``; None when the path is unknown."""
    rest = url.split("://", 1)[1] if "://" in url else url
    start = rest.find("/")
    if "://" not in url:
        start = 0
    if start == -1:
        return "/"
    path = rest[start:]
    for stop in "?#":
        path = path.split(stop, 1)[0]
    if path.endswith(UNKNOWN) and path.count(UNKNOWN) == 1 and path.rstrip(UNKNOWN) == "":
        return None
    return path.replace(UNKNOWN, "x") or "/"


def _join(base: str, url: str | None) -> str:
    if url is None:
        return base.rstrip("/") + "/" + UNKNOWN
    if "://" in url or url.startswith(UNKNOWN):
        return url
    return base.rstrip("/") + "/" + url.lstrip("/")


class ModuleAnalyzer:
    """Walks one module's scopes and classifies each call."""

    def __init__(self, tree: ast.Module, file: str, catalog: Catalog) -> None:
        self.file = file
        self.catalog = catalog
        self.resolver = Resolver({})
        self.findings: list[Finding] = []
        self.pending: list[_Pending] = []
        self.tree = tree

    def run(self) -> list[Finding]:
        module = Scope(None)
        calls, nested = prepare(module, self.tree.body, self.resolver.imports)
        self._finish_scope(module, calls, nested)
        for item in self.pending:
            recorded = item.scope.records
            self._add(
                item.node,
                MANUALLY_RECORDED if recorded else NEEDS_MANUAL_RECORDING,
                item.library,
                item.reason + ("; a cost is recorded in the same function" if recorded else ""),
                item.service,
                service_id=item.service_id,
            )
        self.findings.sort(key=lambda finding: (finding.line, finding.column))
        return self.findings

    def _finish_scope(self, scope: Scope, calls: list[ast.Call], nested: list[ast.stmt]) -> None:
        """Classify a prepared body's calls, then analyze the functions and classes in it."""
        imports = self.resolver.imports
        # Classes first: their methods fill the self.NAME bindings that calls read.
        classes = []
        for node in nested:
            if not isinstance(node, ast.ClassDef):
                continue
            class_scope = Scope(scope)
            class_scope.cls = class_scope
            class_calls, class_nested = prepare(class_scope, node.body, imports)
            methods = []
            for method in class_nested:
                if isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    method_scope = Scope(scope, cls=class_scope)
                    bind_parameters(method_scope, method.args)
                    methods.append((method_scope, *prepare(method_scope, method.body, imports)))
            inner: list[ast.stmt] = [i for i in class_nested if isinstance(i, ast.ClassDef)]
            classes.append((class_scope, class_calls, inner, methods))
        for call in calls:
            self._classify(scope, call)
        for class_scope, class_calls, inner, methods in classes:
            self._finish_scope(class_scope, class_calls, inner)
            for method_scope, method_calls, method_nested in methods:
                self._finish_scope(method_scope, method_calls, method_nested)
        for node in nested:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                function_scope = Scope(scope)
                bind_parameters(function_scope, node.args)
                self._finish_scope(function_scope, *prepare(function_scope, node.body, imports))

    # --- classification ---

    def _classify(self, scope: Scope, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in RECORDING_FUNCTIONS:
            scope.records = True
            return
        ref = self.resolver.ref(scope, func)
        if ref is None:
            return
        dotted = ref.dotted
        method = dotted[-1]
        if method in RECORDING_FUNCTIONS and dotted[0] == "dexcost":
            scope.records = True
            return
        if len(dotted) < 2 or method == CALL:
            return
        if ref.aws_service is not None:
            self._classify_aws(scope, node, ref)
            return
        if ref.grpc:
            if not method.startswith("_") and method not in LOCAL_METHODS:
                self._pending(
                    scope,
                    node,
                    "grpc",
                    "a gRPC call, which dexcost's HTTP capture cannot see",
                    None,
                    "grpc",
                )
            return
        llm_root = _module_root(dotted, LLM_LIBRARIES)
        if llm_root is not None:
            self._classify_llm(scope, node, ref, LLM_LIBRARIES[llm_root])
            return
        paid_root = _module_root(dotted, PAID_LIBRARIES)
        if paid_root is not None:
            self._classify_paid(scope, node, ref, PAID_LIBRARIES[paid_root])
            return
        if dotted[0] in HTTP_MODULES:
            self._classify_http(scope, node, ref)

    def _classify_llm(self, scope: Scope, node: ast.Call, ref: Ref, library: LLMLibrary) -> None:
        method = ref.dotted[-1]
        segments = [part for part in ref.dotted[1:-1] if part not in NOISE_SEGMENTS]
        where = f" through {_host(ref.base_url)}" if ref.base_url and _host(ref.base_url) else ""
        if _matches(library.instrumented, segments, method):
            self._add(
                node,
                AUTO_INSTRUMENTED,
                library.name,
                f"{library.name} call{where}, patched and priced by dexcost",
            )
        elif _matches(library.not_instrumented, segments, method):
            self._pending(
                scope,
                node,
                library.name,
                f"billed {library.name} call that dexcost does not patch",
                None,
                library.name,
            )

    def _classify_aws(self, scope: Scope, node: ast.Call, ref: Ref) -> None:
        method = ref.dotted[-1]
        service = ref.aws_service or "unknown"
        if (
            not method[:1].islower()
            or method in AWS_LOCAL_METHODS
            or method in AWS_CLIENT_FACTORIES
            or method.startswith("_")
            or service in AWS_FREE_SERVICES
        ):
            return
        if service == "bedrock-runtime" and method in BEDROCK_RUNTIME_OPERATIONS:
            self._add(
                node,
                AUTO_INSTRUMENTED,
                "bedrock",
                "Amazon Bedrock call, patched and priced by dexcost",
            )
            return
        catalog = self.catalog.find(
            (f"aws-{service}", f"aws.{service}", service, f"{service}.amazonaws.com")
        )
        self._pending(
            scope,
            node,
            "boto3",
            f"AWS {service} call; botocore requests are not priced by dexcost",
            catalog,
            f"aws-{service}",
        )

    def _classify_paid(self, scope: Scope, node: ast.Call, ref: Ref, paid: PaidLibrary) -> None:
        method = ref.dotted[-1]
        if not method[:1].islower() or method in LOCAL_METHODS or method.startswith("_"):
            return
        if paid.operations is None:
            made_by_client = any(
                part.endswith("Client") and after == CALL for part, after in pairwise(ref.dotted)
            )
            if not made_by_client:
                return
        elif method not in paid.operations:
            return
        catalog = self.catalog.find((paid.service, paid.host))
        self._pending(scope, node, paid.name, paid.reason, catalog, paid.service)

    def _classify_http(self, scope: Scope, node: ast.Call, ref: Ref) -> None:
        dotted = ref.dotted
        method = dotted[-1]
        on_client = any(
            part in HTTP_CLIENT_CLASSES and after == CALL for part, after in pairwise(dotted)
        )
        if CALL in dotted and not on_client:
            return
        if method in HTTP_VERBS:
            url_node = node.args[0] if node.args else keyword(node, "url")
        elif method in HTTP_METHOD_FIRST:
            url_node = node.args[1] if len(node.args) > 1 else keyword(node, "url")
        else:
            return
        url = None if url_node is None else self.resolver.string(scope, url_node)
        if ref.base_url is not None:
            url = _join(ref.base_url, url)
        if url is None:
            return
        host = _host(url)
        if host is None:
            return
        service = self.catalog.match(host, _path(url))
        if service is None:
            return
        self._add(
            node,
            AUTO_PRICED,
            dotted[0],
            f"request to {service.name} ({host}), priced by dexcost's HTTP capture",
            service,
        )

    # --- results ---

    def _pending(
        self,
        scope: Scope,
        node: ast.Call,
        library: str,
        reason: str,
        service: CatalogService | None,
        service_id: str,
    ) -> None:
        self.pending.append(_Pending(scope, node, library, reason, service, service_id))

    def _add(
        self,
        node: ast.Call,
        kind: str,
        library: str,
        reason: str,
        service: CatalogService | None = None,
        service_id: str | None = None,
    ) -> None:
        self.findings.append(
            Finding(
                file=self.file,
                line=node.lineno,
                column=node.col_offset,
                kind=kind,
                library=library,
                call=ast.unparse(node.func),
                reason=reason,
                service=service.id if service is not None else service_id,
                unit_price=None if service is None else service.price_text(),
            )
        )


def analyze_source(source: str | bytes, file: str, catalog: Catalog) -> list[Finding]:
    """Return the cost points of one module's source. Raises SyntaxError or ValueError."""
    tree = ast.parse(source, filename=file)
    return ModuleAnalyzer(tree, file, catalog).run()
