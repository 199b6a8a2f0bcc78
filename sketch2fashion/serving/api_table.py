"""The README's API table, rendered from the OpenAPI schema (`s2f api-table`).

One row per operation: its form fields (required ones starred, with their choices and limits),
what a 200 answers, the error statuses, and a curl line built from the required fields. The
README keeps the table between START and END; `replace_section` rewrites it there and a test
checks that the README's copy is what the schema renders now.
"""
from __future__ import annotations

from typing import Any

START = "<!-- api-table: generated from /openapi.json by `s2f api-table --write README.md`; do not edit -->"
END = "<!-- /api-table -->"
HOST = "http://127.0.0.1:3000"


def render_table(spec: dict[str, Any]) -> str:
    rows = ["| operation | fields (* required) | answer (200) | errors | try it |", "|---|---|---|---|---|"]
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            form = _form_schema(op)
            fields = " · ".join(_field(name, prop, name in form.get("required", []), _encoding(op, name))
                                for name, prop in form.get("properties", {}).items())
            for param in op.get("parameters", []):
                fields = " · ".join(filter(None, [fields, f"`{{{param['name']}}}` in the path"]))
            errors = " ".join(code for code in op["responses"] if code != "200")
            rows.append(f"| `{method.upper()} {path}` | {fields or '-'} | {_answer(spec, op['responses']['200'])} "
                        f"| {errors} | `{_curl(method, path, form, op)}` |")
    return "\n".join(rows)


def replace_section(text: str, table: str) -> str:
    """`text` with the part between START and END replaced by `table`."""
    head, start, rest = text.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise ValueError(f"the README needs the markers {START!r} and {END!r} around the API table")
    return f"{head}{START}\n{table}\n{END}{tail}"


def _form_schema(op: dict[str, Any]) -> dict[str, Any]:
    content = op.get("requestBody", {}).get("content", {})
    return content.get("multipart/form-data", {}).get("schema", {})


def _encoding(op: dict[str, Any], name: str) -> str | None:
    content = op.get("requestBody", {}).get("content", {}).get("multipart/form-data", {})
    return content.get("encoding", {}).get(name, {}).get("contentType")


def _field(name: str, prop: dict[str, Any], required: bool, content_type: str | None) -> str:
    label = f"`{name}`{'*' if required else ''}"
    if prop.get("format") == "binary":
        kinds = ", ".join(t.split("/")[-1].upper() for t in (content_type or "").split(", ") if t)
        return f"{label} {kinds or 'file'}"
    if "enum" in prop:
        return f"{label} {'/'.join(prop['enum'])}"
    if prop.get("type") == "integer":
        default = f", default {_number(prop['default'])}" if "default" in prop else ""
        return f"{label} {_number(prop.get('minimum'))}–{_number(prop.get('maximum'))}{default}"
    if "maxLength" in prop:
        return f"{label} ≤ {prop['maxLength']} chars"
    return label


def _number(value: Any) -> str:
    """FastAPI's schema writes integer bounds as floats (1.0): show them as written in params.yaml."""
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else str(value)


def _answer(spec: dict[str, Any], ok: dict[str, Any]) -> str:
    parts = []
    for media, body in ok.get("content", {}).items():
        ref = body.get("schema", {}).get("$ref")
        if media == "application/json" and ref:
            schema = spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]
            keys = ", ".join(f"`{k}`" for k in schema.get("properties", {}))
            parts.append(f"JSON {keys}")
        else:
            parts.append(media)
    return ", ".join(parts)


def _curl(method: str, path: str, form: dict[str, Any], op: dict[str, Any]) -> str:
    """A curl line with the required fields; an image answer goes to a file."""
    parts = ["curl"]
    for name in form.get("required", []):
        prop = form["properties"][name]
        value = f"@{name}.png" if prop.get("format") == "binary" else str(prop.get("enum", ["..."])[0])
        parts.append(f"-F {name}={value}")
    if "image/png" in op["responses"]["200"].get("content", {}):
        parts.append("-o photo.png")
    example = path
    for param in op.get("parameters", []):
        example = example.replace(f"{{{param['name']}}}", "ID")
    parts.append(f"{HOST}{example}")
    return " ".join(parts)
