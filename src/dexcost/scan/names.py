"""Static name resolution: what a name or expression in a module refers to.

Resolution is flow-insensitive and never runs code. Each scope maps names to the
expressions assigned to them. An expression is resolved on demand to a dotted path
rooted at an imported module, such as ``openai.OpenAI.().chat.completions.create``
where ``()`` marks a call, or to a string with unknown parts.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, replace

# Stands for a part of a string that is only known at run time.
UNKNOWN = "\x00"
CALL = "()"


@dataclass(frozen=True)
class Ref:
    """A dotted path from an imported module, with what is known about the object."""

    dotted: tuple[str, ...]
    base_url: str | None = None  # an HTTP client's or OpenAI-compatible client's base URL
    aws_service: str | None = None  # set on the object a boto3 client factory returns
    grpc: bool = False  # a gRPC stub

    def child(self, name: str) -> Ref:
        return replace(self, dotted=(*self.dotted, name))


@dataclass(frozen=True)
class Annotated:
    """A parameter annotated with a class, so its value is an instance of that class."""

    annotation: ast.expr


Binding = ast.expr | Annotated


class Scope:
    """Names bound in a module, class or function body.

    ``self_attrs`` belongs to a class scope and collects ``self.NAME`` assignments
    from all of its methods, so ``self.client`` resolves in any method.
    """

    __slots__ = ("bindings", "cls", "parent", "records", "self_attrs")

    def __init__(self, parent: Scope | None, cls: Scope | None = None) -> None:
        self.parent = parent
        self.cls = cls
        self.bindings: dict[str, Binding] = {}
        self.self_attrs: dict[str, Binding] = {}
        self.records = False  # a record_cost()/record_usage() call appears in this body


def _bind_target(scope: Scope, target: ast.expr, value: Binding) -> None:
    if isinstance(target, ast.Name):
        scope.bindings[target.id] = value
    elif (
        isinstance(target, ast.Attribute)
        and isinstance(target.value, ast.Name)
        and target.value.id in ("self", "cls")
        and scope.cls is not None
    ):
        scope.cls.self_attrs[target.attr] = value


_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _add_import(imports: dict[str, tuple[str, ...]], node: ast.Import | ast.ImportFrom) -> None:
    if isinstance(node, ast.Import):
        for alias in node.names:
            parts = tuple(alias.name.split("."))
            if alias.asname:
                imports[alias.asname] = parts
            else:
                imports[parts[0]] = parts[:1]
        return
    base = tuple(node.module.split(".")) if node.module else ()
    if node.level:
        base = ("." * node.level, *base)
    for alias in node.names:
        if alias.name != "*":
            imports[alias.asname or alias.name] = (*base, alias.name)


def prepare(
    scope: Scope, body: list[ast.stmt], imports: dict[str, tuple[str, ...]]
) -> tuple[list[ast.Call], list[ast.stmt]]:
    """Walk ``body`` once: bind its assignments and imports, return its calls and definitions.

    Nested functions and classes are returned, not entered: they are scopes of their own.
    """
    calls: list[ast.Call] = []
    nested: list[ast.stmt] = []
    stack: list[object] = list(body)
    while stack:
        node = stack.pop()
        if not isinstance(node, ast.AST):
            continue
        if isinstance(node, ast.Call):
            calls.append(node)
        elif isinstance(node, _DEFINITIONS):
            nested.append(node)
            continue
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                _bind_target(scope, target, node.value)
        elif isinstance(node, ast.AnnAssign):
            bound: Binding = Annotated(node.annotation) if node.value is None else node.value
            _bind_target(scope, node.target, bound)
        elif isinstance(node, ast.NamedExpr):
            _bind_target(scope, node.target, node.value)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                if item.optional_vars is not None:
                    _bind_target(scope, item.optional_vars, item.context_expr)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            _add_import(imports, node)
            continue
        for name in node._fields:
            child = getattr(node, name, None)
            if isinstance(child, list):
                stack.extend(child)
            elif isinstance(child, ast.AST):
                stack.append(child)
    return calls, nested


def bind_parameters(scope: Scope, arguments: ast.arguments) -> None:
    """Bind parameters that have a default value or a class annotation."""
    positional = [*arguments.posonlyargs, *arguments.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(arguments.defaults))
    defaults.extend(arguments.defaults)
    pairs = [
        *zip(positional, defaults, strict=True),
        *zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True),
    ]
    for argument, default in pairs:
        if argument.annotation is not None:
            scope.bindings[argument.arg] = Annotated(argument.annotation)
        elif default is not None:
            scope.bindings[argument.arg] = default


class Resolver:
    """Resolves expressions of one module to ``Ref`` objects and static strings."""

    def __init__(self, imports: dict[str, tuple[str, ...]]) -> None:
        self.imports = imports
        self._active: set[int] = set()

    def _lookup(self, scope: Scope, name: str) -> tuple[Scope, Binding] | None:
        current: Scope | None = scope
        while current is not None:
            if name in current.bindings:
                return current, current.bindings[name]
            current = current.parent
        return None

    def _resolve_binding(self, scope: Scope, binding: Binding) -> Ref | str | None:
        key = id(binding)
        if key in self._active:
            return None  # a cycle such as ``a = b; b = a``
        self._active.add(key)
        try:
            if isinstance(binding, Annotated):
                cls = self.ref(scope, binding.annotation)
                return None if cls is None else cls.child(CALL)
            text = self.string(scope, binding)
            if text is not None:
                return text
            return self.ref(scope, binding)
        finally:
            self._active.discard(key)

    def value(self, scope: Scope, node: ast.expr) -> Ref | str | None:
        """Resolve a name, ``self`` attribute or other expression to a Ref or a string."""
        if isinstance(node, ast.Name):
            found = self._lookup(scope, node.id)
            if found is not None:
                return self._resolve_binding(found[0], found[1])
            module = self.imports.get(node.id)
            return None if module is None else Ref(module)
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in ("self", "cls")
        ):
            cls = _class_scope(scope)
            if cls is not None and node.attr in cls.self_attrs:
                return self._resolve_binding(cls, cls.self_attrs[node.attr])
            if cls is not None and node.attr in cls.bindings:
                return self._resolve_binding(cls, cls.bindings[node.attr])
            return None
        text = self.string(scope, node)
        return text if text is not None else self.ref(scope, node)

    def ref(self, scope: Scope, node: ast.expr) -> Ref | None:
        """Resolve ``node`` to a dotted path from an imported module, or None."""
        if isinstance(node, (ast.Name, ast.Attribute)):
            if isinstance(node, ast.Attribute) and not _is_self_attr(node):
                base = self.ref(scope, node.value)
                return None if base is None else base.child(node.attr)
            found = self.value(scope, node)
            return found if isinstance(found, Ref) else None
        if isinstance(node, ast.Call):
            func = self.ref(scope, node.func)
            return None if func is None else self._called(scope, func, node)
        if isinstance(node, ast.Await):
            return self.ref(scope, node.value)
        return None

    def _called(self, scope: Scope, func: Ref, node: ast.Call) -> Ref:
        """Return what calling ``func`` gives, carrying the facts a constructor sets."""
        from dexcost.scan.sdks import AWS_CLIENT_FACTORIES, AWS_MODULES

        result = func.child(CALL)
        name = func.dotted[-1]
        base_url = self._keyword_string(scope, node, "base_url")
        if base_url is not None:
            result = replace(result, base_url=base_url)
        if func.dotted[0] in AWS_MODULES and name in AWS_CLIENT_FACTORIES:
            service = node.args[0] if node.args else _keyword(node, "service_name")
            text = None if service is None else self.string(scope, service)
            if text is None or UNKNOWN in text:
                text = "unknown"
            result = replace(result, aws_service=text)
        elif name.endswith("Stub") and (
            any(part.endswith("_pb2_grpc") for part in func.dotted)
            or any(self._is_grpc_channel(scope, arg) for arg in node.args)
        ):
            result = replace(result, grpc=True)
        return result

    def _is_grpc_channel(self, scope: Scope, node: ast.expr) -> bool:
        ref = self.ref(scope, node)
        return ref is not None and ref.dotted[0] == "grpc" and ref.dotted[-1] == CALL

    def _keyword_string(self, scope: Scope, node: ast.Call, name: str) -> str | None:
        value = _keyword(node, name)
        return None if value is None else self.string(scope, value)

    def string(self, scope: Scope, node: ast.expr) -> str | None:
        """Return the text of a string expression, with UNKNOWN for run-time parts.

        None means nothing about the string is known.
        """
        if isinstance(node, ast.Constant):
            return node.value if isinstance(node.value, str) else None
        if isinstance(node, ast.JoinedStr):
            parts = []
            for value in node.values:
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    parts.append(value.value)
                elif isinstance(value, ast.FormattedValue) and value.format_spec is None:
                    inner = self.string(scope, value.value)
                    parts.append(UNKNOWN if inner is None else inner)
                else:
                    parts.append(UNKNOWN)
            return "".join(parts)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left = self.string(scope, node.left)
            right = self.string(scope, node.right)
            if left is None and right is None:
                return None
            return (UNKNOWN if left is None else left) + (UNKNOWN if right is None else right)
        if isinstance(node, ast.Name) or _is_self_attr(node):
            found = self.value(scope, node)
            return found if isinstance(found, str) else None
        return None


def _keyword(node: ast.Call, name: str) -> ast.expr | None:
    for keyword in node.keywords:
        if keyword.arg == name:
            return keyword.value
    return None


def keyword(node: ast.Call, name: str) -> ast.expr | None:
    return _keyword(node, name)


def _is_self_attr(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in ("self", "cls")
    )


def _class_scope(scope: Scope) -> Scope | None:
    current: Scope | None = scope
    while current is not None:
        if current.cls is not None:
            return current.cls
        current = current.parent
    return None
