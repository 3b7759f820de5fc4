"""Schemathesis hooks for `make api-check`.

- NDJSON in both directions: the OpenAPI document describes an NDJSON body as an array
  whose items are the lines (`application/x-ndjson`). Requests are sent one item per
  line, and NDJSON answers are read back as the array of their lines, so that their
  schema is checked too.
- Closed objects: the published document leaves objects open (clients should tolerate
  fields added later), but here every documented object is closed before testing, so
  that an answer carrying a field the document does not name fails
  `response_schema_conformance`.
"""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson_request(ctx, value):
    items = value if isinstance(value, list) else [value]
    return "".join(json.dumps(item) + "\n" for item in items).encode("utf-8")


@schemathesis.deserializer("application/x-ndjson")
def ndjson_response(ctx, response):
    text = response.content.decode("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _refs(node, found):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.add(value.rsplit("/", 1)[-1])
            else:
                _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


@schemathesis.hook
def before_load_schema(context, raw_schema):
    schemas = raw_schema.get("components", {}).get("schemas", {})
    # A schema that is one part of an `allOf` must stay open: the other parts add fields.
    in_all_of = set()
    for schema in schemas.values():
        _refs(schema.get("allOf", []), in_all_of)
    for name, schema in schemas.items():
        if "allOf" in schema:
            schema.setdefault("unevaluatedProperties", False)
        elif "properties" in schema and name not in in_all_of:
            schema.setdefault("additionalProperties", False)
